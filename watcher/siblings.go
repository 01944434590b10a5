package watcher

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// isRotatedName reports whether name looks like a copy logrotate (or a
// similar tool) made of base: base.1, base.2, base-20240131, base-2024-01-31.
// Compressed copies (base.2.gz) are excluded: we cannot read them as text,
// and they only exist once a file is no longer written to.
func isRotatedName(base, name string) bool {
	rest, ok := strings.CutPrefix(name, base)
	if !ok || len(rest) < 2 || (rest[0] != '.' && rest[0] != '-') || rest[1] < '0' || rest[1] > '9' {
		return false
	}
	for _, c := range rest[2:] {
		if (c < '0' || c > '9') && c != '.' && c != '-' && c != '_' {
			return false
		}
	}
	return true
}

// sibling is a rotated copy of a followed path found in its directory.
type sibling struct {
	name  string
	id    fileID
	size  int64
	mtime time.Time
}

// siblingListings bounds how often rotatedSiblings lists a directory that
// keeps changing.
const siblingListings = 4

// rotatedSiblings lists the rotated copies of path, oldest write first, so
// that a chain of files rotated while we were not looking can be read in the
// order it was written.
//
// A listing is a directory read and then a stat of each name; a rotation
// between the two moves a file from a name not yet looked at to one
// already looked at, and the listing misses it. The listing is therefore
// repeated until two agree (or siblingListings were made): a file moved
// during one shows up in the next.
func rotatedSiblings(path string) []sibling {
	prev := listSiblings(path)
	for range siblingListings - 1 {
		cur := listSiblings(path)
		if sameSiblings(prev, cur) {
			break
		}
		prev = cur
	}
	return prev
}

// sameSiblings reports whether two listings name the same files by the same
// names; sizes, times and so the order may differ, as a writer may still be
// writing to one of them.
func sameSiblings(a, b []sibling) bool {
	if len(a) != len(b) {
		return false
	}
	ids := make(map[string]fileID, len(a))
	for _, x := range a {
		ids[x.name] = x.id
	}
	for _, x := range b {
		if id, ok := ids[x.name]; !ok || id != x.id {
			return false
		}
	}
	return true
}

// listSiblings is one listing for rotatedSiblings.
func listSiblings(path string) []sibling {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []sibling
	for _, e := range ents {
		if !isRotatedName(base, e.Name()) {
			continue
		}
		name := filepath.Join(dir, e.Name())
		fi, err := os.Stat(name)
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		id, _, ok := idOf(fi)
		if !ok {
			continue
		}
		out = append(out, sibling{name: name, id: id, size: fi.Size(), mtime: fi.ModTime()})
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].mtime.Equal(out[j].mtime) {
			return out[i].mtime.Before(out[j].mtime)
		}
		// Same timestamp: logrotate numbering puts older files higher.
		return out[i].name > out[j].name
	})
	return out
}
