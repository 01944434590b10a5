package watcher

import (
	"context"
	"fmt"
	"time"

	"github.com/mailjail/mailjail/internal/core"
)

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
		if total := f.c.long.Add(n); core.Sparse(total-n, total) {
			f.log.Warn("skipped over-long line", "path", s.path, "offset", o.r.off, "max_bytes", f.opt.MaxLineBytes, "skipped_so_far", total)
		}
	}
}

// emit appends one line to the current batch, sending the batch first when
// it is full. It reports false when the context was cancelled.
func (f *Follower) emit(ctx context.Context, s *source, o *openFile, text []byte, end int64, now time.Time) bool {
	b, ok := f.out.room(ctx, len(text))
	if !ok {
		return false
	}
	b.addCopy(text, Line{
		Path: s.path,
		Pos:  Position{Path: s.path, Dev: o.id.dev, Ino: o.id.ino, Offset: end, Head: o.headHash(end)},
		Read: now,
	})
	return true
}
