// Package loggen generates deterministic, realistic rspamd proxy and
// Postfix logs for mailjail's benchmarks (bench/gen is its command line).
//
// The line shapes are those of the real fixtures in testdata/
// (rspamd-3.4-proxy.log, postfix-3.7.log): every message rspamd's proxy
// scans produces milter and proxy noise and one rspamd_task_write_log
// summary line; a message soft-rejected by the ratelimit module adds the
// ratelimit.lua and rspamd_add_passthrough_result lines and ends its
// summary with rspamd's forced-action text. In Postfix logs a ratelimit
// event is cleanup's milter-reject line. Timestamps increase like a busy
// mail host's (Poisson arrivals); most events come in bursts from a few
// attacking clients, the rest are scattered over all clients. A Hostile
// share of messages carries injected text in the Message-ID, sender and
// recipients (like the fixtures' evil.eml) that contains the filters'
// literals, so a benchmark pays for the regex on them too; none of it is
// an event. The same Options always produce the same bytes.
package loggen

import (
	"bufio"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"time"
)

// Options describe the log to generate.
type Options struct {
	Lines     int       // exact number of lines written
	Events    float64   // share of lines that are ratelimit events (one per rejected message)
	Clients   int       // distinct client addresses
	V6        float64   // share of clients with an IPv6 address
	Attackers int       // clients that attack in bursts
	Burst     float64   // share of events that come from attackers' bursts
	Hostile   float64   // share of messages with injected text
	UserShare float64   // share of events in rspamd's "user" bucket (no strike by default)
	Rate      float64   // messages per second of log time
	Seed      uint64    // PRNG seed
	Kind      string    // "rspamd" or "postfix"
	Start     time.Time // time of the first line
}

// Defaults are the generator's default options (the command's flag
// defaults): 1% events, 5,000 clients, 20% IPv6, 2% hostile messages.
func Defaults() Options {
	return Options{Lines: 100000, Events: 0.01, Clients: 5000, V6: 0.2, Attackers: 20, Burst: 0.8, Hostile: 0.02,
		UserShare: 0.05, Rate: 20, Seed: 1, Kind: "rspamd", Start: time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)}
}

// Stats is what was written.
type Stats struct {
	Lines, Events, Hostile, Messages int
	EventClients                     map[netip.Addr]int // events per client address
	First, Last                      time.Time
}

// gen holds the state of one generation run.
type gen struct {
	o     Options
	rng   *rand.Rand
	w     *bufio.Writer
	buf   []byte
	now   time.Time
	st    Stats
	seq   int
	pid   int
	burst struct {
		client int
		left   int
	}
	err error
}

// Generate writes o.Lines lines to w and reports what it wrote.
func Generate(w io.Writer, o Options) (Stats, error) {
	switch {
	case o.Lines < 0, o.Clients < 1, o.Events < 0, o.Events > 0.2, o.Rate <= 0:
		return Stats{}, errors.New("need -lines ≥ 0, -clients ≥ 1, 0 ≤ -events ≤ 0.2, -rate > 0")
	case o.Kind != "rspamd" && o.Kind != "postfix":
		return Stats{}, fmt.Errorf("-kind %q: want rspamd or postfix", o.Kind)
	}
	o.Attackers = min(max(o.Attackers, 1), o.Clients)
	g := &gen{o: o, rng: rand.New(rand.NewPCG(o.Seed, 0x6d61696c6a61696c)), w: bufio.NewWriterSize(w, 1<<20),
		now: o.Start, pid: 3861, st: Stats{EventClients: map[netip.Addr]int{}, First: o.Start}}
	target := float64(o.Lines) * o.Events
	for g.st.Lines < o.Lines && g.err == nil {
		g.tick()
		// Keep the running share of event lines on target, so every prefix
		// of the file has about the requested share.
		event := float64(g.st.Events) < target*float64(g.st.Lines+12)/float64(max(o.Lines, 1))
		hostile := !event && g.rng.Float64() < o.Hostile
		if o.Kind == "rspamd" {
			g.rspamdMessage(event, hostile)
		} else {
			g.postfixMessage(event, hostile)
		}
		g.st.Messages++
		if hostile {
			g.st.Hostile++
		}
		if g.rng.IntN(200) == 0 {
			g.noise()
		}
	}
	if g.err != nil {
		return g.st, fmt.Errorf("write log: %w", g.err)
	}
	if err := g.w.Flush(); err != nil {
		return g.st, fmt.Errorf("write log: %w", err)
	}
	g.st.Last = g.now
	return g.st, nil
}

