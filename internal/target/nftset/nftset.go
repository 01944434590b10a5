// Package nftset is the nftables enforcement target: a table mailjail owns
// (family inet) with two interval sets of banned clients (banned_v4,
// banned_v6; flags interval, timeout) and an input base chain that drops
// their TCP packets to the mail ports. It stops a banned client before
// it can connect, so before AUTH attempts, which rspamd and Postfix
// tables see only later.
//
// It talks netlink (github.com/google/nftables), not the nft binary: a
// hardened unit needs no external program and no exec, each Sync is one
// atomic nftables transaction (one batch, one Flush: the kernel holds
// the old sets or the new ones, never half of them), and failures come
// back as errors, not as text on stderr to parse. The unit then needs
// CAP_NET_ADMIN and RestrictAddressFamilies= to allow AF_NETLINK.
package nftset

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/mailjail/mailjail/internal/enforce"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Names inside the table. The table is mailjail's alone: Sync may delete
// and recreate it whole.
const (
	SetV4 = "banned_v4"
	SetV6 = "banned_v6"
	Chain = "input"
)

// Defaults of Config's zero fields.
const (
	DefaultTable    = "mailjail"
	DefaultPriority = -10
)

// DefaultPorts are the mail ports dropped when Config.Ports is empty:
// SMTP, submissions and submission.
var DefaultPorts = []uint16{25, 465, 587}

// Config says where the target lives.
type Config struct {
	// Table is the inet table's name; empty means DefaultTable.
	Table string
	// Ports are the TCP destination ports dropped; empty means DefaultPorts.
	Ports []uint16
	// Priority is the input chain's priority. Zero is a valid priority,
	// so it is taken as given (the lead's config defaults it to -10).
	Priority int32
	// NetNS is the fd of a network namespace to work in; 0 is the
	// process's own (the daemon). Tests pass a namespace they created.
	NetNS int
}

// maxElemsPerMsg bounds the elements of one NEWSETELEM message: their
// list is one netlink attribute, whose length is 16 bits. At most 40
// bytes an element (IPv6 key and timeout), 1024 stay under 64 KiB; a
// burst is several messages in the same batch, still one transaction.
const maxElemsPerMsg = 1024

// Set is the nftables target. Its methods are safe for concurrent use.
type Set struct {
	cfg  Config
	name string

	mu sync.Mutex
	// rebuild makes the next Sync delete and recreate the table whole:
	// before the first success (a table left by an older run, maybe
	// with another priority), after a failure and after drift.
	rebuild bool
	synced  bool
	wrote   written
	// checked is the ruleset generation at which the table was last
	// found to hold what was written; fullCheck asks for one anyway.
	checked   uint32
	fullCheck bool
	sndbuf    int // send buffer the next Flush needs, bytes
}

// written is what the last successful Sync put in the kernel.
type written struct {
	ranges   int // Entries: intervals in both sets
	elems4   int // kernel elements of banned_v4 (starts and ends)
	elems6   int
	msgs     int    // netlink messages of the batch, for benchmarks
	comment4 string // the rules' comments, to tell them from edited ones
	comment6 string
	priority int32
}

// New makes the target for c; nothing is touched before the first Sync.
func New(c Config) *Set {
	if c.Table == "" {
		c.Table = DefaultTable
	}
	if len(c.Ports) == 0 {
		c.Ports = DefaultPorts
	}
	c.Ports = slices.Clone(c.Ports)
	slices.Sort(c.Ports)
	c.Ports = slices.Compact(c.Ports)
	return &Set{cfg: c, name: "nftables:inet " + c.Table, rebuild: true}
}

// Name identifies the target in logs and status.
func (s *Set) Name() string { return s.name }

// Entries is how many intervals (both families) the last successful Sync
// wrote; overlapping bans are one interval.
func (s *Set) Entries() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.wrote.ranges
}

// conn opens a connection for one operation (a transient netlink socket
// per call, so an error half-way through a dump cannot confuse the next).
func (s *Set) conn() (*nftables.Conn, error) {
	c, err := nftables.New(nftables.WithNetNSFd(s.cfg.NetNS), nftables.WithSockOptions(s.growSndbuf))
	if err != nil {
		return nil, fmt.Errorf("netlink: %w", err)
	}
	return c, nil
}

// growSndbuf lets one sendmsg carry the whole batch: the kernel refuses a
// netlink message longer than the socket's send buffer (about 200 KiB by
// default; 10,000 IPv6 bans are about 800 KiB). SO_SNDBUFFORCE needs
// CAP_NET_ADMIN, which writing nftables needs anyway.
func (s *Set) growSndbuf(c *netlink.Conn) error {
	if s.sndbuf == 0 {
		return nil
	}
	rc, err := c.SyscallConn()
	if err != nil {
		return fmt.Errorf("netlink socket: %w", err)
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, s.sndbuf)
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("netlink send buffer of %d bytes: %w", s.sndbuf, err)
	}
	return nil
}

