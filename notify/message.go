package notify

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"
)

// compose writes the mail for batch: the alert's own for one, a digest
// for more. go-mail builds the MIME message (quoted-printable UTF-8 text,
// RFC 2047 encoded subject); the subject and every other header value
// come from mailjail's configuration and its own parsed values, cleaned
// once more with HeaderText, never from a log line.
func (s *Sender) compose(batch []Alert, now time.Time) (*gomail.Msg, error) {
	o := renderOptions{host: TextLine(s.cfg.Hostname, 0), prefix: TextLine(s.cfg.SubjectPrefix, 0), maxLines: s.cfg.MaxLines, lineLength: s.cfg.LineLength}
	var data any
	subjectT, bodyT, event := SubjectTemplate, BodyTemplate, HeaderText(batch[0].Event)
	if len(batch) == 1 {
		data = dataOf(batch[0], 1, o)
	} else {
		data = digestOf(batch, o)
		subjectT, bodyT, event = DigestSubjectTemplate, DigestBodyTemplate, "digest"
	}
	subject, err := s.tmpl.render(subjectT, data)
	if err != nil {
		return nil, fmt.Errorf("alert template %s: %w", subjectT, err)
	}
	body, err := s.tmpl.render(bodyT, data)
	if err != nil {
		return nil, fmt.Errorf("alert template %s: %w", bodyT, err)
	}
	m := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	if err := m.From(s.cfg.From); err != nil {
		return nil, fmt.Errorf("alert from %q: %w", s.cfg.From, err)
	}
	if err := m.To(s.cfg.To...); err != nil {
		return nil, fmt.Errorf("alert to %q: %w", s.cfg.To, err)
	}
	m.Subject(HeaderText(subject))
	m.SetDateWithValue(now)
	m.SetMessageIDWithValue(messageID(now, s.cfg.Hostname))
	m.SetGenHeader("Auto-Submitted", "auto-generated")
	m.SetGenHeader("X-Mailjail-Event", event)
	m.SetUserAgent("mailjail")
	m.SetBodyString(gomail.TypeTextPlain, body)
	return m, nil
}

// messageID is a Message-ID's inside: unique per mail (time and random
// bits), @ the host's name reduced to the characters a domain has.
func messageID(now time.Time, host string) string {
	var r [8]byte
	_, _ = rand.Read(r[:])
	host = strings.Map(func(c rune) rune {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' {
			return c
		}
		return -1
	}, host)
	if host == "" {
		host = "localhost"
	}
	return fmt.Sprintf("mailjail.%d.%s@%s", now.UnixNano(), hex.EncodeToString(r[:]), host)
}
