// Command startup measures how fast mailjail starts on a large state:
// -bans active bans and -strikes stored strikes (-recent of them inside
// findtime, from -clients distinct addresses; the rest spread over the 7
// days the daemon keeps). It builds the database with seed.sql into a
// temporary directory (schema from store.Open, rows from recursive CTEs,
// in one transaction), then starts `mailjail run` -runs times and reports
// for each run the time until the map file was renamed into place and
// until READY=1 (sent once the map is written and the logs are followed),
// plus the daemon's RSS right after READY.
//
//	go run ./bench/startup                                   # 100k bans, 10M strikes
//	go run ./bench/startup -bans 1000 -strikes 100000 -recent 10000 -clients 10000
package main

import (
	"bytes"
	"context"
	"database/sql"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/template"
	"time"

	_ "github.com/mattn/go-sqlite3" // database/sql driver

	"github.com/mailjail/mailjail/bench/internal/benchkit"
	"github.com/mailjail/mailjail/internal/store"
)

//go:embed seed.sql
var seedSQL string

type seed struct {
	Bans, Strikes, Recent, Clients int
	Now                            int64
	Line                           string
}

func main() {
	var s seed
	bin := flag.String("mailjail", "bench/out/mailjail", "mailjail binary")
	flag.IntVar(&s.Bans, "bans", 100000, "active bans")
	flag.IntVar(&s.Strikes, "strikes", 10000000, "stored strikes")
	flag.IntVar(&s.Recent, "recent", 1000000, "strikes inside findtime (restored into memory)")
	flag.IntVar(&s.Clients, "clients", 1000000, "distinct addresses of the strikes")
	lineBytes := flag.Int("line-bytes", 0, "length of the log line stored with each strike")
	runs := flag.Int("runs", 2, "daemon starts to time")
	keep := flag.Bool("keep", false, "keep the temporary directory")
	flag.Parse()
	s.Line = strings.Repeat("x", *lineBytes)
	if err := run(*bin, s, *runs, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "startup:", err)
		os.Exit(1)
	}
}

func run(bin string, s seed, runs int, keep bool) error {
	if s.Bans < 1 || s.Strikes < 1 || s.Clients < 1 || s.Recent < 1 || s.Recent > s.Strikes || s.Clients > 4000000 || s.Bans > 3000000 {
		return errors.New("need ≥ 1 of each, -recent ≤ -strikes, -clients ≤ 4M, -bans ≤ 3M")
	}
	dir, err := os.MkdirTemp("", "mailjail-startup-")
	if err != nil {
		return fmt.Errorf("temp dir: %w", err)
	}
	if keep {
		fmt.Fprintln(os.Stderr, "startup: keeping", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	cfg, err := benchkit.WriteConfig(dir, 10)
	if err != nil {
		return err
	}
	if err := os.WriteFile(cfg.Log, nil, 0o644); err != nil {
		return fmt.Errorf("create log: %w", err)
	}
	s.Now = time.Now().UnixNano()
	t0 := time.Now()
	if err := build(cfg.Database, s); err != nil {
		return err
	}
	fi, err := os.Stat(cfg.Database)
	if err != nil {
		return fmt.Errorf("stat database: %w", err)
	}
	fmt.Printf("Database: %d active bans, %d strikes (%d inside findtime, %d addresses), %.0f MB, built in %s with bench/startup/seed.sql\n\n",
		s.Bans, s.Strikes, s.Recent, s.Clients, float64(fi.Size())/1e6, time.Since(t0).Round(time.Millisecond))
	fmt.Println("| run | map written | READY=1 | daemon RSS after READY | map entries | strikes restored | addresses tracked | RSS then |")
	fmt.Println("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	for r := 1; r <= runs; r++ {
		if err := once(bin, cfg, r); err != nil {
			return err
		}
	}
	return nil
}

// build creates the schema with store.Open and runs seed.sql.
func build(path string, s seed) error {
	st, err := store.Open(path, store.Options{Durable: false})
	if err != nil {
		return err
	}
	if err := st.Close(); err != nil {
		return fmt.Errorf("close database: %w", err)
	}
	var script bytes.Buffer
	if err := template.Must(template.New("seed").Parse(seedSQL)).Execute(&script, s); err != nil {
		return fmt.Errorf("seed script: %w", err)
	}
	db, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		return fmt.Errorf("open database: %w", err)
	}
	defer db.Close()
	if _, err := db.Exec(script.String()); err != nil {
		return fmt.Errorf("seed database: %w", err)
	}
	if _, err := db.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	return nil
}

// once starts the daemon, waits for the map and READY, and stops it.
func once(bin string, cfg benchkit.Config, run int) error {
	os.Remove(cfg.Map)
	mapped := make(chan time.Time, 1)
	mw, err := benchkit.WatchMap(cfg.Map, func(at time.Time, addrs map[netip.Addr]bool) {
		select {
		case mapped <- at:
		default:
		}
	})
	if err != nil {
		return err
	}
	defer mw.Close()
	d, err := benchkit.Start(bin, cfg)
	if err != nil {
		return err
	}
	ready, err := d.WaitReady(120 * time.Second)
	if err != nil {
		d.Stop()
		return err
	}
	rss := rssOf(d)
	var mapAt time.Time
	select {
	case mapAt = <-mapped:
	case <-time.After(10 * time.Second):
	}
	restored, err := d.WaitFollowing(60 * time.Second)
	if err != nil {
		d.Stop()
		return err
	}
	rssRestored := rssOf(d)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	st, err := d.Status(ctx)
	cancel()
	entries, tracked := -1, 0
	if err == nil {
		entries = st.MapEntries
		for _, j := range st.Jails {
			tracked += j.StrikesTracked
		}
	}
	if err := d.Stop(); err != nil {
		return err
	}
	ms := func(t time.Time) string {
		if t.IsZero() {
			return "not seen"
		}
		return fmt.Sprintf("%.3f s", t.Sub(d.Started).Seconds())
	}
	fmt.Printf("| %d | %s | %s | %s | %d | %s | %d | %s |\n", run, ms(mapAt), ms(ready), rss, entries, ms(restored), tracked, rssRestored)
	return nil
}

// rssOf reads the daemon's VmRSS.
func rssOf(d *benchkit.Daemon) string {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(d.PID()), "status"))
	if err != nil {
		return "?"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return fmt.Sprintf("%.0f MB", kb*1024/1e6)
		}
	}
	return "?"
}
