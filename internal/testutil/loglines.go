package testutil

import (
	"fmt"
	"time"
)

// RspamdRatelimit is the summary line rspamd 3.4 writes for a message its
// ratelimit module soft-rejected, the line the rspamd-ratelimit filter
// counts. The zero value of a field takes a plausible default, so a test
// names only what it is about (the client, or a hostile envelope from).
type RspamdRatelimit struct {
	At     time.Time // default: now; written in UTC
	IP     string    // the client address; default 198.51.100.1
	From   string    // envelope from, sender-controlled; default a@example.com
	ID     string    // Message-ID, sender-controlled; default m@x
	Bucket string    // the ratelimit bucket; default ip
	Task   uint32    // rspamd's task id, 6 hex digits in the line; default 0x4854e1
	User   string    // the authenticated login rspamd writes after ip:; none by default
}

// Line is the log line with its trailing newline, ready to append to a
// log file.
func (r RspamdRatelimit) Line() string {
	at := r.At
	if at.IsZero() {
		at = time.Now()
	}
	ip, from, id, bucket, task := or(r.IP, "198.51.100.1"), or(r.From, "a@example.com"), or(r.ID, "m@x"), or(r.Bucket, "ip"), r.Task
	if task == 0 {
		task = 0x4854e1
	}
	user := ""
	if r.User != "" {
		user = "user: " + r.User + ", "
	}
	return at.UTC().Format("2006-01-02 15:04:05") +
		fmt.Sprintf(` #3861(rspamd_proxy) <%06x>; proxy; rspamd_task_write_log: id: <%s>, ip: %s, %sfrom: <%s>, `, task, id, ip, user, from) +
		fmt.Sprintf(`(default: F (soft reject): [0.00/15.00] []), len: 158, forced: soft reject "Ratelimit "%s" exceeded"; score=nan (set by ratelimit)`, bucket) + "\n"
}

// PostfixMessage is one message accepted by Postfix as its syslog lines
// show it: smtpd's client= line and qmgr's from= line, which a rate jail
// joins by queue id. Zero fields take defaults as in RspamdRatelimit.
type PostfixMessage struct {
	At     time.Time // default: now; written in UTC, syslog style
	Host   string    // default mx
	QID    string    // queue id; default 4Tq9Xy1ABC
	Client string    // client address; default 198.51.100.1
	Sender string    // envelope sender; default a@example.com
	User   string    // SASL user name; none by default
	Rcpts  int       // recipients; default 1
}

// Lines are the message's log lines, each with its trailing newline.
func (m PostfixMessage) Lines() string {
	at := m.At
	if at.IsZero() {
		at = time.Now()
	}
	ts := at.UTC().Format(time.Stamp)
	host, qid, client, sender := or(m.Host, "mx"), or(m.QID, "4Tq9Xy1ABC"), or(m.Client, "198.51.100.1"), or(m.Sender, "a@example.com")
	rcpts := m.Rcpts
	if rcpts == 0 {
		rcpts = 1
	}
	sasl := ""
	if m.User != "" {
		sasl = ", sasl_method=PLAIN, sasl_username=" + m.User
	}
	return fmt.Sprintf("%s %s postfix/smtpd[1201]: %s: client=unknown[%s]%s\n", ts, host, qid, client, sasl) +
		fmt.Sprintf("%s %s postfix/qmgr[1202]: %s: from=<%s>, size=437, nrcpt=%d (queue active)\n", ts, host, qid, sender, rcpts)
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
