package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Mail through Postfix -> rspamd

// xclientAddr renders a client address for swaks --xclient-addr (Postfix wants IPV6:addr).
func xclientAddr(addr string) (string, error) {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return "", fmt.Errorf("client address %q: %w", addr, err)
	}
	a = a.Unmap()
	if a.Is4() {
		return a.String(), nil
	}
	return "IPV6:" + a.String(), nil
}

// sendMail sends one message through Postfix on loopback, posing as client addr via
// XCLIENT, and returns the server's final reply (normally the one to the end of DATA).
func sendMail(t *testing.T, addr string) (code int, reply string) {
	t.Helper()
	return sendMailFrom(t, addr, "e2e-sender@example.org")
}

// sendMailFrom is sendMail with the envelope sender from.
func sendMailFrom(t *testing.T, addr, from string) (code int, reply string) {
	t.Helper()
	return swaksAs(t, addr, "--from", from, "--header", "Subject: mailjail e2e from "+addr)
}

// sendMessage is sendMailFrom with the whole message (headers and body) given as data. It is
// sent as it is, apart from line ends: swaks ends every line with CRLF.
func sendMessage(t *testing.T, addr, from string, data []byte) (code int, reply string) {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "message-*.eml")
	if err == nil {
		_, err = f.Write(data)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		t.Fatalf("writing the message for swaks: %v", err)
	}
	return swaksAs(t, addr, "--from", from, "--data", "@"+f.Name())
}

// swaksAs runs swaks through Postfix on loopback as client addr (XCLIENT) to e2e@localhost
// with the further arguments args, and returns the final reply.
func swaksAs(t *testing.T, addr string, args ...string) (code int, reply string) {
	t.Helper()
	x, err := xclientAddr(addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "swaks", append([]string{
		"--server", smtpHost, "--port", smtpPort,
		"--xclient-addr", x,
		"--helo", "client.example.org",
		"--to", "e2e@localhost",
	}, args...)...)
	out, runErr := cmd.CombinedOutput()
	code, reply, err = parseSwaks(out)
	if err != nil {
		t.Fatalf("swaks as client %s: %v (swaks: %v)\n%s", addr, err, runErr, out)
	}
	return code, reply
}

// parseSwaks returns the last server reply before QUIT from a swaks transcript.
func parseSwaks(out []byte) (int, string, error) {
	var last string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, " -> QUIT") || strings.HasPrefix(line, " ~> QUIT") {
			break
		}
		for _, p := range []string{"<-  ", "<** ", "<~  ", "<~* "} {
			if strings.HasPrefix(line, p) {
				last = strings.TrimPrefix(line, p)
			}
		}
	}
	if len(last) < 3 {
		return 0, "", errors.New("no SMTP reply in the transcript")
	}
	code, err := strconv.Atoi(last[:3])
	if err != nil {
		return 0, "", fmt.Errorf("reply %q: %w", last, err)
	}
	return code, last, nil
}

// flushRatelimit deletes rspamd's ratelimit buckets (keys RL*) from redis, so every client
// starts with a full burst again.
func flushRatelimit(t *testing.T) {
	t.Helper()
	const script = `local n = 0
for _, k in ipairs(redis.call('KEYS', ARGV[1])) do redis.call('DEL', k); n = n + 1 end
return n`
	out, err := exec.Command("redis-cli", "-h", redisHost, "-p", redisPort, "EVAL", script, "0", "RL*").CombinedOutput()
	if err != nil {
		t.Fatalf("flushing ratelimit keys with redis-cli: %v\n%s", err, out)
	}
	if _, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(string(out), "(integer)"))); err != nil {
		t.Fatalf("flushing ratelimit keys with redis-cli: unexpected answer %q", out)
	}
}

// strikeResult tells how a client fared while being rate limited.
type strikeResult struct {
	Passed  int         // messages accepted (250) before the first 451
	Rejects []time.Time // when each 451 reply came back
}

// rateLimit sends mail as addr until rspamd has soft-rejected it `strikes` times
// (451 Ratelimit "ip" exceeded). Any other reply fails the test.
func rateLimit(t *testing.T, addr string, strikes int) strikeResult {
	t.Helper()
	var r strikeResult
	for sent := 0; len(r.Rejects) < strikes; sent++ {
		if sent > strikes+20 {
			t.Fatalf("client %s: %d messages sent, still only %d of %d ratelimit rejections", addr, sent, len(r.Rejects), strikes)
		}
		code, reply := sendMail(t, addr)
		switch {
		case code == 250 && len(r.Rejects) == 0:
			r.Passed++
		case code == 451 && strings.Contains(reply, `Ratelimit "ip" exceeded`):
			r.Rejects = append(r.Rejects, time.Now())
		default:
			t.Fatalf("client %s, message %d: unexpected reply %q (want 250 until rate limited, then 451 Ratelimit \"ip\" exceeded)", addr, sent+1, reply)
		}
	}
	return r
}

// expectReply flushes the ratelimit buckets and sends as addr until the reply has code want
// and contains substr, for at most timeout (rspamd rereads the map a few ms after it
// changes). It returns the number of messages it took.
func expectReply(t *testing.T, addr string, want int, substr string, timeout time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for n := 1; ; n++ {
		flushRatelimit(t)
		code, reply := sendMail(t, addr)
		if code == want && strings.Contains(reply, substr) {
			return n
		}
		if time.Now().After(deadline) {
			t.Fatalf("client %s: got %q after %d tries over %v, want %d %s", addr, reply, n, timeout, want, substr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
