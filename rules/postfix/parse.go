// Package postfix joins Postfix's per-message log lines by queue id so that
// mailjail can count accepted messages per client address and per SASL user
// from the mail log alone. Postfix never logs "client X submitted message M
// from sender S" on one line: smtpd logs the client when it creates the
// queue file, cleanup logs the Message-ID, and qmgr logs the envelope sender,
// size and recipient count when the message enters the active queue. Only
// the last one means the message was accepted, so that is when a Message is
// emitted; transactions that end in a reject, or never finish, are dropped.
//
// Much of a Postfix line is chosen by the remote side: the envelope sender,
// the Message-ID, the HELO name, the SASL sender. Parsing therefore anchors
// on the parts Postfix itself controls: the syslog tag and queue id at the
// start of the line, "client=" directly after the queue id on smtpd's line,
// the numeric size/nrcpt fields at the end of qmgr's line. Text captured
// from between those anchors is data, and nothing inside it can move them.
// The package is pure (bytes and times in, values out) and never panics on
// input; FuzzParseLine checks that.
package postfix

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
)

// ErrIgnored is returned by ParseLine for lines this package has no use
// for (other programs, other Postfix messages). It is not a failure.
var ErrIgnored = errors.New("postfix: line not used for queue-id correlation")

// Kind says which step of a mail transaction a line records.
type Kind uint8

const (
	// KindUnknown is the zero Kind; ParseLine never returns it without an error.
	KindUnknown Kind = iota
	// KindClient is smtpd's "QID: client=NAME[ADDR]..." line: a queue file
	// was created for a transaction from that client.
	KindClient
	// KindMessageID is cleanup's "QID: message-id=<...>" line.
	KindMessageID
	// KindQueued is qmgr's "QID: from=<...>, size=N, nrcpt=N (queue active)"
	// line: the message was accepted and entered the active queue.
	KindQueued
	// KindRemoved is qmgr's "QID: removed": the queue file is gone.
	KindRemoved
	// KindRejected is a reject, milter-reject, discard or milter-discard
	// that ends the transaction without queueing the message.
	KindRejected
)

var kindNames = [...]string{"unknown", "client", "message-id", "queued", "removed", "rejected"}

// String returns a short lower-case name for k.
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Line is what ParseLine extracts. Only the fields of its Kind are set.
// Sender, MessageID, SASLSender and ClientName are remote-controlled text.
type Line struct {
	Kind    Kind
	Host    string // syslog host name before the tag, "" if the line has none
	Program string // the syslog tag, e.g. "postfix/submission/smtpd"
	Daemon  string // the last component of Program: "smtpd", "cleanup", "qmgr"
	QueueID string

	// KindClient
	ClientName string     // verified reverse name or "unknown"
	Client     netip.Addr // unmapped, without zone
	SASLMethod string
	SASLUser   string
	SASLSender string

	// KindQueued
	Sender string // envelope sender without the angle brackets; "" for bounces
	Size   int64
	Rcpts  int

	// KindMessageID
	MessageID string // without the angle brackets

	// KindRejected: the SMTP stage or check that rejected, e.g.
	// "END-OF-MESSAGE", "DATA", "header", "body".
	Stage string
}

// maxHeaderTokens bounds how far ParseLine looks for the syslog tag: a
// traditional header is "Mon DD HH:MM:SS host tag[pid]:", i.e. the tag is
// the fifth token at most; RFC 3339 headers and journal output are shorter.
const maxHeaderTokens = 6

