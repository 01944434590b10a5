package allowlist

import (
	"context"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// settle is how long a changed list file is left alone before it is
// reread: an editor writes in several steps, and the operator expects
// the change in force within a second.
const settle = 100 * time.Millisecond

// Run keeps the state current until ctx ends, sending each new state on
// out: a list file is reread within a second of a change (its directory
// is watched, so an editor's rename-over and a file created later are
// both seen), the names and the host's addresses are looked up again
// every dns_refresh. Load must have been called first. The files are
// watched when Start returns; the returned wait blocks until the
// goroutine has ended (after ctx is cancelled).
func (l *List) Start(ctx context.Context, out chan<- State) (wait func()) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		l.opt.Log.Error("ignoreip files not watched: changes need a reload", "err", err)
	} else {
		for _, dir := range l.dirs() {
			if err := w.Add(dir); err != nil {
				l.opt.Log.Error("ignoreip file not watched: changes need a reload", "dir", dir, "err", err)
			}
		}
	}
	var events <-chan fsnotify.Event
	var werrs <-chan error
	if w != nil {
		events, werrs = w.Events, w.Errors
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if w != nil {
			defer w.Close()
		}
		l.run(ctx, events, werrs, out)
	}()
	return func() { <-done }
}

func (l *List) run(ctx context.Context, events <-chan fsnotify.Event, werrs <-chan error, out chan<- State) {
	refresh := l.opt.Clock.NewTicker(l.refresh)
	defer refresh.Stop()
	wait := l.opt.Clock.NewTimer(settle)
	wait.Stop()
	dirty := map[string]bool{}
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-events:
			if l.watched(ev.Name) {
				dirty[ev.Name] = true
				wait.Reset(settle)
			}
			continue
		case err := <-werrs:
			l.opt.Log.Warn("watching ignoreip files", "err", err)
			continue
		case <-wait.C():
			for path := range dirty {
				l.readFile(path)
			}
			clear(dirty)
			l.resolveMissing(ctx)
		case <-refresh.C():
			l.resolveAll(ctx)
		}
		if !l.send(ctx, out) {
			return
		}
	}
}

// send hands the current state to the daemon's loop.
func (l *List) send(ctx context.Context, out chan<- State) bool {
	select {
	case out <- l.state.clone():
		return true
	case <-ctx.Done():
		return false
	}
}

// dirs are the directories of the list files, once each.
func (l *List) dirs() []string {
	var out []string
	seen := map[string]bool{}
	for _, p := range l.files {
		if d := filepath.Dir(p); !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	return out
}

func (l *List) watched(name string) bool {
	for _, p := range l.files {
		if p == name {
			return true
		}
	}
	return false
}
