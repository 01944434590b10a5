// Command live measures a running mailjail daemon following a log that is
// being written:
//
//   - idle: time from the append of the event that crosses maxretry to the
//     rename of the map file that lists the address (p50, p99, max), with
//     nothing else written;
//   - load: a writer appends generated rspamd log (bench/loggen, 1% events,
//     timestamps rewritten to now) at -rate lines/s for -duration while the
//     same probes run; the daemon's committed read position is polled to
//     show whether lag grows, and after the writer stops, how long until
//     it has read everything;
//   - burst: -burst new addresses cross maxretry at once; map_writes from
//     `status` counts the map rewrites they cost.
//
// The daemon runs with a temporary configuration in a temporary directory
// (loopback only); the map's directory is watched with inotify.
//
//	go run ./bench/live -mailjail bench/out/mailjail                    # 20k lines/s for 20 s
//	go run ./bench/live -mailjail bench/out/mailjail -rate 100000 -duration 60s
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mailjail/mailjail/bench/internal/benchkit"
	"github.com/mailjail/mailjail/bench/loggen"
)

type options struct {
	bin           string
	rate          int
	duration      time.Duration
	probes        int
	probeInterval time.Duration
	burst         int
	maxretry      int
	keep          bool
}

func main() {
	var o options
	flag.StringVar(&o.bin, "mailjail", "bench/out/mailjail", "mailjail binary")
	flag.IntVar(&o.rate, "rate", 20000, "lines per second the writer appends under load")
	flag.DurationVar(&o.duration, "duration", 20*time.Second, "how long the writer appends")
	flag.IntVar(&o.probes, "probes", 50, "ban-latency probes when idle")
	flag.DurationVar(&o.probeInterval, "probe-interval", 250*time.Millisecond, "time between probes under load")
	flag.IntVar(&o.burst, "burst", 10000, "addresses banned at once in the burst test (0: skip)")
	flag.IntVar(&o.maxretry, "maxretry", 10, "jail's maxretry")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "live:", err)
		os.Exit(1)
	}
}

// bench is one run's state.
type bench struct {
	o       options
	cfg     benchkit.Config
	d       *benchkit.Daemon
	f       *os.File
	fmu     sync.Mutex   // one writer at a time
	written atomic.Int64 // bytes appended to the log

	smu     sync.Mutex
	samples []sample // (time, bytes written), for lag in seconds

	mmu     sync.Mutex
	pending map[netip.Addr]chan time.Time // probes waiting for the map
}

type sample struct {
	at    time.Time
	bytes int64
}

func run(o options) error {
	dir, err := os.MkdirTemp("", "mailjail-live-")
	if err != nil {
		return fmt.Errorf("temp dir: %w", err)
	}
	if o.keep {
		fmt.Fprintln(os.Stderr, "live: keeping", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	cfg, err := benchkit.WriteConfig(dir, o.maxretry)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(cfg.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open log: %w", err)
	}
	defer f.Close()
	b := &bench{o: o, cfg: cfg, f: f, pending: map[netip.Addr]chan time.Time{}}
	mw, err := benchkit.WatchMap(cfg.Map, b.onMap)
	if err != nil {
		return err
	}
	defer mw.Close()
	b.d, err = benchkit.Start(o.bin, cfg)
	if err != nil {
		return err
	}
	defer b.d.Stop()
	ready, err := b.d.WaitReady(30 * time.Second)
	if err != nil {
		return err
	}
	fmt.Printf("daemon READY after %s (empty state)\n\n", ready.Sub(b.d.Started).Round(time.Millisecond))

	probe := 0
	next := func() netip.Addr { // 203.0.113.0/24, 198.51.100.0/24, 192.0.2.0/24, then 2001:db8:ffff::/48
		probe++
		nets := [][3]byte{{203, 0, 113}, {198, 51, 100}, {192, 0, 2}}
		if i := (probe - 1) / 254; i < len(nets) {
			return netip.AddrFrom4([4]byte{nets[i][0], nets[i][1], nets[i][2], byte(1 + (probe-1)%254)})
		}
		return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff, 14: byte(probe >> 8), 15: byte(probe)})
	}

	var idle []time.Duration
	for range o.probes {
		lat, err := b.probe(next())
		if err != nil {
			return err
		}
		idle = append(idle, lat)
		time.Sleep(20 * time.Millisecond)
	}
	fmt.Println("| phase | probes | p50 | p99 | max |")
	fmt.Println("| --- | ---: | ---: | ---: | ---: |")
	fmt.Println(percentiles("idle: append of the crossing event → map renamed", idle))

	loaded, lag, err := b.load(next)
	if err != nil {
		return err
	}
	fmt.Println(percentiles(fmt.Sprintf("under load (%d lines/s): append → map renamed", o.rate), loaded))
	fmt.Println()
	fmt.Println(lag)

	if o.burst > 0 {
		out, err := b.burstTest()
		if err != nil {
			return err
		}
		fmt.Println(out)
	}
	return nil
}