// ParseLine parses one syslog line (with or without its timestamp and host
// header; timestamps are the caller's business). It returns ErrIgnored for
// lines it does not use and a descriptive error for Postfix lines of a used
// kind that are malformed.
func ParseLine(b []byte) (Line, error) {
	var l Line
	msg, ok := splitHeader(b, &l)
	if !ok {
		return l, ErrIgnored
	}
	switch l.Daemon {
	case "smtpd", "cleanup", "qmgr":
	default:
		return l, ErrIgnored
	}
	qid, body, ok := splitQueueID(msg)
	if !ok {
		return l, ErrIgnored
	}
	l.QueueID = string(qid)
	var err error
	switch {
	case l.Daemon == "smtpd" && bytes.HasPrefix(body, []byte("client=")):
		l.Kind = KindClient
		err = parseClient(body[len("client="):], &l)
	case l.Daemon == "cleanup" && bytes.HasPrefix(body, []byte("message-id=")):
		l.Kind = KindMessageID
		l.MessageID = string(trimAngles(body[len("message-id="):]))
	case l.Daemon == "qmgr" && bytes.HasPrefix(body, []byte("from=<")) && bytes.HasSuffix(body, []byte(")")):
		// Only the "(queue active)" form means "accepted"; qmgr's other
		// from= lines (status=expired, returned to sender) are ignored.
		l.Kind = KindQueued
		err = parseQueued(body[len("from=<"):], &l)
	case l.Daemon == "qmgr" && bytes.Equal(body, []byte("removed")):
		l.Kind = KindRemoved
	case l.Daemon != "qmgr":
		stage, ends := rejectStage(body)
		if !ends {
			return l, ErrIgnored
		}
		l.Kind, l.Stage = KindRejected, stage
	default:
		return l, ErrIgnored
	}
	if err != nil {
		return l, fmt.Errorf("postfix: %s %s: %s line: %w", l.Program, l.QueueID, l.Kind, err)
	}
	return l, nil
}

// splitHeader finds the syslog tag, the first token of the form
// "name[pid]:", and returns the message after it. The first such token is
// the real one because everything remote-controlled comes after it.
func splitHeader(b []byte, l *Line) (msg []byte, ok bool) {
	var prev []byte
	rest := b
	for tok := 0; tok < maxHeaderTokens; tok++ {
		rest = bytes.TrimLeft(rest, " ")
		if len(rest) == 0 {
			return nil, false
		}
		end := bytes.IndexByte(rest, ' ')
		if end < 0 {
			return nil, false
		}
		word := rest[:end]
		if tag, ok := syslogTag(word); ok {
			if !validProgram(tag) {
				return nil, false
			}
			l.Program = string(tag)
			l.Daemon = l.Program[bytes.LastIndexByte(tag, '/')+1:]
			l.Host = string(prev)
			return rest[end+1:], true
		}
		prev = word
		rest = rest[end:]
	}
	return nil, false
}

// syslogTag returns "name" from "name[digits]:".
func syslogTag(word []byte) ([]byte, bool) {
	if !bytes.HasSuffix(word, []byte("]:")) {
		return nil, false
	}
	open := bytes.IndexByte(word, '[')
	if open <= 0 || open+1 >= len(word)-2 || !allDigits(word[open+1:len(word)-2]) {
		return nil, false
	}
	return word[:open], true
}

// validProgram accepts Postfix tags: syslog_name, possibly with a service
// part ("postfix/submission"), then "/daemon". Multi-instance setups use
// other first components ("postfix-out/smtpd"), so only the shape is checked.
func validProgram(tag []byte) bool {
	slash := bytes.IndexByte(tag, '/')
	if slash <= 0 || tag[len(tag)-1] == '/' {
		return false
	}
	for _, c := range tag {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '/') {
			return false
		}
	}
	return true
}

// splitQueueID accepts short (hex) and long (base 52) Postfix queue ids.
func splitQueueID(msg []byte) (qid, body []byte, ok bool) {
	i := 0
	for i < len(msg) && i <= 32 && isAlnum(msg[i]) {
		i++
	}
	if i < 5 || i > 32 || len(msg) < i+2 || msg[i] != ':' || msg[i+1] != ' ' {
		return nil, nil, false
	}
	if bytes.Equal(msg[:i], []byte("NOQUEUE")) {
		return nil, nil, false
	}
	return msg[:i], msg[i+2:], true
}

// rejectStage recognises the rejections that end a transaction. A
// rejected recipient ("reject: RCPT from ...") does not: the other
// recipients of the same transaction may still be accepted and queued.
func rejectStage(body []byte) (stage string, ends bool) {
	for _, p := range [][]byte{[]byte("reject: "), []byte("milter-reject: "), []byte("discard: "), []byte("milter-discard: ")} {
		if rest, ok := bytes.CutPrefix(body, p); ok {
			word, _, _ := bytes.Cut(rest, []byte(" "))
			if len(word) == 0 || bytes.Equal(word, []byte("RCPT")) {
				return "", false
			}
			return string(word), true
		}
	}
	return "", false
}

