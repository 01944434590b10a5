package daemon

import (
	"context"
	"fmt"

	"github.com/mailjail/mailjail/internal/core"
	"github.com/mailjail/mailjail/watcher"
)

// sourceBatch is a batch from one source; done tells the source's
// forwarder that the lines (whose bytes the source reuses) were consumed.
type sourceBatch struct {
	lines []core.Line
	done  chan struct{}
}

// follow starts a follower for the jails' files and one per journal
// selection, from the saved positions, and merges their batches.
func (d *daemon) follow(ctx context.Context) (<-chan sourceBatch, error) {
	saved, err := d.st.Positions()
	if err != nil {
		return nil, err
	}
	wopt := d.opt.Watcher
	wopt.FromStart = wopt.FromStart || d.opt.FromStart || d.cfg.Global.FromStart
	wopt.Logger = d.log
	if wopt.Clock == nil {
		wopt.Clock = d.opt.Clock
	}
	if pats := d.eng.LogPatterns(); len(pats) > 0 {
		fol, err := watcher.Follow(ctx, pats, saved, wopt)
		if err != nil {
			return nil, fmt.Errorf("follow logs: %w", err)
		}
		d.sources = append(d.sources, fol)
	}
	for _, m := range d.eng.JournalMatches() {
		jf, err := watcher.FollowJournal(ctx, m, saved[m.Key()], wopt)
		if err != nil {
			return nil, fmt.Errorf("follow journal %s: %w", m.Key(), err)
		}
		d.sources = append(d.sources, jf)
	}
	return fanIn(ctx, d.sources), nil
}

// fanIn merges the sources' batches into one channel. Each forwarder waits
// until its batch is consumed before taking the next one, because a source
// reuses the bytes of a batch once the next is received.
func fanIn(ctx context.Context, sources []watcher.Source) <-chan sourceBatch {
	out := make(chan sourceBatch)
	for _, src := range sources {
		go func() {
			for lines := range src.Batches() {
				b := sourceBatch{lines: lines, done: make(chan struct{})}
				select {
				case out <- b:
				case <-ctx.Done():
					return
				}
				select {
				case <-b.done:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	return out
}
