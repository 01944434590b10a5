package daemon

import (
	"net"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mailjail/mailjail/internal/core"
)

// sdNotify sends a state line to systemd (Type=notify) when it runs us;
// elsewhere it does nothing. The protocol is one datagram to
// $NOTIFY_SOCKET, so no library is needed for it.
func sdNotify(state string) error {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return nil
	}
	if path[0] == '@' {
		path = "\x00" + path[1:]
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = conn.Write([]byte(state))
	return err
}

// reloadingState is what a reload tells systemd first. Type=notify-reload
// (systemd 253) wants the CLOCK_MONOTONIC time with RELOADING=1, to tell
// this reload from an earlier one; older versions ignore it.
func reloadingState(core.Clock) string {
	var ts unix.Timespec
	state := "RELOADING=1\nSTATUS=reloading configuration"
	if unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts) == nil {
		state += "\nMONOTONIC_USEC=" + strconv.FormatInt(ts.Nano()/1000, 10)
	}
	return state
}

// watchdogInterval is how often to send WATCHDOG=1: half the interval
// systemd asked for (WatchdogSec= sets $WATCHDOG_USEC), or 0 when it
// asked for none or asked another process (WATCHDOG_PID).
func watchdogInterval() time.Duration {
	usec, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64)
	if err != nil || usec <= 0 {
		return 0
	}
	if pid := os.Getenv("WATCHDOG_PID"); pid != "" && pid != strconv.Itoa(os.Getpid()) {
		return 0
	}
	return time.Duration(usec) * time.Microsecond / 2
}

// watchdog pings systemd from the main loop: the loop selects on C and
// calls ping, so a loop that is stuck stops the pings and systemd
// restarts the daemon. Its zero value (no WatchdogSec) never fires.
type watchdog struct {
	tick core.Ticker
}

func newWatchdog(clock core.Clock) *watchdog {
	w := &watchdog{}
	if d := watchdogInterval(); d > 0 {
		w.tick = clock.NewTicker(d)
	}
	return w
}

// C fires when a ping is due; nil (never) without a watchdog.
func (w *watchdog) C() <-chan time.Time {
	if w == nil || w.tick == nil {
		return nil
	}
	return w.tick.C()
}

func (w *watchdog) ping() { sdNotify("WATCHDOG=1") }

func (w *watchdog) stop() {
	if w != nil && w.tick != nil {
		w.tick.Stop()
	}
}

// during runs fn, which may take long but makes progress on its own
// (restoring millions of strikes at the start), while pinging: the loop
// is not stuck, it is busy with fn.
func (w *watchdog) during(fn func() error) error {
	c := w.C()
	if c == nil {
		return fn()
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case <-c:
				w.ping()
			}
		}
	}()
	defer close(done)
	return fn()
}