// parseClient parses NAME[ADDR][:PORT] and the optional SASL fields that
// Postfix appends in a fixed order.
func parseClient(b []byte, l *Line) error {
	open := bytes.IndexByte(b, '[')
	if open <= 0 {
		return errors.New("client: no NAME[ADDR]")
	}
	name := b[:open]
	if bytes.ContainsAny(name, " ,]") {
		return fmt.Errorf("client: bad name %q", name)
	}
	closeIdx := bytes.IndexByte(b[open:], ']')
	if closeIdx < 0 {
		return errors.New("client: unterminated [ADDR]")
	}
	addrText := b[open+1 : open+closeIdx]
	addr, err := netip.ParseAddr(string(addrText))
	if err != nil {
		return fmt.Errorf("client: address: %w", err)
	}
	l.ClientName = string(name)
	l.Client = addr.Unmap().WithZone("")
	rest := b[open+closeIdx+1:]
	if port, ok := bytes.CutPrefix(rest, []byte(":")); ok { // smtpd_client_port_logging
		n := 0
		for n < len(port) && port[n] >= '0' && port[n] <= '9' {
			n++
		}
		if n == 0 {
			return errors.New("client: bad port")
		}
		rest = port[n:]
	}
	if v, ok := bytes.CutPrefix(rest, []byte(", sasl_method=")); ok {
		end := bytes.Index(v, []byte(", "))
		if end < 0 {
			end = len(v)
		}
		l.SASLMethod, rest = string(v[:end]), v[end:]
		if v, ok := bytes.CutPrefix(rest, []byte(", sasl_username=")); ok {
			end := nextField(v, ", sasl_sender=", ", orig_queue_id=", ", orig_client=")
			l.SASLUser, rest = string(v[:end]), v[end:]
		}
	}
	if v, ok := bytes.CutPrefix(rest, []byte(", sasl_sender=")); ok {
		// The client chose this (MAIL FROM ... AUTH=); it is last among the
		// fields read here, so whatever it contains cannot shadow them.
		end := nextField(v, ", orig_queue_id=", ", orig_client=")
		l.SASLSender = string(v[:end])
	}
	return nil
}

// nextField returns the offset of the earliest of the given separators in
// b, or len(b).
func nextField(b []byte, seps ...string) int {
	end := len(b)
	for _, s := range seps {
		if i := bytes.Index(b[:end], []byte(s)); i >= 0 {
			end = i
		}
	}
	return end
}

// parseQueued parses SENDER>, size=N, nrcpt=N (queue NAME) from the right:
// the sender may contain anything, including a fake ", size=" tail, but
// Postfix's own numeric fields are always the last ones on the line.
func parseQueued(b []byte, l *Line) error {
	q := bytes.LastIndex(b, []byte(" (queue "))
	if q < 0 || b[len(b)-1] != ')' {
		return errors.New("no (queue ...) suffix")
	}
	n := bytes.LastIndex(b[:q], []byte(", nrcpt="))
	if n < 0 {
		return errors.New("no nrcpt")
	}
	rcpts, err := strconv.Atoi(string(b[n+len(", nrcpt=") : q]))
	if err != nil || rcpts < 0 {
		return fmt.Errorf("bad nrcpt %q", b[n+len(", nrcpt="):q])
	}
	s := bytes.LastIndex(b[:n], []byte(">, size="))
	if s < 0 {
		return errors.New("no size")
	}
	size, err := strconv.ParseInt(string(b[s+len(">, size="):n]), 10, 64)
	if err != nil || size < 0 {
		return fmt.Errorf("bad size %q", b[s+len(">, size="):n])
	}
	l.Sender, l.Size, l.Rcpts = string(b[:s]), size, rcpts
	return nil
}

func trimAngles(b []byte) []byte {
	if len(b) >= 2 && b[0] == '<' && b[len(b)-1] == '>' {
		return b[1 : len(b)-1]
	}
	return b
}

func allDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(b) > 0
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z'
}
