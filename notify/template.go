package notify

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"time"
)

// The default templates; examples/alerts/ ships the same files for
// editing (a test keeps them identical).
//
//go:embed templates/*.tmpl
var defaultTemplates embed.FS

// Template file names: the subject and body of a single alert's mail, of
// a digest, and the section of one alert both bodies include
// ({{template "alert.tmpl" .}}).
const (
	SubjectTemplate       = "subject.tmpl"
	BodyTemplate          = "body.tmpl"
	DigestSubjectTemplate = "digest-subject.tmpl"
	DigestBodyTemplate    = "digest-body.tmpl"
	AlertTemplate         = "alert.tmpl"
)

// TemplateNames are the files a template_dir may override.
var TemplateNames = []string{SubjectTemplate, BodyTemplate, DigestSubjectTemplate, DigestBodyTemplate, AlertTemplate}

// DefaultTemplate is the embedded default of one template file.
func DefaultTemplate(name string) ([]byte, error) {
	return defaultTemplates.ReadFile("templates/" + name)
}

// Templates are the parsed templates, defaults and overrides together.
type Templates struct {
	set *template.Template
}

// LoadTemplates parses the default templates, each replaced by the file
// of the same name in dir when dir is set and holds one. It also runs
// them on sample alerts, so a template naming a field that does not
// exist fails here (and in `mailjail check`), naming the file, instead
// of at every alert.
func LoadTemplates(dir string) (*Templates, error) {
	set := template.New("").Option("missingkey=error").Funcs(template.FuncMap{"join": strings.Join})
	for _, name := range TemplateNames {
		text, err := DefaultTemplate(name)
		if err != nil {
			return nil, err
		}
		source := "default " + name
		if dir != "" {
			path := filepath.Join(dir, name)
			b, err := os.ReadFile(path)
			switch {
			case err == nil:
				text, source = b, path
			case !errors.Is(err, fs.ErrNotExist):
				return nil, fmt.Errorf("alert template: %w", err)
			}
		}
		if _, err := set.New(name).Parse(string(text)); err != nil {
			return nil, fmt.Errorf("alert template %s: %w", source, err)
		}
	}
	t := &Templates{set: set}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	samples := []Alert{sampleBan(now), sampleSuspension(now)}
	for _, name := range TemplateNames {
		if name == AlertTemplate {
			continue
		}
		var data any = dataOf(samples[0], 1, renderOptions{host: "mx.example.org", prefix: "[mailjail]", maxLines: 10, lineLength: 300})
		if strings.HasPrefix(name, "digest") {
			data = digestOf(samples, renderOptions{host: "mx.example.org", prefix: "[mailjail]", maxLines: 10, lineLength: 300})
		}
		if _, err := t.render(name, data); err != nil {
			path := "default " + name
			if dir != "" {
				if _, serr := os.Stat(filepath.Join(dir, name)); serr == nil {
					path = filepath.Join(dir, name)
				}
			}
			return nil, fmt.Errorf("alert template %s: %w", path, err)
		}
	}
	return t, nil
}

func (t *Templates) render(name string, data any) (string, error) {
	var b bytes.Buffer
	if err := t.set.ExecuteTemplate(&b, name, data); err != nil {
		return "", err
	}
	return b.String(), nil
}