// Sync makes the sets hold exactly st's active bans, in one nftables
// transaction that also creates the table, sets, chain and rules when they
// are missing and rewrites the rules.
func (s *Set) Sync(ctx context.Context, st enforce.State) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", s.name, err)
	}
	v4, v6 := Ranges(st.Bans, st.At)
	s.mu.Lock()
	defer s.mu.Unlock()
	w, err := s.sync(v4, v6)
	if err != nil && !s.rebuild {
		// Something went behind mailjail's back since the last check
		// (the batch failed whole, the kernel is unchanged): rebuild.
		s.rebuild = true
		w, err = s.sync(v4, v6)
	}
	if err != nil {
		s.rebuild = true
		return fmt.Errorf("%s: sync: %w", s.name, err)
	}
	s.wrote, s.synced, s.rebuild, s.fullCheck = w, true, false, true
	return nil
}

func (s *Set) sync(v4, v6 []Range) (written, error) {
	c, err := s.conn()
	if err != nil {
		return written{}, err
	}
	t := &nftables.Table{Name: s.cfg.Table, Family: nftables.TableFamilyINet}
	c.AddTable(t)
	msgs := 1
	if s.rebuild {
		msgs += 2
		// Add, delete, add: the idiom that replaces a table atomically
		// whether or not it existed, with whatever was done to it.
		c.DelTable(t)
		c.AddTable(t)
	}
	ch := &nftables.Chain{
		Name: Chain, Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityRef(nftables.ChainPriority(s.cfg.Priority)),
	}
	if s.rebuild {
		// Only here: adding a base chain that exists is an update
		// costing the kernel 4 to 8 ms. Otherwise the chain is known
		// to exist; if it went since, the batch fails whole and Sync
		// rebuilds.
		c.AddChain(ch)
		msgs++
	}
	set4 := &nftables.Set{Table: t, Name: SetV4, KeyType: nftables.TypeIPAddr, Interval: true, HasTimeout: true}
	set6 := &nftables.Set{Table: t, Name: SetV6, KeyType: nftables.TypeIP6Addr, Interval: true, HasTimeout: true}
	w := written{ranges: len(v4) + len(v6), priority: s.cfg.Priority}
	for _, f := range []struct {
		set     *nftables.Set
		ranges  []Range
		elems   *int
		comment *string
	}{
		{set4, v4, &w.elems4, &w.comment4},
		{set6, v6, &w.elems6, &w.comment6},
	} {
		if err := c.AddSet(f.set, nil); err != nil {
			return written{}, fmt.Errorf("set %s: %w", f.set.Name, err)
		}
		c.FlushSet(f.set)
		msgs += 2
		elems := elements(f.ranges)
		*f.elems = len(elems)
		for chunk := range slices.Chunk(elems, maxElemsPerMsg) {
			msgs++
			if err := c.SetAddElements(f.set, chunk); err != nil {
				return written{}, fmt.Errorf("set %s: elements: %w", f.set.Name, err)
			}
		}
		*f.comment = ruleComment(f.set.Name, s.cfg.Ports)
	}
	// The rules are rewritten every time, so an edited rule is repaired
	// by any Sync, not only by one after drift was noticed.
	c.FlushChain(ch)
	msgs++
	for _, f := range []struct {
		set     *nftables.Set
		proto   byte
		off, n  uint32
		comment string
	}{
		{set4, unix.NFPROTO_IPV4, 12, 4, w.comment4},
		{set6, unix.NFPROTO_IPV6, 8, 16, w.comment6},
	} {
		ports := &nftables.Set{Table: t, Anonymous: true, Constant: true, KeyType: nftables.TypeInetService}
		var pe []nftables.SetElement
		for _, p := range s.cfg.Ports {
			pe = append(pe, nftables.SetElement{Key: binaryutil.BigEndian.PutUint16(p)})
		}
		if err := c.AddSet(ports, pe); err != nil {
			return written{}, fmt.Errorf("port set: %w", err)
		}
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: dropRule(f.proto, f.off, f.n, f.set, ports),
			UserData: userdata.AppendString(nil, userdata.TypeComment, f.comment)})
		msgs += 3 // port set, its elements, the rule
	}
	// Room for the whole batch in one sendmsg: elements are at most 40
	// bytes, the rest (table, chain, rules, headers) well under 64 KiB.
	s.sndbuf = 64<<10 + 48*(w.elems4+w.elems6)
	if err := c.Flush(); err != nil {
		return written{}, fmt.Errorf("netlink batch: %w", err)
	}
	w.msgs = msgs
	return w, nil
}

// ruleComment marks mailjail's rule for set, as nft list shows it.
func ruleComment(set string, ports []uint16) string {
	ps := make([]string, len(ports))
	for i, p := range ports {
		ps[i] = strconv.Itoa(int(p))
	}
	return fmt.Sprintf("mailjail: drop @%s to tcp ports %s", set, strings.Join(ps, ","))
}