// tick advances the clock by an exponentially distributed gap (Poisson
// arrivals at o.Rate messages per second), at microsecond resolution.
func (g *gen) tick() {
	gap := g.rng.ExpFloat64() / g.o.Rate
	g.now = g.now.Add(time.Duration(gap * float64(time.Second)).Truncate(time.Microsecond))
}

// clientAddr is client i's address in this run.
func (g *gen) clientAddr(i int) netip.Addr { return ClientAddr(i, g.o.V6, g.o.Seed) }

// ClientAddr is client i's address: 198.18.0.0/15 (then 100.64.0.0/10)
// for IPv4, 2001:db8::/32 for a v6 share of clients; the same i, v6 and
// seed always give the same address, and distinct i distinct addresses.
func ClientAddr(i int, v6 float64, seed uint64) netip.Addr {
	h := uint64(i)*0x9e3779b97f4a7c15 + seed
	if float64(h>>11)/float64(1<<53) < v6 {
		return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i), 15: byte(1 + i%250)})
	}
	n := uint32(i + 1)
	if n < 131070 {
		return netip.AddrFrom4([4]byte{198, 18 + byte(n>>16), byte(n >> 8), byte(n)})
	}
	n = n - 131070 + 1
	return netip.AddrFrom4([4]byte{100, 64 + byte(n>>16&0x3f), byte(n >> 8), byte(n)})
}

// eventClient picks the client of the next event: the current burst's
// attacker, a new burst, or a random client.
func (g *gen) eventClient() int {
	if g.burst.left > 0 {
		g.burst.left--
		return g.burst.client
	}
	if g.rng.Float64() < g.o.Burst {
		g.burst.client = g.rng.IntN(g.o.Attackers)
		g.burst.left = 10 + g.rng.IntN(50)
		return g.burst.client
	}
	return g.rng.IntN(g.o.Clients)
}

const tagChars = "0123456789abcdefghijklmnopqrstuvwxyz"

func (g *gen) tag() string {
	var b [6]byte
	for i := range b {
		b[i] = tagChars[g.rng.IntN(len(tagChars))]
	}
	return string(b[:])
}

func (g *gen) qid() string {
	const hexu = "0123456789ABCDEF"
	var b [10]byte
	for i := range b {
		b[i] = hexu[g.rng.IntN(16)]
	}
	return string(b[:])
}

func (g *gen) digest() string {
	g.seq++
	s := md5.Sum([]byte(strconv.Itoa(g.seq)))
	return hex.EncodeToString(s[:])
}

// line writes one line with the current timestamp and reports whether
// it did: it stops at o.Lines.
func (g *gen) line(parts ...string) bool {
	if g.st.Lines >= g.o.Lines || g.err != nil {
		return false
	}
	g.buf = g.buf[:0]
	if g.o.Kind == "rspamd" {
		g.buf = g.now.AppendFormat(g.buf, "2006-01-02 15:04:05")
	} else {
		g.buf = g.now.AppendFormat(g.buf, time.Stamp)
	}
	g.buf = append(g.buf, ' ')
	for _, p := range parts {
		g.buf = append(g.buf, p...)
	}
	g.buf = append(g.buf, '\n')
	if _, err := g.w.Write(g.buf); err != nil {
		g.err = err
		return false
	}
	g.st.Lines++
	g.st.Last = g.now
	return true
}

