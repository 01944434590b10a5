package watcher

import (
	"log/slog"
	"time"

	"github.com/mailjail/mailjail/internal/core"
)

// Position is where reading of a source stopped (see core.Position).
type Position = core.Position

// Line is one line read from a source (see core.Line).
type Line = core.Line

// A Waker tells the follower when to look at its files again. The default
// ticks every Options.PollInterval (on Options.Clock); tests supply one they
// kick by hand so they never have to sleep.
type Waker interface {
	// Wake returns a channel that receives (or is closed) when it is time
	// to look. The follower keeps the channel until it fires and calls
	// Wake again only when it has read and delivered everything there
	// was, so a call means "done, waiting".
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
	// Waker replaces the PollInterval ticker (test hook; see
	// internal/testutil.TestWaker).
	Waker Waker

	// afterLook is a test hook, called by the follower's goroutine when
	// it has found a new file at a path and is about to open it.
	afterLook func(path string)
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