// onMap is called for every version of the map.
func (b *bench) onMap(at time.Time, addrs map[netip.Addr]bool) {
	b.mmu.Lock()
	defer b.mmu.Unlock()
	for a, ch := range b.pending {
		if addrs[a] {
			ch <- at
			delete(b.pending, a)
		}
	}
}

// expect registers a that must appear in the map.
func (b *bench) expect(a netip.Addr) chan time.Time {
	ch := make(chan time.Time, 1)
	b.mmu.Lock()
	b.pending[a] = ch
	b.mmu.Unlock()
	return ch
}

// append writes p to the log and returns when the write returned.
func (b *bench) append(p []byte) (time.Time, error) {
	b.fmu.Lock()
	defer b.fmu.Unlock()
	if _, err := b.f.Write(p); err != nil {
		return time.Time{}, fmt.Errorf("append: %w", err)
	}
	now := time.Now()
	n := b.written.Add(int64(len(p)))
	b.smu.Lock()
	b.samples = append(b.samples, sample{now, n})
	b.smu.Unlock()
	return now, nil
}

// eventLines appends the three lines rspamd writes for a message of a
// that its ratelimit soft-rejects, stamped now.
func eventLines(buf []byte, a netip.Addr, now time.Time, seq int) []byte {
	ts := now.UTC().Format("2006-01-02 15:04:05")
	tag := fmt.Sprintf("%06x", seq&0xffffff)
	buf = fmt.Appendf(buf, "%s #4772(rspamd_proxy) <%s>; lua; ratelimit.lua:617: ratelimit \"ip(12500:%s)\" exceeded, (8 / 0.016666666666666666): 6.978956115 (0.9411:0.8856 dyn); redis key: RL9u8zhnmitiomuioj\n", ts, tag, a)
	buf = fmt.Appendf(buf, "%s #4772(rspamd_proxy) <%s>; proxy; rspamd_add_passthrough_result: <%d.live@vm>: set pre-result to 'soft reject' (no score): 'Ratelimit \"ip\" exceeded' from ratelimit(1)\n", ts, tag, seq)
	buf = fmt.Appendf(buf, "%s #4772(rspamd_proxy) <%s>; proxy; rspamd_task_write_log: id: <%d.live@vm>, qid: <5346CBA274>, ip: %s, from: <carol@example.net>, (default: F (soft reject): [0.00/15.00] [ASN_FAIL(0.00){6.5.18.198.asn.rspamd.com:query timed out;}]), len: 242, time: 101.481ms, dns req: 1, digest: <1c1c80e355d3ba8ad4200cbcb3e17881>, rcpts: <bob@example.org>, mime_rcpts: <bob@example.org>, forced: soft reject \"Ratelimit \"ip\" exceeded\"; score=nan (set by ratelimit)\n", ts, tag, seq, a)
	return buf
}

// probe writes maxretry-1 events of a, waits briefly, writes the event
// that crosses maxretry and returns the time from that append to the map
// rename that lists a.
func (b *bench) probe(a netip.Addr) (time.Duration, error) {
	var buf []byte
	for i := range b.o.maxretry - 1 {
		buf = eventLines(buf, a, time.Now(), i)
	}
	if _, err := b.append(buf); err != nil {
		return 0, err
	}
	time.Sleep(30 * time.Millisecond)
	ch := b.expect(a)
	t0, err := b.append(eventLines(nil, a, time.Now(), b.o.maxretry))
	if err != nil {
		return 0, err
	}
	select {
	case at := <-ch:
		return at.Sub(t0), nil
	case <-time.After(10 * time.Second):
		return 0, fmt.Errorf("probe %s: not in the map 10s after its crossing event", a)
	}
}