// reverse is the DNS reverse name rspamd queries for a (asn, rbl lookups).
func reverse(a netip.Addr) string {
	b := make([]byte, 0, 72)
	if a.Is4() {
		v := a.As4()
		for i := 3; i >= 0; i-- {
			b = strconv.AppendInt(b, int64(v[i]), 10)
			if i > 0 {
				b = append(b, '.')
			}
		}
		return string(b)
	}
	v := a.As16()
	const hx = "0123456789abcdef"
	for i := 15; i >= 0; i-- {
		b = append(b, hx[v[i]&15], '.', hx[v[i]>>4])
		if i > 0 {
			b = append(b, '.')
		}
	}
	return string(b)
}

var (
	senders    = []string{"carol@example.net", "newsletter@example.com", "billing@example.org", "noreply@example.info", "spam@example.net"}
	recipients = []string{"bob@example.org", "alice@example.org", "postmaster@example.org", "sales@example.org"}
	rbls       = []string{"rep.mailspike.net", "ix.dnsbl.manitu.net", "bl.score.senderscore.com", "zen.spamhaus.org", "bl.blocklist.de"}
)

// hostileFields are injected Message-ID, sender and recipient texts: they
// carry the filters' literals and fake event text (rspamd escapes spaces
// in the Message-ID as '?'), but are no events.
func (g *gen) hostileFields() (mid, from, rcpt string) {
	switch g.rng.IntN(3) {
	case 0:
		mid = "x>,?ip:?192.0.2.200,?user:?y@z"
	case 1:
		mid = "a>,?ip:?192.0.2.1,?from:?<b>,?forced:?soft?reject?\"Ratelimit?\"ip\"?exceeded\";?score=nan?(set?by?ratelimit)"
	default:
		mid = fmt.Sprintf("%d.evil@vm", g.seq)
	}
	from = `mallory+"ip: 192.0.2.7, (default: F (soft reject): Ratelimit "ip" exceeded"@example.com`
	rcpt = `"forced: soft reject \"Ratelimit \"ip\" exceeded\"; score=nan (set by ratelimit)"@example.org`
	return
}