// dropRule is "meta nfproto P tcp dport @ports SADDR @set counter drop":
// the cheap port test first, so other traffic never reaches the interval
// lookup.
func dropRule(proto byte, off, n uint32, set, ports *nftables.Set) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Lookup{SourceRegister: 1, SetName: ports.Name, SetID: ports.ID},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
		&expr.Lookup{SourceRegister: 1, SetName: set.Name, SetID: set.ID},
		&expr.Counter{},
		&expr.Verdict{Kind: expr.VerdictDrop},
	}
}

// elements are the kernel's elements of an interval set for rs: each
// range is its first address (with the timeout) and an interval end at the
// address after its last, none when the range reaches the top of the
// address space. The kernel (6.18 here) needs no leading end element at
// 0, which nft 1.0.6 still adds.
func elements(rs []Range) []nftables.SetElement {
	out := make([]nftables.SetElement, 0, 2*len(rs))
	for _, r := range rs {
		out = append(out, nftables.SetElement{Key: r.First.AsSlice(), Timeout: r.Timeout})
		if n := r.Last.Next(); n.IsValid() {
			out = append(out, nftables.SetElement{Key: n.AsSlice(), IntervalEnd: true})
		}
	}
	return out
}

// Drifted reports whether the table lost or changed what the last Sync
// wrote: the table, chain or a set missing (nft flush ruleset, a reload
// of nftables.service), the chain's hook or priority changed, the rules
// edited, or a set holding another number of elements (nft delete
// element). It is one small netlink request while nothing at all changed
// in the namespace's ruleset (its generation is the same), and a few
// dumps otherwise. An element that expired in the kernel a moment before
// mailjail lifted its ban counts as drift once that check runs: harmless,
// the resync writes the same bans.
func (s *Set) Drifted() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.synced || s.rebuild {
		return false
	}
	gen, err := genID(s.cfg.NetNS)
	if err != nil {
		return false
	}
	if !s.fullCheck && gen == s.checked {
		return false
	}
	drifted, err := s.differs()
	if err != nil {
		return false // the next Sync will tell
	}
	if drifted {
		s.rebuild = true
		return true
	}
	// The generation was read before the check, so a change made
	// during it is seen next time.
	s.checked, s.fullCheck = gen, false
	return false
}

// differs compares the kernel's table with what was written.
func (s *Set) differs() (bool, error) {
	c, err := s.conn()
	if err != nil {
		return false, err
	}
	t, err := c.ListTableOfFamily(s.cfg.Table, nftables.TableFamilyINet)
	if err != nil {
		return gone(err)
	}
	ch, err := c.ListChain(t, Chain)
	if err != nil {
		return gone(err)
	}
	if ch.Hooknum == nil || *ch.Hooknum != *nftables.ChainHookInput || ch.Priority == nil ||
		int32(*ch.Priority) != s.wrote.priority || ch.Type != nftables.ChainTypeFilter {
		return true, nil
	}
	rules, err := c.GetRules(t, ch)
	if err != nil {
		return gone(err)
	}
	var comments []string
	for _, r := range rules {
		cm, _ := userdata.GetString(r.UserData, userdata.TypeComment)
		comments = append(comments, cm)
	}
	if !slices.Equal(comments, []string{s.wrote.comment4, s.wrote.comment6}) {
		return true, nil
	}
	for _, f := range []struct {
		name  string
		elems int
	}{{SetV4, s.wrote.elems4}, {SetV6, s.wrote.elems6}} {
		set, err := c.GetSetByName(t, f.name)
		if err != nil {
			return gone(err)
		}
		if !set.Interval || !set.HasTimeout {
			return true, nil
		}
		els, err := c.GetSetElements(set)
		if err != nil {
			return false, fmt.Errorf("elements of %s: %w", f.name, err)
		}
		if len(els) != f.elems {
			return true, nil
		}
	}
	return false, nil
}

// gone is drift when err says the object does not exist, and undecided
// otherwise.
func gone(err error) (bool, error) {
	if errors.Is(err, unix.ENOENT) {
		return true, nil
	}
	return false, err
}

// genID is the namespace's nftables ruleset generation, which every
// committed transaction (of anyone) changes and an element's expiry does
// not.
func genID(ns int) (uint32, error) {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: ns})
	if err != nil {
		return 0, fmt.Errorf("netlink: %w", err)
	}
	defer c.Close()
	msgs, err := c.Execute(netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETGEN), Flags: netlink.Request},
		Data:   []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, 0},
	})
	if err != nil {
		return 0, fmt.Errorf("nftables generation: %w", err)
	}
	for _, m := range msgs {
		if len(m.Data) < 4 {
			continue
		}
		ad, err := netlink.NewAttributeDecoder(m.Data[4:])
		if err != nil {
			return 0, fmt.Errorf("nftables generation: %w", err)
		}
		ad.ByteOrder = binary.BigEndian
		for ad.Next() {
			if ad.Type() == unix.NFTA_GEN_ID {
				return ad.Uint32(), nil
			}
		}
	}
	return 0, fmt.Errorf("nftables generation: no NFTA_GEN_ID in the reply")
}
