package watcher

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/mailjail/mailjail/internal/core"
)

// Position is where reading of a source stopped (see core.Position).
type Position = core.Position

// Line is one line read from a source (see core.Line).
type Line = core.Line

// A Waker tells the follower when to look at its files again. The default
// ticks every Options.PollInterval; tests supply one they trigger by hand so
// they never have to sleep.
type Waker interface {
	// Wake returns a channel that receives when it is time to look.
	Wake() <-chan struct{}
}

// Options tunes Follow. The zero value is usable.
type Options struct {
	// FromStart reads files that exist when Follow is called and have no
	// saved position from their beginning. By default they are read from
	// their end: on a first start the past is not ours to judge.
	FromStart bool
	// MaxLineBytes is the longest line accepted (default 64 KiB); longer
	// lines are skipped, counted and logged, keeping memory bounded.
	MaxLineBytes int
	// MaxBatch is the most lines in one batch (default 1024).
	MaxBatch int
	// PollInterval is how often files are checked without a filesystem
	// notification (default 500ms). It is what makes NFS, rotated files in
	// other directories and missed inotify events work.
	PollInterval time.Duration
	// RotateWait is how long a file renamed or deleted away must stay
	// unchanged before it is considered finished (default 5s). Writers
	// such as rspamd keep writing to the old file until they reopen (on
	// SIGUSR1), and those lines must not be lost. Lines of the new file are
	// read once the old one is finished, so a single saved position per
	// path is always enough to resume.
	RotateWait time.Duration
	// NoNotify disables fsnotify and relies on polling alone.
	NoNotify bool
	// Clock is the time (default the wall clock). It stamps lines, drives
	// the poll ticker and the journalctl restart backoff, and measures
	// RotateWait.
	Clock core.Clock
	// Logger receives warnings about lost or skipped data (default
	// slog.Default()).
	Logger *slog.Logger
	// Waker replaces the PollInterval ticker (test hook).
	Waker Waker

	onIdle func() // test hook: called each time the follower has caught up
}

const readChunk = 64 << 10