// Data is what the templates see of one alert: all of it in subject.tmpl
// and body.tmpl, each of Digest.Alerts in the digest's. Strings are
// mailjail's own values or cleaned copies of logged text (TextLine):
// no control characters, valid UTF-8. examples/alerts/README documents
// every field.
type Data struct {
	Host          string // the host mailjail runs on
	SubjectPrefix string // [alert] subject_prefix
	Event         string // "ban", "unban", "suspend", "account over its limit", "urgent rate", "would ban", "would suspend", "circuit breaker tripped", "test"
	LogOnly       bool   // a log-only jail's would-be ban or suspension: nothing was enforced
	Jail          string
	Kind          string // "address", "prefix" or "account"
	Addr          string // the address, prefix or account
	Address       string // Addr when Kind is "address", else empty
	Prefix        string // Addr when Kind is "prefix"
	Account       string // Addr when Kind is "account"
	Since         string // RFC3339, UTC; empty when unknown
	Until         string // RFC3339, UTC, or "permanent"; empty for events without an end
	Permanent     bool   // Until is "permanent"
	Length        string // Until - Since ("1h", "2d12h") or "permanent"; empty with Until
	Strikes       int
	Offense       int // 1 for a first ban, 2 for the next inside bantime_lookback, ...
	Reason        string
	Lines         []string // matched log lines: at most max_lines, each cut to line_length bytes
	LinesOmitted  int      // lines beyond max_lines
	Sources       []string // an account's client addresses, with strikes and bans
	History       []string // earlier bans of the address, newest first: "SINCE JAIL LENGTH (lifted AT by WHO)"
	Command       string   // the shell command that undoes it; empty when nothing to undo
	Show          string   // the shell command that shows the address or account; empty without one
	Index         int      // position in the digest, from 1 (1 in a single alert)
}

// Digest is what digest-subject.tmpl and digest-body.tmpl see.
type Digest struct {
	Host          string
	SubjectPrefix string
	Count         int          // alerts in the digest
	Summary       string       // "12 bans, 1 suspension"
	Events        []EventCount // the same, most frequent first
	First, Last   string       // RFC3339 UTC: the earliest and latest Since
	Alerts        []Data
}

// EventCount is how many alerts of one event a digest holds.
type EventCount struct {
	Event string
	Count int
	Label string // "12 bans", "1 suspension"
}

type renderOptions struct {
	host, prefix         string
	maxLines, lineLength int
}

// dataOf is a's template data: every logged value cleaned and bounded.
func dataOf(a Alert, index int, o renderOptions) Data {
	clean := func(s string) string { return TextLine(s, o.lineLength) }
	d := Data{
		Host: o.host, SubjectPrefix: o.prefix, Index: index,
		Event: clean(a.Event), LogOnly: a.LogOnly(), Jail: clean(a.Jail), Addr: clean(a.Addr), Kind: kindOf(a.Addr),
		Strikes: a.Strikes, Offense: a.Offense, Reason: clean(a.Reason),
	}
	switch d.Kind {
	case "address":
		d.Address = d.Addr
	case "prefix":
		d.Prefix = d.Addr
	default:
		d.Account = d.Addr
	}
	if !a.Since.IsZero() {
		d.Since = a.Since.UTC().Format(time.RFC3339)
	}
	switch {
	case !a.Until.IsZero():
		d.Until = a.Until.UTC().Format(time.RFC3339)
		if !a.Since.IsZero() {
			d.Length = formatLength(a.Until.Sub(a.Since))
		}
	case hasEnd(a.Event):
		d.Until, d.Length, d.Permanent = "permanent", "permanent", true
	}
	for i, l := range a.Lines {
		if i == o.maxLines {
			d.LinesOmitted = len(a.Lines) - i
			break
		}
		d.Lines = append(d.Lines, clean(l))
	}
	for _, s := range a.Sources {
		d.Sources = append(d.Sources, clean(s))
	}
	for _, h := range a.History {
		d.History = append(d.History, clean(h))
	}
	switch {
	case a.Command != "":
		d.Command = TextLine(a.Command, 0)
	case a.Event == "ban":
		d.Command = UnbanCommand(a.Addr)
	case a.Event == "suspend":
		d.Command = ReleaseCommand(a.Addr)
	}
	if a.Addr != "" {
		d.Show = command("show", a.Addr)
	}
	return d
}

// hasEnd reports events whose zero Until means permanent.
func hasEnd(event string) bool {
	switch event {
	case "ban", "suspend", "account over its limit", EventWouldBan, EventWouldSuspend:
		return true
	}
	return false
}

func kindOf(addr string) string {
	if _, err := netip.ParseAddr(addr); err == nil {
		return "address"
	}
	if _, err := netip.ParsePrefix(addr); err == nil {
		return "prefix"
	}
	return "account"
}

