package watcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/mailjail/mailjail/internal/core"
)

// Follower follows files and delivers their lines in batches.
type Follower struct {
	opt      Options
	log      *slog.Logger
	patterns []string
	saved    map[string]Position
	out      *batcher

	sources map[string]*source
	order   []*source
	owned   map[fileID]*source // a file is read through one path only
	done    map[fileID]finished
	doneQ   []fileID

	notify   *fsnotify.Watcher
	watched  map[string]bool
	kick     chan struct{}
	needScan atomic.Bool
	waker    Waker
	wg       sync.WaitGroup

	c       counters
	statsMu sync.Mutex
	files   []FileStats
}

// counters are what Stats reports beyond the batcher's lines and batches.
type counters struct {
	bytes, long, rotations, truncations, recovered, lost atomic.Uint64
}

// finished remembers where a retired file ended, so that reaching it again
// through another path (a glob that also matches path.1) does not read it
// twice.
type finished struct {
	head uint64
	off  int64
}

// source is one followed path and the files open for it, oldest first. Only
// queue[0] is read; the others wait until it is finished, so positions for a
// path only ever move forward.
type source struct {
	path    string
	queue   []*openFile
	lastErr string
}

// Follow starts following the files named by paths (glob patterns allowed),
// resuming from saved positions (keyed by Position.Path) where it has them.
// Existing files without a saved position start at their end unless
// opt.FromStart; files that appear later are read from their beginning.
// It returns after the initial scan, so anything written after it returns
// will be delivered. Following stops when ctx is cancelled; Batches is then
// closed.
func Follow(ctx context.Context, paths []string, saved map[string]Position, opt Options) (*Follower, error) {
	if len(paths) == 0 {
		return nil, errors.New("follow: no paths")
	}
	opt.setDefaults()
	f := &Follower{
		opt:     opt,
		log:     opt.Logger.With("component", "watcher"),
		saved:   make(map[string]Position, len(saved)),
		out:     newBatcher(opt.MaxBatch, opt.MaxLineBytes),
		sources: make(map[string]*source),
		owned:   make(map[fileID]*source),
		done:    make(map[fileID]finished),
		watched: make(map[string]bool),
		kick:    make(chan struct{}, 1),
		waker:   opt.Waker,
	}
	for _, p := range paths {
		p = filepath.Clean(p)
		if _, err := filepath.Match(p, ""); err != nil {
			return nil, fmt.Errorf("follow: pattern %q: %w", p, err)
		}
		f.patterns = append(f.patterns, p)
	}
	for k, p := range saved {
		f.saved[filepath.Clean(k)] = p
	}
	if !opt.NoNotify {
		w, err := fsnotify.NewWatcher()
		if err != nil {
			f.log.Warn("no filesystem notifications, polling only", "err", err, "interval", opt.PollInterval)
		} else {
			f.notify = w
			f.wg.Add(1)
			go f.forwardEvents(ctx)
		}
	}
	if f.waker == nil {
		t := newTickWaker(ctx, opt.Clock, opt.PollInterval, &f.wg)
		f.waker = t
	}
	f.scan(true)
	f.publishStats()
	// Asked before returning, so that a wake-up from now on is never
	// missed (see run).
	wake := f.waker.Wake()
	go f.run(ctx, wake)
	return f, nil
}

// Batches delivers lines, in file order per path. The consumer must commit
// (or drop) a batch before receiving the next one: the Text of its lines is
// reused afterwards. The channel is closed when following stops.
func (f *Follower) Batches() <-chan []Line { return f.out.out }

// Stats returns a snapshot of the follower's counters and files.
func (f *Follower) Stats() Stats {
	f.statsMu.Lock()
	files := append([]FileStats(nil), f.files...)
	f.statsMu.Unlock()
	return Stats{
		Files:            files,
		LinesRead:        f.out.lines.Load(),
		BytesRead:        f.c.bytes.Load(),
		LongLinesSkipped: f.c.long.Load(),
		Rotations:        f.c.rotations.Load(),
		Truncations:      f.c.truncations.Load(),
		Recovered:        f.c.recovered.Load(),
		Lost:             f.c.lost.Load(),
		Batches:          f.out.batches.Load(),
	}
}

