package enforce

import (
	"context"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/mailjail/mailjail/mapfile"
)

// MapTarget is the rspamd multimap file (type "ip"), which rspamd rereads
// by itself when it changes: rewritten whole and atomically at each sync.
type MapTarget struct {
	path string

	mu      sync.Mutex
	written fileID // of the file as mailjail last wrote it
}

// fileID is what tells the file mailjail wrote from one put in its place.
type fileID struct {
	dev, ino uint64
	size     int64
	mtime    time.Time
}

// NewMapTarget makes the target for the map at path.
func NewMapTarget(path string) *MapTarget { return &MapTarget{path: path} }

// Name is MapTargetName of its path.
func (m *MapTarget) Name() string { return MapTargetName(m.path) }

// MapTargetName is the name of the map target of the map at path, as
// status shows it.
func MapTargetName(path string) string { return "rspamd-map:" + path }

// Sync rewrites the map with s's bans.
func (m *MapTarget) Sync(_ context.Context, s State) error {
	entries := make([]mapfile.Entry, 0, len(s.Bans))
	for _, b := range s.Bans {
		entries = append(entries, mapfile.Entry{Prefix: b.Prefix, Until: b.Until, Jail: b.Jail})
	}
	if err := mapfile.Write(m.path, entries, s.At); err != nil {
		return err
	}
	m.wrote()
	return nil
}

// wrote records the file just written, for Drifted.
func (m *MapTarget) wrote() {
	id, _ := statID(m.path)
	m.mu.Lock()
	m.written = id
	m.mu.Unlock()
}

// Drifted reports whether the file is gone or is not the one last written
// (deleted, replaced or edited by hand): rspamd would enforce something
// else than the database until the next ban.
func (m *MapTarget) Drifted() bool {
	m.mu.Lock()
	want := m.written
	m.mu.Unlock()
	if want == (fileID{}) {
		return false // never written: the first sync decides
	}
	id, err := statID(m.path)
	return err != nil || id != want
}

func statID(path string) (fileID, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileID{}, err
	}
	id := fileID{size: fi.Size(), mtime: fi.ModTime()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		id.dev, id.ino = uint64(st.Dev), st.Ino
	}
	return id, nil
}

// FileID tells a file a target wrote from one put in its place (device,
// inode, size, modification time): what Drifted of a file target compares.
type FileID = fileID

// StatFile is the FileID of the file at path now.
func StatFile(path string) (FileID, error) { return statID(path) }
