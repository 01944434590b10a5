package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The rspamd log, read as the daemon reads it

// logLine is one line of the rspamd log and when the test saw it appear.
type logLine struct {
	At   time.Time // when fsnotify announced the write that completed the line
	End  int64     // offset just past the line's newline
	Text string
}

// logTailer follows a log file from the offset where it was started.
type logTailer struct {
	path string
	stop chan struct{}
	done chan struct{}

	mu    sync.Mutex
	lines []logLine
	err   error
}

// tailLog follows path from its current end until the test ends.
func tailLog(t *testing.T, path string) *logTailer {
	t.Helper()
	k, err := newWaker(filepath.Dir(path), path)
	if err != nil {
		t.Fatalf("following %s: %v", path, err)
	}
	f, err := os.Open(path)
	if err != nil {
		k.close()
		t.Fatalf("following %s: %v", path, err)
	}
	off, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		k.close()
		f.Close()
		t.Fatalf("following %s: %v", path, err)
	}
	lt := &logTailer{path: path, stop: make(chan struct{}), done: make(chan struct{})}
	go lt.run(f, off, k)
	t.Cleanup(func() {
		close(lt.stop)
		<-lt.done
		if err := lt.failure(); err != nil {
			t.Errorf("following %s: %v", path, err)
		}
	})
	return lt
}

func (lt *logTailer) run(f *os.File, off int64, k *waker) {
	defer close(lt.done)
	defer f.Close()
	defer k.close()
	var partial []byte
	buf := make([]byte, 64<<10)
	at := time.Now()
	for {
		n, err := f.ReadAt(buf, off)
		if n > 0 {
			start := off - int64(len(partial))
			off += int64(n)
			partial = append(partial, buf[:n]...)
			var got []logLine
			for {
				i := bytes.IndexByte(partial, '\n')
				if i < 0 {
					break
				}
				start += int64(i + 1)
				got = append(got, logLine{At: at, End: start, Text: string(partial[:i])})
				partial = partial[i+1:]
			}
			lt.mu.Lock()
			lt.lines = append(lt.lines, got...)
			lt.mu.Unlock()
			if n == len(buf) {
				continue
			}
		}
		if err != nil && !errors.Is(err, io.EOF) {
			lt.mu.Lock()
			lt.err = fmt.Errorf("reading at offset %d: %w", off, err)
			lt.mu.Unlock()
			return
		}
		var ok bool
		if at, ok = k.wait(lt.stop, fallbackPoll); !ok {
			return
		}
	}
}

func (lt *logTailer) failure() error {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	return lt.err
}

// matching returns the lines seen at or after since for which keep is true.
func (lt *logTailer) matching(keep func(string) bool, since time.Time) []logLine {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	var out []logLine
	for _, l := range lt.lines {
		if !l.At.Before(since) && keep(l.Text) {
			out = append(out, l)
		}
	}
	return out
}

// ratelimitEvents returns rspamd's summary lines for messages from addr that were
// soft-rejected by the "ip" bucket and that appeared at or after since. One message is
// one summary line.
func (lt *logTailer) ratelimitEvents(addr string, since time.Time) []logLine {
	ipField := ", ip: " + addr + ","
	return lt.matching(func(s string) bool {
		return strings.Contains(s, "rspamd_task_write_log:") && strings.Contains(s, ipField) &&
			strings.Contains(s, `forced: soft reject "Ratelimit "ip" exceeded"`)
	}, since)
}