// rspamdMessage writes one message as rspamd's proxy (milter mode) logs it.
func (g *gen) rspamdMessage(event, hostile bool) {
	var client int
	bucket := "ip"
	if event {
		client = g.eventClient()
		if g.rng.Float64() < g.o.UserShare {
			bucket = "user"
		}
	} else {
		client = g.o.Attackers + g.rng.IntN(max(g.o.Clients-g.o.Attackers, 1))
		client %= g.o.Clients
	}
	ip := g.clientAddr(client)
	ips := ip.String()
	rev := reverse(ip)
	proc := "#" + strconv.Itoa(g.pid) + "(rspamd_proxy) "
	conn := "<" + g.tag() + ">; "
	t := "<" + g.tag() + ">; "
	qid := g.qid()
	mid := g.now.Format("20060102150405") + "." + strconv.Itoa(100000+g.seq%900000) + "@vm"
	from := senders[g.rng.IntN(len(senders))]
	rcpt := recipients[g.rng.IntN(len(recipients))]
	if hostile {
		mid, from, rcpt = g.hostileFields()
	}
	port := strconv.Itoa(32768 + g.rng.IntN(28000))
	g.line(proc, conn, "proxy; proxy_accept_socket: accepted milter connection from 127.0.0.1 port ", port)
	g.line(proc, t, "proxy; proxy_accept_socket: accepted milter connection from 127.0.0.1 port ", strconv.Itoa(32768+g.rng.IntN(28000)))
	g.line(proc, t, "milter; rspamd_milter_process_command: got connection from ", ips, ":", port)
	g.line(proc, t, "proxy; rspamd_mime_parse_message: cannot find content-type for a message, assume text/plain")
	g.line(proc, t, "proxy; rspamd_mime_part_get_cte: detected missing CTE for part as: 7bit")
	size := strconv.Itoa(200 + g.rng.IntN(60000))
	dig := g.digest()
	g.line(proc, t, "proxy; rspamd_message_parse: loaded message; id: <", mid, ">; queue-id: <", qid, ">; size: ", size, "; checksum: <", dig, ">")
	asn := rev + ".asn.rspamd.com"
	if ip.Is6() {
		asn = rev + ".asn6.rspamd.com"
	}
	g.line(proc, t, `lua; asn.lua:72: error querying dns "`, asn, `" on 127.0.0.1: query timed out`)
	took := strconv.FormatFloat(100+g.rng.Float64()*250, 'f', 3, 64)
	if event {
		key := "12500:" + ips
		limit := "(8 / 0.016666666666666666)"
		if bucket == "user" {
			key = "20000:" + from
			limit = "(5 / 0.016666666666666666)"
		}
		g.line(proc, t, `lua; ratelimit.lua:617: ratelimit "`, bucket, "(", key, `)" exceeded, `, limit, ": ",
			strconv.FormatFloat(6+g.rng.Float64()*2, 'f', 9, 64), " (0.9411:0.8856 dyn); redis key: RL", g.tag(), g.tag())
		g.line(proc, t, "proxy; rspamd_add_passthrough_result: <", mid, `>: set pre-result to 'soft reject' (no score): 'Ratelimit "`, bucket, `" exceeded' from ratelimit(1)`)
		if g.line(proc, t, "proxy; rspamd_task_write_log: id: <", mid, ">, qid: <", qid, ">, ip: ", ips, ", from: <", from,
			">, (default: F (soft reject): [0.00/15.00] [ASN_FAIL(0.00){", asn, ":query timed out;}]), len: ", size,
			", time: ", took, "ms, dns req: 1, digest: <", dig, ">, rcpts: <", rcpt, ">, mime_rcpts: <", rcpt,
			`>, forced: soft reject "Ratelimit "`, bucket, `" exceeded"; score=nan (set by ratelimit)`) {
			g.st.Events++
			g.st.EventClients[ip]++
		}
	} else {
		for i, n := 0, g.rng.IntN(4); i < n; i++ {
			g.line(proc, t, "lua; rbl.lua:248: error looking up ", rev, ".", rbls[g.rng.IntN(len(rbls))], ": query timed out")
		}
		g.line(proc, t, "proxy; rspamd_redis_connected: skip obtaining bayes tokens for BAYES_HAM of classifier bayes: not enough learns 0; 200 required")
		g.line(proc, t, "proxy; rspamd_redis_connected: skip obtaining bayes tokens for BAYES_SPAM of classifier bayes: not enough learns 0; 200 required")
		g.line(proc, t, "proxy; rspamd_stat_classifiers_process: skip statistics as SPAM class is missing")
		tail := ""
		action := "F (no action): [3.80/15.00] [HFILTER_HOSTNAME_UNKNOWN(2.50){},RDNS_NONE(1.00){},MIME_GOOD(-0.10){text/plain;},ONCE_RECEIVED(0.10){},ARC_NA(0.00){},ASN_FAIL(0.00){" + asn + ":query timed out;},FROM_EQ_ENVFROM(0.00){},RCPT_COUNT_ONE(0.00){1;},TO_DN_NONE(0.00){}]"
		if g.rng.IntN(10) == 0 {
			g.line(proc, t, `lua; greylist.lua:285: greylisted until "`, g.now.Add(5*time.Minute).Format(time.RFC1123), `" (meta only)`)
			action = "F (soft reject): [0.00/15.00] [ASN_FAIL(0.00){" + asn + ":query timed out;},GREYLIST(0.00){greylisted;" + g.now.Add(5*time.Minute).Format(time.RFC1123) + ";too early;}]"
			tail = `, forced: soft reject "Try again later"; score=nan (set by greylist)`
		} else {
			g.line(proc, t, "lua; greylist.lua:331: Score too low - skip greylisting")
		}
		g.line(proc, t, "proxy; rspamd_task_write_log: id: <", mid, ">, qid: <", qid, ">, ip: ", ips, ", from: <", from,
			">, (default: ", action, "), len: ", size, ", time: ", took, "ms, dns req: ", strconv.Itoa(1+g.rng.IntN(15)),
			", digest: <", dig, ">, rcpts: <", rcpt, ">, mime_rcpts: <", rcpt, ">", tail)
	}
	g.line(proc, t, "proxy; rspamd_protocol_http_reply: regexp statistics: 0 pcre regexps scanned, 1 regexps matched, 172 regexps total, 37 regexps cached, 0B scanned using pcre, 156B scanned total")
	g.line(proc, "<"+g.tag()+">; ", "proxy; proxy_milter_finish_handler: finished milter connection")
}