// load appends generated log at o.rate lines/s for o.duration while
// probing, and reports lag.
func (b *bench) load(next func() netip.Addr) ([]time.Duration, string, error) {
	tmpl, err := loadTemplate()
	if err != nil {
		return nil, "", err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := time.Now()
	var lines atomic.Int64
	werr := make(chan error, 1)
	go func() { werr <- b.write(ctx, start, tmpl, &lines) }()
	pointsc := make(chan []lagPoint, 1)
	go func() { pointsc <- b.pollLag(ctx, start) }()

	var lat []time.Duration
	var perr error
	for time.Since(start) < b.o.duration-b.o.probeInterval {
		l, err := b.probe(next())
		if err != nil {
			perr = err
			break
		}
		lat = append(lat, l)
		time.Sleep(b.o.probeInterval)
	}
	if err := <-werr; err != nil {
		return nil, "", err
	}
	stop := time.Now()
	points := <-pointsc
	if perr != nil {
		return nil, "", perr
	}
	return lat, b.lagReport(lines.Load(), start, stop, points, b.catchUp(stop)), nil
}

// loadTemplate is the generated log the writer cycles through.
func loadTemplate() ([][]byte, error) {
	o := loggen.Defaults()
	o.Lines = 200000
	var gen bytes.Buffer
	if _, err := loggen.Generate(&gen, o); err != nil {
		return nil, fmt.Errorf("generate load: %w", err)
	}
	tmpl := bytes.SplitAfter(gen.Bytes(), []byte{'\n'})
	return tmpl[:len(tmpl)-1], nil // trailing empty piece
}

// write appends tmpl's lines, stamped with the current time, at o.rate
// lines/s until o.duration has passed or ctx ends; lines counts them.
func (b *bench) write(ctx context.Context, start time.Time, tmpl [][]byte, lines *atomic.Int64) error {
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	var buf []byte
	i := 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-tick.C:
			if now.Sub(start) >= b.o.duration {
				return nil
			}
			due := int64(now.Sub(start).Seconds()*float64(b.o.rate)) - lines.Load()
			due = min(due, int64(b.o.rate/10+1))
			ts := now.UTC().Format("2006-01-02 15:04:05")
			buf = buf[:0]
			for range due {
				l := tmpl[i%len(tmpl)]
				i++
				k := len(buf)
				buf = append(buf, l...)
				copy(buf[k:], ts)
			}
			if _, err := b.append(buf); err != nil {
				return err
			}
			lines.Add(due)
		}
	}
}

// lagPoint is one reading of the read lag.
type lagPoint struct {
	t     time.Duration
	bytes int64
	lag   time.Duration
}

// pollLag reads the lag every 250 ms while the writer runs.
func (b *bench) pollLag(ctx context.Context, start time.Time) []lagPoint {
	var points []lagPoint
	for ctx.Err() == nil && time.Since(start) < b.o.duration {
		if lb, ls, err := b.lag(); err == nil {
			points = append(points, lagPoint{time.Since(start), lb, ls})
		}
		time.Sleep(250 * time.Millisecond)
	}
	return points
}

