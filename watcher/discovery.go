package watcher

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"
)

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
