package rules

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// The built-in filters anchor on the parts of a line that the logging
// program writes itself, never on text a remote sender chooses:
//
//   - rspamd's task summary (rspamd_task_write_log) starts with fields rspamd
//     writes before any sender data (worker, task tag, Message-ID in <...>
//     with spaces escaped as '?', optional queue id), then "ip: ADDR, ". The
//     Message-ID is matched as [^ ]*, so an injected ", ip: 192.0.2.1, "
//     (which needs spaces) cannot shift the capture; and should a raw space
//     ever reach the log, the line holds a second ", ip: " field and is no
//     event (builtinOnce), as is one whose envelope sender or user name
//     carries such a field. The line must END with
//     rspamd's own forced-action text, so a Subject, sender or recipient
//     that contains "Ratelimit ... exceeded" does not count. Only this one
//     line per message matches; the ratelimit.lua and passthrough lines of
//     the same task do not, so one rejected message is one strike. The
//     summary must also show that the message's action was a (soft)
//     reject. Text a sender forges at the end of a line can at worst add
//     strikes to the sender's own client address, never to another one:
//     that is why "user" events do not strike by default (the client may be
//     a shared webmail host) and why gateways belong in ignoreip.
//   - Postfix's cleanup milter-reject line names the client as
//     NAME[ADDR] before the reply text; NAME is "unknown" or a
//     forward-confirmed host name, and all sender-chosen fields (from=, to=,
//     helo=) follow the reply text, after the part the regex anchors on.
var builtinSpecs = map[string]FilterSpec{
	"rspamd-ratelimit": {
		FailRegex:      []string{rspamdHead + ".*" + rspamdMid + ".*" + rspamdTail},
		Prefilter:      new("(set by ratelimit)"),
		PrefilterAtEnd: true,
	},
	"postfix-ratelimit": {
		FailRegex: []string{
			`^\S+ postfix(?:-[A-Za-z0-9_.-]+)?/(?:[A-Za-z0-9_.-]+/)*cleanup\[[0-9]+\]: [0-9A-Za-z]+: milter-reject: END-OF-MESSAGE from [A-Za-z0-9.-]+\[<HOST>\]: 4\.[0-9]\.[0-9] Ratelimit "(?P<bucket>[A-Za-z0-9_]+)" exceeded; from=<`,
		},
		Prefilter: new("exceeded; from=<"),
	},
}

// The pieces of the rspamd summary-line regex. The filter is their
// concatenation with ".*" between them; the same pieces, anchored, make
// its fast path (splitRegex).
const (
	rspamdHead = `^(?:#[0-9]+\([a-z_]+\)|\S+ rspamd\[[0-9]+\]:) <[0-9a-z]+>; [a-z_]+; rspamd_task_write_log: id: <[^ ]*>, (?:qid: <[^ ]*>, )?ip: <HOST>, `
	rspamdMid  = `\(default: [TF] \((?:soft reject|reject)\): `
	rspamdTail = `, forced: (?:soft reject|reject) "Ratelimit "(?P<bucket>[A-Za-z0-9_]+)" exceeded"; score=[^ ]+ \(set by ratelimit\)$`
)

// builtinOnce names the text that must occur exactly once in an event
// line of a built-in filter. rspamd writes one ", ip: " field per summary
// line; a second one can only come from a sender (a Message-ID or envelope
// address with raw spaces), and then which one rspamd wrote depends on
// escaping the filter cannot see. Such a line is no event: at worst a
// client that forges one escapes a ban (rspamd's ratelimit still refuses
// its mail), never does the ban hit another address.
var builtinOnce = map[string][]byte{"rspamd-ratelimit": []byte(", ip: ")}

// builtinSplits are the fast paths of built-in filters.
var builtinSplits = map[string]func() *splitRegex{
	"rspamd-ratelimit": func() *splitRegex {
		return &splitRegex{
			head:       regexp.MustCompile(strings.Replace(rspamdHead, "<HOST>", HostPattern, 1)),
			mid:        regexp.MustCompile(rspamdMid),
			tailAt:     []byte(", forced: "),
			tail:       regexp.MustCompile("^" + rspamdTail),
			headAt:     []byte(", ip: "),
			headWindow: 48, // the longest IPv6 text (45) and ", "
		}
	},
}

// AddressBuckets are the rspamd ratelimit buckets whose key contains the
// client address, so an event in them is the client's own doing. Events in
// other buckets ("user": an authenticated account over its rate, whose
// client may be a shared gateway or webmail host; "to", "bounce_to") do
// not strike the client address unless a jail asks for them.
var AddressBuckets = []string{"ip", "to_ip", "to_ip_from", "bounce_to_ip"}

// BuiltinFilter returns a fresh copy of a built-in filter.
func BuiltinFilter(name string) (*Filter, error) {
	spec, ok := builtinSpecs[name]
	if !ok {
		return nil, fmt.Errorf("unknown built-in filter %q (have %v)", name, BuiltinNames())
	}
	f, err := CompileFilter(name, spec)
	if err != nil {
		return nil, err
	}
	if split, ok := builtinSplits[name]; ok {
		f.split = split()
	}
	f.once = builtinOnce[name]
	return f, nil
}

// BuiltinNames lists the built-in filter names, sorted.
func BuiltinNames() []string {
	names := make([]string, 0, len(builtinSpecs))
	for n := range builtinSpecs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
