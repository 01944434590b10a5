package e2e

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Change notification: fsnotify wake-ups, with polling as a fallback

// waker delivers the time of every fsnotify event for the watched names, so a reader can
// stamp what it then reads with the moment the change was announced.
type waker struct {
	w     *fsnotify.Watcher
	names map[string]bool
	C     chan time.Time
}

// newWaker watches dir and reports events about the given files in it (all files if none).
func newWaker(dir string, files ...string) (*waker, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("fsnotify: %w", err)
	}
	if err := w.Add(dir); err != nil {
		w.Close()
		return nil, fmt.Errorf("fsnotify: watching %s: %w", dir, err)
	}
	k := &waker{w: w, names: map[string]bool{}, C: make(chan time.Time, 1)}
	for _, f := range files {
		k.names[filepath.Clean(f)] = true
	}
	go func() {
		defer close(k.C)
		for {
			select {
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				if len(k.names) > 0 && !k.names[filepath.Clean(ev.Name)] {
					continue
				}
				select {
				case k.C <- time.Now():
				default: // a wake-up is already pending
				}
			case _, ok := <-w.Errors:
				if !ok {
					return
				}
			}
		}
	}()
	return k, nil
}

// wait returns when a change is announced (with its time), after fallback at the latest
// (with the current time), or reports false when stop is closed.
func (k *waker) wait(stop <-chan struct{}, fallback time.Duration) (time.Time, bool) {
	timer := time.NewTimer(fallback)
	defer timer.Stop()
	select {
	case <-stop:
		return time.Time{}, false
	case at, ok := <-k.C:
		if !ok {
			<-stop
			return time.Time{}, false
		}
		return at, true
	case <-timer.C:
		return time.Now(), true
	}
}

func (k *waker) close() { k.w.Close() }

// fallbackPoll is how often files are read when no fsnotify event arrives.
const fallbackPoll = 20 * time.Millisecond