func (o *Options) setDefaults() {
	if o.MaxLineBytes <= 0 {
		o.MaxLineBytes = 64 << 10
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 1024
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 500 * time.Millisecond
	}
	if o.RotateWait <= 0 {
		o.RotateWait = 5 * time.Second
	}
	o.Clock = core.OrReal(o.Clock)
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Stats is a snapshot of what a Follower is doing.
type Stats struct {
	Files            []FileStats
	LinesRead        uint64 // lines handed out
	BytesRead        uint64 // bytes read from files, including skipped ones
	LongLinesSkipped uint64 // lines longer than MaxLineBytes
	Rotations        uint64 // new files seen at a followed path
	Truncations      uint64 // files found shorter than what was read, or rewritten
	Recovered        uint64 // rotated files found on disk and finished (resume, copytruncate)
	Lost             uint64 // times data may have been lost (warned about)
	Batches          uint64
}

// FileStats describes one followed path.
type FileStats struct {
	Path string
	// Pos is where reading stands in the file currently being read at
	// this path (possibly a rotated-away one).
	Pos Position
	// Size is that file's size when last looked at.
	Size int64
	// Open is how many files are open for this path: more than one while a
	// rotated file is being finished.
	Open int
}

// Follower follows files and delivers their lines in batches.
type Follower struct {
	opt      Options
	log      *slog.Logger
	patterns []string
	saved    map[string]Position
	batches  chan []Line

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

	bufs [2]batch
	cur  int

	c       counters
	statsMu sync.Mutex
	files   []FileStats
}

type counters struct {
	lines, bytes, long, rotations, truncations, recovered, lost, batches atomic.Uint64
}

// finished remembers where a retired file ended, so that reaching it again
// through another path (a glob that also matches path.1) does not read it
// twice.
type finished struct {
	head uint64
	off  int64
}

type batch struct {
	lines []Line
	arena []byte
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
		batches: make(chan []Line),
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
	arena := max(1<<20, opt.MaxLineBytes+1)
	for i := range f.bufs {
		f.bufs[i] = batch{lines: make([]Line, 0, opt.MaxBatch), arena: make([]byte, 0, arena)}
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
	go f.run(ctx)
	return f, nil
}

// Batches delivers lines, in file order per path. The consumer must commit
// (or drop) a batch before receiving the next one: the Text of its lines is
// reused afterwards. The channel is closed when following stops.
func (f *Follower) Batches() <-chan []Line { return f.batches }

// Stats returns a snapshot of the follower's counters and files.
func (f *Follower) Stats() Stats {
	f.statsMu.Lock()
	files := append([]FileStats(nil), f.files...)
	f.statsMu.Unlock()
	return Stats{
		Files:            files,
		LinesRead:        f.c.lines.Load(),
		BytesRead:        f.c.bytes.Load(),
		LongLinesSkipped: f.c.long.Load(),
		Rotations:        f.c.rotations.Load(),
		Truncations:      f.c.truncations.Load(),
		Recovered:        f.c.recovered.Load(),
		Lost:             f.c.lost.Load(),
		Batches:          f.c.batches.Load(),
	}
}

func (f *Follower) run(ctx context.Context) {
	defer func() {
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
		close(f.batches)
	}()
	for {
		select {
		case <-f.waker.Wake():
			// Also while busy: new files must be found even when one
			// file keeps us reading without pause.
			f.needScan.Store(true)
		default:
		}
		if f.needScan.Swap(false) {
			f.scan(false)
		}
		progressed := f.sweep(ctx)
		if ctx.Err() != nil {
			return
		}
		if progressed {
			continue
		}
		if !f.flush(ctx) {
			return
		}
		f.publishStats()
		if f.opt.onIdle != nil {
			f.opt.onIdle()
		}
		select {
		case <-ctx.Done():
			return
		case <-f.kick:
		case <-f.waker.Wake():
			f.needScan.Store(true)
		}
	}
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

// scan expands the patterns and starts following new matches.
func (f *Follower) scan(initial bool) {
	added := false
	for _, pat := range f.patterns {
		f.watchDir(filepath.Dir(pat))
		matches, _ := filepath.Glob(pat) // the pattern was validated in Follow
		if len(matches) == 0 && !hasMeta(pat) {
			// A literal path that does not exist yet is followed
			// once it appears.
			matches = []string{pat}
		}
		for _, m := range matches {
			if _, ok := f.sources[m]; ok {
				continue
			}
			s := &source{path: m}
			f.sources[m] = s
			f.order = append(f.order, s)
			added = true
			f.start(s, initial)
		}
	}
	if added {
		sort.Slice(f.order, func(i, j int) bool { return f.order[i].path < f.order[j].path })
	}
}

func hasMeta(p string) bool {
	for _, c := range p {
		switch c {
		case '*', '?', '[', '\\':
			return true
		}
	}
	return false
}

func (f *Follower) watchDir(dir string) {
	if f.notify == nil || f.watched[dir] || hasMeta(dir) {
		return
	}
	if err := f.notify.Add(dir); err != nil {
		// Missing directory: polling will find it and we retry then.
		return
	}
	f.watched[dir] = true
}

// start opens a newly followed path at the right offset: the saved position,
// else the end (first start) or the beginning (file appeared later).
func (f *Follower) start(s *source, initial bool) {
	now := f.opt.Clock.Now()
	if p, ok := f.saved[s.path]; ok {
		delete(f.saved, s.path)
		f.resume(s, p, now)
		return
	}
	o, fi, err := f.open(s, s.path, now)
	if err != nil || o == nil {
		return
	}
	if initial && !f.opt.FromStart {
		size := fi.Size()
		o.r.reset(size)
		if size > 0 {
			var last [1]byte
			if _, err := o.f.ReadAt(last[:], size-1); err == nil && last[0] != '\n' {
				// We arrived in the middle of a line; its
				// beginning is gone, so drop the rest of it.
				o.r.skipping = true
			}
		}
	}
	f.push(s, o)
}

// open opens name for s unless the file is already read through another
// path. A nil file and nil error mean "not now".
func (f *Follower) open(s *source, name string, now time.Time) (*openFile, os.FileInfo, error) {
	o, fi, err := openAt(name, f.opt.MaxLineBytes, readChunk, now)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) && err.Error() != s.lastErr {
			s.lastErr = err.Error()
			f.log.Warn("cannot follow file", "path", s.path, "err", err)
		}
		return nil, nil, err
	}
	s.lastErr = ""
	if owner, ok := f.owned[o.id]; ok && owner != s || f.inQueue(s, o.id) {
		o.close()
		return nil, nil, nil
	}
	if d, ok := f.done[o.id]; ok && o.headHash(d.off) == d.head && fi.Size() >= d.off {
		o.r.reset(d.off)
	}
	return o, fi, nil
}

func (f *Follower) inQueue(s *source, id fileID) bool {
	for _, o := range s.queue {
		if o.id == id {
			return true
		}
	}
	return false
}

func (f *Follower) push(s *source, o *openFile) {
	s.queue = append(s.queue, o)
	f.owned[o.id] = s
}

// resume places s where a previous run committed p. If the file at the path
// is no longer the one p refers to, the old file is looked for among the
// rotated siblings and finished first, so nothing written to it while we were
// down is lost.
func (f *Follower) resume(s *source, p Position, now time.Time) {
	cur, fi, _ := f.open(s, s.path, now)
	if cur != nil && cur.id == (fileID{p.Dev, p.Ino}) && cur.matches(p, fi.Size()) {
		cur.r.reset(p.Offset)
		f.push(s, cur)
		return
	}
	skip := func(id fileID) bool { return cur != nil && id == cur.id }
	prev := f.findRotated(s, p, skip, now)
	if prev != nil {
		f.push(s, prev)
		f.c.recovered.Add(1)
		f.log.Info("finishing file rotated while stopped", "path", s.path, "file", prev.name, "offset", p.Offset)
		f.pushNewer(s, prev, skip, now)
	} else if p.Offset > 0 && cur != nil {
		f.c.lost.Add(1)
		f.log.Warn("file changed while stopped and the old one was not found; reading the new one from the start, the end of the old one is lost",
			"path", s.path, "offset", p.Offset)
	}
	if cur != nil {
		f.push(s, cur)
	}
}

// findRotated looks among path's rotated siblings for the file p refers to:
// the same inode (rename rotation), else the same head with enough bytes (a
// copytruncate copy). The file is opened at p.Offset.
func (f *Follower) findRotated(s *source, p Position, skip func(fileID) bool, now time.Time) *openFile {
	want := fileID{p.Dev, p.Ino}
	sibs := rotatedSiblings(s.path)
	for pass := 0; pass < 2; pass++ {
		for _, sb := range sibs {
			if skip(sb.id) || (pass == 0) != (sb.id == want) || sb.size < p.Offset {
				continue
			}
			if pass == 1 && p.Offset == 0 {
				continue
			}
			o, fi, err := f.open(s, sb.name, now)
			if err != nil || o == nil {
				continue
			}
			if !o.matches(p, fi.Size()) {
				o.close()
				continue
			}
			o.r.reset(p.Offset)
			o.final = o.id != want
			return o
		}
	}
	return nil
}

// pushNewer queues rotated siblings written after prev, so that a path
// rotated twice before we looked (or while we were down) loses nothing.
func (f *Follower) pushNewer(s *source, prev *openFile, skip func(fileID) bool, now time.Time) {
	for _, o := range f.newerSiblings(s, prev, skip, now) {
		f.c.recovered.Add(1)
		f.push(s, o)
	}
}

// newerSiblings opens the rotated siblings of s last written after prev,
// oldest first, skipping files already followed or finished.
func (f *Follower) newerSiblings(s *source, prev *openFile, skip func(fileID) bool, now time.Time) []*openFile {
	pfi, err := prev.f.Stat()
	if err != nil {
		return nil
	}
	var out []*openFile
	for _, sb := range rotatedSiblings(s.path) {
		if skip(sb.id) || sb.id == prev.id || sb.mtime.Before(pfi.ModTime()) {
			continue
		}
		if _, ok := f.owned[sb.id]; ok {
			continue
		}
		if _, ok := f.done[sb.id]; ok {
			continue
		}
		o, _, err := f.open(s, sb.name, now)
		if err != nil || o == nil {
			continue
		}
		out = append(out, o)
	}
	return out
}

// sweep checks every path for rotation and reads what is available. It
// reports whether anything was read, so the caller knows to go on without
// waiting.
func (f *Follower) sweep(ctx context.Context) bool {
	progressed := false
	for _, s := range f.order {
		// Read the clock before looking at files: anything written
		// before a clock reading is then seen before RotateWait counts.
		now := f.opt.Clock.Now()
		f.checkPath(s, now)
		if f.readSource(ctx, s, now) {
			progressed = true
		}
		if ctx.Err() != nil {
			return false
		}
	}
	return progressed
}

// checkPath notices a new file at s.path (rotation, recreation, appearance)
// and queues it behind the files still being read.
func (f *Follower) checkPath(s *source, now time.Time) {
	fi, err := os.Stat(s.path)
	if err != nil {
		return
	}
	id, _, ok := idOf(fi)
	if !ok {
		return
	}
	var newest *openFile
	if n := len(s.queue); n > 0 {
		newest = s.queue[n-1]
		if newest.id == id {
			return
		}
	}
	if owner, ok := f.owned[id]; ok && owner != s {
		return
	}
	if f.inQueue(s, id) {
		return
	}
	if newest != nil {
		// Files rotated in between (two rotations before we looked)
		// come first.
		f.pushNewer(s, newest, func(x fileID) bool { return x == id }, now)
	}
	o, _, err := f.open(s, s.path, now)
	if err != nil || o == nil {
		return
	}
	if newest != nil {
		f.c.rotations.Add(1)
		f.log.Info("new file at path", "path", s.path, "previous_offset", newest.r.off)
	}
	f.push(s, o)
}

// readSource reads one chunk from the oldest open file of s, or finishes it
// when it is done. It reports whether anything was read.
func (f *Follower) readSource(ctx context.Context, s *source, now time.Time) bool {
	for len(s.queue) > 0 {
		o := s.queue[0]
		fi, err := o.f.Stat()
		if err != nil {
			f.log.Warn("stat open file", "path", s.path, "err", fmt.Errorf("stat %s: %w", o.name, err))
			return false
		}
		size := fi.Size()
		if size != o.lastSize {
			o.lastSize = size
			if f.checkReplaced(s, o, size, now) {
				continue
			}
		}
		if size > o.r.readOff() {
			n, err := o.r.fill(o.f)
			if err != nil {
				f.log.Warn("read", "path", s.path, "err", fmt.Errorf("%s: %w", o.name, err))
				return false
			}
			if n > 0 {
				// A truncate-and-rewrite between the size check and
				// the read would have us read the wrong bytes; the
				// head tells.
				if rep, _ := o.replaced(); rep {
					o.r.unread(n)
					f.truncated(s, o, now)
					return true
				}
				o.lastGrowth = now
				f.c.bytes.Add(uint64(n))
				f.emitLines(ctx, s, o, now)
				return true
			}
		}
		if !f.retirable(s, o, fi, now) {
			return false
		}
		f.retire(ctx, s, o, now)
	}
	return false
}

// checkReplaced detects a truncated or rewritten file and handles it.
func (f *Follower) checkReplaced(s *source, o *openFile, size int64, now time.Time) bool {
	if size < o.r.readOff() {
		f.truncated(s, o, now)
		return true
	}
	if rep, err := o.replaced(); err == nil && rep {
		f.truncated(s, o, now)
		return true
	}
	return false
}

// truncated restarts o from offset 0. Lines written after our last read but
// before the truncation are, with copytruncate, in the copy: if one is found
// (same head, long enough) it is finished first.
func (f *Follower) truncated(s *source, o *openFile, now time.Time) {
	f.c.truncations.Add(1)
	p := Position{Path: s.path, Dev: o.id.dev, Ino: o.id.ino, Offset: o.r.off, Head: o.headHash(o.r.off)}
	var cp *openFile
	if p.Offset > 0 {
		cp = f.findRotated(s, p, func(id fileID) bool { return id == o.id || f.inQueue(s, id) }, now)
	}
	if cp == nil && p.Offset > 0 {
		f.c.lost.Add(1)
		f.log.Warn("file truncated and no copy found; reading it again from the start, anything written just before the truncation is lost",
			"path", s.path, "offset", p.Offset)
	}
	o.r.reset(0)
	_ = o.loadHead()
	o.lastSize = -1
	o.lastGrowth = now
	if cp != nil {
		// Copies made by later copytruncates (if we missed more than
		// one) hold the rest, in order; nobody writes to any of them.
		front := []*openFile{cp}
		front = append(front, f.newerSiblings(s, cp, func(id fileID) bool { return id == o.id || f.inQueue(s, id) }, now)...)
		for _, x := range front {
			x.final = true
			f.c.recovered.Add(1)
			f.owned[x.id] = s
		}
		s.queue = append(front, s.queue...)
	}
}

// retirable reports whether the oldest file of s, read to its end, is
// finished: something else has replaced it at the path (or it was deleted)
// and it has not grown for RotateWait.
func (f *Follower) retirable(s *source, o *openFile, fi os.FileInfo, now time.Time) bool {
	if o.final {
		return true
	}
	if now.Sub(o.lastGrowth) < f.opt.RotateWait {
		return false
	}
	if len(s.queue) > 1 {
		return true
	}
	_, nlink, ok := idOf(fi)
	return ok && nlink == 0
}

func (f *Follower) retire(ctx context.Context, s *source, o *openFile, now time.Time) {
	if line, end, ok := o.r.tail(); ok {
		// The file is finished; its unterminated last line will never
		// get a newline. Delivering it beats losing it.
		f.emit(ctx, s, o, line, end, now)
	}
	o.close()
	s.queue[0] = nil
	s.queue = s.queue[1:]
	delete(f.owned, o.id)
	f.done[o.id] = finished{head: o.headHash(o.r.off), off: o.r.off}
	f.doneQ = append(f.doneQ, o.id)
	if len(f.doneQ) > 256 {
		delete(f.done, f.doneQ[0])
		f.doneQ = f.doneQ[1:]
	}
	if len(s.queue) > 0 {
		s.queue[0].lastGrowth = now
	}
}

func (f *Follower) emitLines(ctx context.Context, s *source, o *openFile, now time.Time) {
	before := o.r.skipped
	for {
		line, end, ok := o.r.next()
		if !ok {
			break
		}
		if !f.emit(ctx, s, o, line, end, now) {
			return
		}
	}
	if n := o.r.skipped - before; n > 0 {
		f.c.long.Add(n)
		f.log.Warn("skipped over-long line", "path", s.path, "offset", o.r.off, "max_bytes", f.opt.MaxLineBytes)
	}
}

// emit appends one line to the current batch, sending the batch first when
// it is full. It reports false when the context was cancelled.
func (f *Follower) emit(ctx context.Context, s *source, o *openFile, text []byte, end int64, now time.Time) bool {
	b := &f.bufs[f.cur]
	if len(b.lines) == cap(b.lines) || len(b.arena)+len(text) > cap(b.arena) {
		if !f.flush(ctx) {
			return false
		}
		b = &f.bufs[f.cur]
	}
	start := len(b.arena)
	b.arena = append(b.arena, text...)
	b.lines = append(b.lines, Line{
		Path: s.path,
		Text: b.arena[start:len(b.arena):len(b.arena)],
		Pos:  Position{Path: s.path, Dev: o.id.dev, Ino: o.id.ino, Offset: end, Head: o.headHash(end)},
		Read: now,
	})
	return true
}

// flush sends the current batch. Two batches alternate: when the send of
// one completes the consumer has asked for it, so it is done with the other,
// whose memory is then reused.
func (f *Follower) flush(ctx context.Context) bool {
	b := &f.bufs[f.cur]
	if len(b.lines) == 0 {
		return true
	}
	select {
	case f.batches <- b.lines[:len(b.lines):len(b.lines)]:
	case <-ctx.Done():
		return false
	}
	f.c.lines.Add(uint64(len(b.lines)))
	f.c.batches.Add(1)
	f.cur ^= 1
	nb := &f.bufs[f.cur]
	clear(nb.lines) // drop references into the old arena
	nb.lines, nb.arena = nb.lines[:0], nb.arena[:0]
	return true
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