// postfixMessage writes one SMTP session as Postfix logs it.
func (g *gen) postfixMessage(event, hostile bool) {
	var client int
	if event {
		client = g.eventClient()
	} else {
		client = (g.o.Attackers + g.rng.IntN(max(g.o.Clients-g.o.Attackers, 1))) % g.o.Clients
	}
	ip := g.clientAddr(client)
	ips := ip.String()
	smtpd := "mx postfix/smtpd[" + strconv.Itoa(4613+client%7) + "]: "
	cleanup := "mx postfix/cleanup[4696]: "
	qmgr := "mx postfix/qmgr[4553]: "
	qid := g.qid()
	from := senders[g.rng.IntN(len(senders))]
	rcpt := recipients[g.rng.IntN(len(recipients))]
	helo := "vm"
	mid := g.now.Format("20060102150405") + "." + strconv.Itoa(100000+g.seq%900000) + "@vm"
	g.seq++
	if hostile {
		helo = `x]: 4.7.1 Ratelimit "ip" exceeded; from=<a@b> unknown[192.0.2.9`
		from = `"unknown[192.0.2.8]: 4.7.1 Ratelimit \"ip\" exceeded; from=<"@example.com`
		mid = "<x> milter-reject: END-OF-MESSAGE from unknown[192.0.2.7]: 4.7.1 Ratelimit \"ip\" exceeded; from=<"
	}
	name := "unknown"
	g.line(smtpd, "connect from ", name, "[", ips, "]")
	if !event && g.rng.IntN(5) == 0 {
		g.line(smtpd, "NOQUEUE: reject: RCPT from ", name, "[", ips, "]: 550 5.1.1 <", rcpt, ">: Recipient address rejected: User unknown in local recipient table; from=<", from, "> to=<", rcpt, "> proto=ESMTP helo=<", helo, ">")
		g.line(smtpd, "disconnect from ", name, "[", ips, "] ehlo=1 mail=1 rcpt=0/1 quit=1 commands=3/4")
		return
	}
	g.line(smtpd, qid, ": client=", name, "[", ips, "]")
	g.line(cleanup, qid, ": message-id=<", mid, ">")
	if event {
		if g.line(cleanup, qid, ": milter-reject: END-OF-MESSAGE from ", name, "[", ips, `]: 4.7.1 Ratelimit "ip" exceeded; from=<`, from, "> to=<", rcpt, "> proto=ESMTP helo=<", helo, ">") {
			g.st.Events++
			g.st.EventClients[ip]++
		}
		g.line(smtpd, "disconnect from ", name, "[", ips, "] ehlo=1 mail=1 rcpt=1 data=0/1 quit=1 commands=4/5")
		return
	}
	size := strconv.Itoa(400 + g.rng.IntN(60000))
	g.line(qmgr, qid, ": from=<", from, ">, size=", size, ", nrcpt=1 (queue active)")
	g.line(smtpd, "disconnect from ", name, "[", ips, "] ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5")
	g.line("mx postfix/local[4780]: ", qid, ": to=<", rcpt, ">, relay=local, delay=0.35, delays=0.35/0/0/0, dsn=2.0.0, status=sent (delivered to mailbox)")
	g.line(qmgr, qid, ": removed")
}

// noise writes an occasional line of another process (rspamd's main
// process and controller, Postfix's anvil).
func (g *gen) noise() {
	if g.o.Kind == "rspamd" {
		g.line("#3665(main) <", g.tag(), ">; map; rspamd_map_on_stat: old mtime is 1795576940 (size = 0B), new mtime is 1795577596 (size = 12B) for map file /etc/rspamd/local.d/maps/ip_blacklist_ratelimit.map")
		return
	}
	g.line("mx postfix/anvil[4615]: statistics: max connection rate 12/60s for (smtp:198.18.5.6) at ", g.now.Format(time.Stamp))
}