// catchUp is how long after stop the daemon had read it all (-1: not
// within 60 s).
func (b *bench) catchUp(stop time.Time) time.Duration {
	for time.Since(stop) < 60*time.Second {
		if lb, _, err := b.lag(); err == nil && lb <= 0 {
			return time.Since(stop)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return -1
}

// lagReport is the load's table: lines written, the worst lag per
// quarter of the run, the catch-up time.
func (b *bench) lagReport(written int64, start, stop time.Time, points []lagPoint, caught time.Duration) string {
	var sb bytes.Buffer
	fmt.Fprintf(&sb, "Load: %d lines (%.1f MB) appended in %s = %.0f lines/s; committed-position lag polled every 250 ms:\n\n",
		written, float64(b.written.Load())/1e6, stop.Sub(start).Round(time.Millisecond), float64(written)/stop.Sub(start).Seconds())
	fmt.Fprintln(&sb, "| window | max lag (bytes) | max lag (time) |")
	fmt.Fprintln(&sb, "| --- | ---: | ---: |")
	quarter := b.o.duration / 4
	for q := range 4 {
		var mb int64
		var ml time.Duration
		for _, p := range points {
			if p.t >= time.Duration(q)*quarter && p.t < time.Duration(q+1)*quarter {
				mb, ml = max(mb, p.bytes), max(ml, p.lag)
			}
		}
		fmt.Fprintf(&sb, "| %s–%s | %d | %s |\n", time.Duration(q)*quarter, time.Duration(q+1)*quarter, mb, ml.Round(time.Millisecond))
	}
	if caught < 0 {
		fmt.Fprintf(&sb, "\nAfter the writer stopped: still behind after 60 s.\n")
	} else {
		fmt.Fprintf(&sb, "\nAfter the writer stopped: everything read and committed within %s.\n", caught.Round(time.Millisecond))
	}
	return sb.String()
}

// lag is how far the daemon's committed position is behind the writer,
// in bytes and in time (how long ago the writer had written that much).
func (b *bench) lag() (int64, time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	now := time.Now()
	written := b.written.Load()
	st, err := b.d.Status(ctx)
	if err != nil {
		return 0, 0, err
	}
	off := benchkit.Offset(st, b.cfg.Log)
	if off < 0 {
		return 0, 0, errors.New("log not in status")
	}
	if off >= written {
		return 0, 0, nil
	}
	b.smu.Lock()
	i, _ := slices.BinarySearchFunc(b.samples, off, func(s sample, t int64) int { return int(s.bytes - t) })
	var at time.Time
	if i < len(b.samples) {
		at = b.samples[i].at
	}
	b.smu.Unlock()
	if at.IsZero() {
		return written - off, 0, nil
	}
	return written - off, now.Sub(at), nil
}

// burstTest makes o.burst new addresses cross maxretry in one go and
// counts the map rewrites.
func (b *bench) burstTest() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	time.Sleep(time.Second)
	st, err := b.d.Status(ctx)
	if err != nil {
		return "", err
	}
	w0 := st.MapWrites
	addrs := make([]netip.Addr, b.o.burst)
	chans := make([]chan time.Time, b.o.burst)
	for i := range addrs {
		addrs[i] = netip.AddrFrom4([4]byte{10, 200 + byte(i>>16), byte(i >> 8), byte(i)})
		chans[i] = b.expect(addrs[i])
	}
	start := time.Now()
	var buf []byte
	lines := 0
	for k := range b.o.maxretry { // round k: every address's k-th event
		for i, a := range addrs {
			buf = eventLines(buf, a, time.Now(), k*len(addrs)+i)
			lines += 3
			if len(buf) > 1<<20 {
				if _, err := b.append(buf); err != nil {
					return "", err
				}
				buf = buf[:0]
			}
		}
	}
	if _, err := b.append(buf); err != nil {
		return "", err
	}
	wrote := time.Now()
	var last time.Time
	for i, ch := range chans {
		select {
		case at := <-ch:
			if at.After(last) {
				last = at
			}
		case <-time.After(120 * time.Second):
			return "", fmt.Errorf("burst: %s not in the map after 120 s", addrs[i])
		}
	}
	time.Sleep(2 * time.Second) // let trailing writes land before counting
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	st, err = b.d.Status(ctx2)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("Burst: %d new addresses × %d events (%d lines, written in %s): all %d in the map %s after the last append; map rewrites: %d (map_writes %d → %d).",
		b.o.burst, b.o.maxretry, lines, wrote.Sub(start).Round(time.Millisecond), b.o.burst, last.Sub(wrote).Round(time.Millisecond),
		st.MapWrites-w0, w0, st.MapWrites), nil
}

// percentiles is a table row: p50, p99 (nearest rank) and max.
func percentiles(name string, ds []time.Duration) string {
	if len(ds) == 0 {
		return fmt.Sprintf("| %s | 0 | – | – | – |", name)
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := func(p float64) time.Duration {
		i := int(p*float64(len(s))+0.999999) - 1
		return s[min(max(i, 0), len(s)-1)]
	}
	f := func(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/1e6) }
	return fmt.Sprintf("| %s | %d | %s | %s | %s |", name, len(s), f(rank(0.5)), f(rank(0.99)), f(s[len(s)-1]))
}
