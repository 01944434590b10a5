package watcher

import (
	"context"
	"os"
	"time"
)

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
	if f.opt.afterLook != nil {
		f.opt.afterLook(s.path)
	}
	// Open before looking for the files rotated in between: the path may
	// have been rotated again since the stat, and the file seen by the
	// stat is then one of those, not the one opened.
	o, _, err := f.open(s, s.path, now)
	if err != nil || o == nil {
		return
	}
	if newest != nil {
		// Files rotated in between (two rotations before we looked)
		// come first.
		f.pushNewer(s, newest, func(x fileID) bool { return x == o.id }, now)
		f.c.rotations.Add(1)
		f.log.Info("new file at path", "path", s.path, "previous_offset", newest.r.off)
	}
	f.push(s, o)
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