// run sweeps until nothing is left to read, then waits for a wake-up: the
// waker, a filesystem notification or the end of ctx.
//
// The channel from the waker is kept until it fires, and Wake is called
// again only once everything is read and delivered. A waker may therefore
// take a Wake call to mean "the work of the last wake-up is done", which is
// the handshake internal/testutil.TestWaker gives tests.
func (f *Follower) run(ctx context.Context, wake <-chan struct{}) {
	defer f.stop()
	lastScan := f.opt.Clock.Now()
	for {
		if f.needScan.Swap(false) {
			f.scan(false)
			lastScan = f.opt.Clock.Now()
		}
		progressed := f.sweep(ctx)
		if ctx.Err() != nil {
			return
		}
		if progressed {
			// Also while busy: new files must be found even when
			// one file keeps us reading without pause.
			if f.opt.Clock.Now().Sub(lastScan) >= f.opt.PollInterval {
				f.needScan.Store(true)
			}
			continue
		}
		if !f.out.flush(ctx) {
			return
		}
		f.publishStats()
		if wake == nil {
			wake = f.waker.Wake()
		}
		select {
		case <-ctx.Done():
			return
		case <-f.kick:
		case <-wake:
			wake = nil
			f.needScan.Store(true)
		}
	}
}

// stop closes every open file and, once the helper goroutines are gone,
// the batches channel.
func (f *Follower) stop() {
	for _, s := range f.order {
		for _, o := range s.queue {
			o.close()
		}
	}
	if f.notify != nil {
		f.notify.Close()
	}
	f.wg.Wait()
	f.publishStats()
	close(f.out.out)
}

// forwardEvents turns filesystem events into wake-ups. Events only say
// "look again": the sweep finds out what changed with stat, so a lost or
// coalesced event costs at most one poll interval.
func (f *Follower) forwardEvents(ctx context.Context) {
	defer f.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-f.notify.Events:
			if !ok {
				return
			}
			if ev.Has(fsnotify.Create) || ev.Has(fsnotify.Rename) || ev.Has(fsnotify.Remove) {
				f.needScan.Store(true)
			}
		case err, ok := <-f.notify.Errors:
			if !ok {
				return
			}
			// Usually a queue overflow: events were lost, so rescan.
			f.log.Warn("filesystem notification error", "err", err)
			f.needScan.Store(true)
		}
		select {
		case f.kick <- struct{}{}:
		default:
		}
	}
}

type tickWaker struct{ c chan struct{} }

func (t *tickWaker) Wake() <-chan struct{} { return t.c }

func newTickWaker(ctx context.Context, clock core.Clock, d time.Duration, wg *sync.WaitGroup) *tickWaker {
	t := &tickWaker{c: make(chan struct{}, 1)}
	wg.Add(1)
	go func() {
		defer wg.Done()
		tk := clock.NewTicker(d)
		defer tk.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tk.C():
				select {
				case t.c <- struct{}{}:
				default:
				}
			}
		}
	}()
	return t
}

func (f *Follower) publishStats() {
	files := make([]FileStats, 0, len(f.order))
	for _, s := range f.order {
		fs := FileStats{Path: s.path, Open: len(s.queue)}
		if len(s.queue) > 0 {
			o := s.queue[0]
			fs.Pos = Position{Path: s.path, Dev: o.id.dev, Ino: o.id.ino, Offset: o.r.off, Head: o.headHash(o.r.off)}
			fs.Size = o.lastSize
		}
		files = append(files, fs)
	}
	f.statsMu.Lock()
	f.files = files
	f.statsMu.Unlock()
}