// formatLength writes d as days, hours, minutes and seconds, leaving out
// the zero ones ("1h", "2d12h", "90s" as "1m30s").
func formatLength(d time.Duration) string {
	if d <= 0 {
		return "0s"
	}
	d = d.Round(time.Second)
	var b strings.Builder
	for _, u := range []struct {
		d    time.Duration
		name string
	}{{24 * time.Hour, "d"}, {time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}} {
		if n := d / u.d; n > 0 {
			b.WriteString(strconv.FormatInt(int64(n), 10) + u.name)
			d -= n * u.d
		}
	}
	return b.String()
}

// digestOf is the template data of a digest of batch.
func digestOf(batch []Alert, o renderOptions) Digest {
	dg := Digest{Host: o.host, SubjectPrefix: o.prefix, Count: len(batch)}
	counts := map[string]int{}
	var first, last time.Time
	for i, a := range batch {
		dg.Alerts = append(dg.Alerts, dataOf(a, i+1, o))
		counts[a.Event]++
		if !a.Since.IsZero() && (first.IsZero() || a.Since.Before(first)) {
			first = a.Since
		}
		if a.Since.After(last) {
			last = a.Since
		}
	}
	for ev, n := range counts {
		dg.Events = append(dg.Events, EventCount{Event: TextLine(ev, 0), Count: n, Label: eventLabel(TextLine(ev, 0), n)})
	}
	slices.SortFunc(dg.Events, func(a, b EventCount) int {
		if a.Count != b.Count {
			return b.Count - a.Count
		}
		return strings.Compare(a.Event, b.Event)
	})
	var labels []string
	for _, e := range dg.Events {
		labels = append(labels, e.Label)
	}
	dg.Summary = strings.Join(labels, ", ")
	if !first.IsZero() {
		dg.First, dg.Last = first.UTC().Format(time.RFC3339), last.UTC().Format(time.RFC3339)
	}
	return dg
}

// eventLabel counts n events in words: "1 ban", "12 bans", "1
// suspension", "3 urgent rate events".
func eventLabel(event string, n int) string {
	one, many := event, event+"s"
	switch event {
	case "suspend":
		one, many = "suspension", "suspensions"
	case "account over its limit":
		many = "accounts over their limit"
	case "urgent rate":
		one, many = "urgent rate event", "urgent rate events"
	case EventWouldBan:
		one, many = "would-be ban", "would-be bans"
	case EventWouldSuspend:
		one, many = "would-be suspension", "would-be suspensions"
	case EventBreaker:
		one, many = "circuit breaker trip", "circuit breaker trips"
	case "ban", "unban":
	default:
		one, many = event+" event", event+" events"
	}
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

// SampleAlert is the alert `mailjail test-alert` sends: a made-up ban of
// a documentation address (nothing is banned), with every field set so
// that the mail shows the layout of a real one.
func SampleAlert(now time.Time) Alert {
	a := sampleBan(now)
	a.Event = "test"
	a.Jail = "test-alert"
	a.Reason = "a sample sent by mailjail test-alert: nothing was banned"
	a.Command = ""
	return a
}

func sampleBan(now time.Time) Alert {
	return Alert{Event: "ban", Jail: "rspamd-ratelimit", Addr: "192.0.2.1", Since: now, Until: now.Add(time.Hour),
		Strikes: 10, Offense: 1, Reason: "10 strikes in 10m",
		Lines:   []string{`2026-01-02 03:04:05 #1234(rspamd_proxy) <5f3a1c>; proxy; rspamd_task_write_log: id: <x@example.org>, ip: 192.0.2.1, (default: F (no action): [0.00/15.00] [RATELIMIT_CHECK(0.00){ip:192.0.2.1 exceeded}])`},
		History: []string{"2025-12-30T10:00:00Z rspamd-ratelimit 1h"}}
}

func sampleSuspension(now time.Time) Alert {
	return Alert{Event: "suspend", Jail: "rspamd-account", Addr: "mallory@example.org", Since: now, Until: now.Add(24 * time.Hour),
		Strikes: 5, Offense: 2, Reason: "5 strikes in 10m", Sources: []string{"198.51.100.7: 5 of its strikes, banned as 198.51.100.7"},
		Command: ReleaseCommand("mallory@example.org")}
}
