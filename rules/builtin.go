package rules

import (
	"fmt"
	"regexp"
	"sort"
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
//     event (Filter.once), as is one whose envelope sender or user name
//     carries such a field. A login is read only from rspamd's own
//     "user: " field right after the address (see rspamdHead below). The line must END with
//     rspamd's own forced-action text, so a Subject, sender or recipient
//     that contains "Ratelimit ... exceeded" does not count. Only this one
//     line per message matches; the ratelimit.lua and passthrough lines of
//     the same task do not, so one rejected message is one strike. The
//     summary must also show that the message's action was a (soft)
//     reject. Text a sender forges at the end of a line can at worst add
//     strikes to the sender's own client address, never to another one:
//     that is why "user" events do not strike the address by default (the
//     client may be a shared webmail host) and why gateways belong in
//     ignoreip. A "user" event names the account in Match.User, so that a
//     jail can strike the account instead.
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
//
// rspamdTask is the start of every line rspamd writes about a task:
// worker (or syslog tag) and task tag, both rspamd's own.
//
// The login: rspamd's default log_format (cfg_utils.c, 3.4 line 235,
// 4.1.5 cfg_utils.cxx line 317) writes "$if_ip{ ip: $,}$if_user{ user:
// $,}$if_smtp_from{ from: <$>,} (default: ", so an authenticated task's
// summary reads "ip: ADDR, user: LOGIN, from: <...>, (default: " and an
// unauthenticated one has no user field at all. The login is
// task->auth_user (the milter's {auth_authen} macro or the HTTP User
// header) copied as it is (task.c rspamd_task_log_variable, case
// RSPAMD_LOG_USER: 3.4 line 1435, 4.1.5 line 1893): not quoted, not
// escaped. The logger only hex-escapes control characters and DEL
// (logger.c rspamd_log_line_hex_escape, 3.4 lines 924-990), so a login CAN
// hold spaces, commas and "from: <" text. The filter therefore takes a
// login only right after the ip field, only as a run of UserPattern
// characters (no space, comma or quote), and only when rspamd's next
// field follows it (userThen); any other login, and anything a sender
// writes (Message-ID, envelope from, recipients, symbol options), gives
// User "". A login that contains ", from: <" could still be cut short,
// but it must have authenticated (or come from an XCLIENT-trusted host):
// it is no text an unauthenticated sender chooses.
//
// The forced action: task.c writes `%s "%s"; score=nan (set by %s)` from
// the passthrough result (3.4 line 1560, 4.1.5 line 2013). ratelimit.lua
// sets it to `Ratelimit "<bucket>" exceeded` (message_func, unchanged 3.4
// to 4.1.5) or, when the bucket has a `message` option, to that message.
// With a message only 3.12.0 and later name the module ("(set by
// ratelimit)"); 3.4 to 3.11 call set_pre_result without it and log "(set
// by Unknown lua)", which this filter does not take for a ratelimit event.
// A message summary line names no bucket: it comes from the task's
// ratelimit.lua line (infoBucket), remembered per task, or is "" when
// that line was not seen.
const (
	rspamdTask = `^(?:#[0-9]+\([a-z_]+\)|\S+ rspamd\[[0-9]+\]:) <[0-9a-z]+>; `
	rspamdHead = rspamdTask + `[a-z_]+; rspamd_task_write_log: id: <[^ ]*>, (?:qid: <[^ ]*>, )?ip: <HOST>, (?:user: <USER>, )?`
	rspamdMid  = `\(default: [TF] \((?:soft reject|reject)\): `
	rspamdTail = `, forced: (?:soft reject|reject) "(?:Ratelimit "(?P<bucket>[A-Za-z0-9_]+)" exceeded|.*)"; score=[^ ]+ \(set by ratelimit\)$`
)

// ratelimit.lua's line about an exceeded bucket (read by infoBucket):
// `ratelimit "<bucket>(<key>)" exceeded, (<burst> / <rate>): ...`
// (ratelimit.lua: 3.4 line 617, 3.9.0 lines 532 and 538, 4.1.5 lines 423
// and 429; only the line number in "ratelimit.lua:NNN", the text after
// the key and, in 4.1.0, the key itself change). Only the bucket name
// right after rspamd's own task prefix is read: the key may hold sender
// text. rspamdInfoTask lets these lines through the prefilter
// (Prefilter.Task): in every version their first ';' (after the task tag)
// starts "; lua; ratelimit.lua:".
const rspamdInfoTask = "; lua; ratelimit.lua:"

// builtinSetup gives a built-in filter what a FilterSpec cannot say.
var builtinSetup = map[string]func(f *Filter){
	"rspamd-ratelimit": func(f *Filter) {
		f.split = &splitRegex{
			head:       regexp.MustCompile(expandPlaceholders(rspamdHead)),
			mid:        regexp.MustCompile(rspamdMid),
			tailAt:     []byte(", forced: "),
			tail:       regexp.MustCompile("^" + rspamdTail),
			headAt:     []byte(", ip: "),
			headWindow: 48 + len("user: ") + MaxAccountLen + len(", "), // the longest IPv6 text (45), ", " and a login
			whole:      f.fail[0],
		}
		// rspamd writes one ", ip: " field per summary line; a second
		// one can only come from a sender (a Message-ID or envelope
		// address with raw spaces), and then which one rspamd wrote
		// depends on escaping the filter cannot see. Such a line is no
		// event: at worst a client that forges one escapes a ban
		// (rspamd's ratelimit still refuses its mail), never does the
		// ban hit another address.
		f.once = []byte(", ip: ")
		f.userThen = [][]byte{[]byte(", from: <"), []byte(", (default: ")}
		f.tasks = newTaskBuckets()
		f.task = []byte(rspamdInfoTask)
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
	if setup, ok := builtinSetup[name]; ok {
		setup(f)
	}
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
