package e2e

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailjail/mailjail/rules/bucket"
)

// The e2e rspamd's `user` bucket (e2e/setup.sh, ratelimit.conf).
const (
	compatUserBurst = 5
	compatUserRate  = "1 / 1min"
)

// compatMessage is one message of TestRspamdRatelimitCompat: how many
// recipients it has and how far rspamd's bucket is moved into the past
// before it is sent.
type compatMessage struct {
	rcpts int
	shift time.Duration
}

// TestRspamdRatelimitCompat sends one fresh login's messages, with 1 to 4
// recipients each (and one with 6), through Postfix to the real rspamd and
// checks that bucket.Table, given the same sequence at the same times and
// weights (the number of recipients), predicts exactly which ones rspamd
// soft-rejected (451 Ratelimit "user" exceeded) and the level rspamd keeps
// in Redis after each one.
//
// Determinism. The bucket leaks one message a minute, so a whole run of a
// few seconds leaks less than 0.1, and the sequence is chosen so that
// every decision is either at least half a message away from the burst or
// exactly at it (which is allowed at any leak, since a leak is never
// negative): no sub-second difference between the test's clock and
// rspamd's can flip one. To test leaking without waiting minutes, the test
// moves the bucket's last-update time `l` in Redis back by `shift` (the
// same as the whole past having happened that much earlier) and moves the
// model's clock forward by the same amount; shifts of 150 s leave the
// level half-way between integers, shifts of 10 minutes drain it.
//
// Each message comes from its own client address (198.18.90.x, its `ip`
// bucket cleared first), so the `ip` bucket, burst 3, is always new and
// never limits: only the `user` bucket decides.
//
// The message with 6 recipients, more than the burst, arrives at an empty
// bucket: rspamd 3.4 lets it through, 3.6 and later limit it; the model
// follows the installed version (bucket.Rspamd34 or bucket.Rspamd36).
func TestRspamdRatelimitCompat(t *testing.T) {
	requireE2E(t)
	version := installedRspamd(t)
	seq := []compatMessage{
		{rcpts: 2},                           // new bucket: allowed, level 2
		{rcpts: 3},                           // 2+3 = 5, exactly the burst: allowed
		{rcpts: 1},                           // 5+1 > 5: limited
		{rcpts: 4},                           // limited
		{rcpts: 3, shift: 150 * time.Second}, // 2.5 leaked: 2.5+3 > 5: limited
		{rcpts: 2},                           // 2.5+2 = 4.5: allowed
		{rcpts: 1},                           // 4.5+1 > 5: limited
		{rcpts: 4, shift: 10 * time.Minute},  // drained: allowed, level 4
		{rcpts: 1},                           // 4+1 = 5: allowed
		{rcpts: 1},                           // limited
		{rcpts: 6, shift: 10 * time.Minute},  // drained, heavier than the burst: 3.4 allows, 3.6 limits
		{rcpts: 1},                           // 3.4: 6+1 > 5, limited; 3.6: 0+1, allowed
	}

	run := rand.Uint32()
	login := fmt.Sprintf("compat-%d@example.org", run)
	addrs := make([]string, len(seq))
	redisKeys := []string{"20000:" + login} // gen_rate_key: round(100000 / burst) ":" value
	for i := range seq {
		addrs[i] = fmt.Sprintf("198.18.90.%d", 10+i)
		redisKeys = append(redisKeys, "33333:"+addrs[i]) // the ip bucket, burst 3
	}
	hashed := ratelimitHashes(t, redisKeys)
	userKey := hashed[0]
	redisCmd(t, append([]string{"DEL"}, hashed...)...)

	lim, err := bucket.ParseLimit(compatUserRate, strconv.Itoa(compatUserBurst))
	if err != nil {
		t.Fatal(err)
	}
	model, err := bucket.NewTable(bucket.Config{Limit: lim, Rspamd: version})
	if err != nil {
		t.Fatal(err)
	}

	var shifted time.Duration // total moved into the past so far
	start := time.Now()
	for i, m := range seq {
		if m.shift > 0 {
			shiftBucket(t, userKey, m.shift)
			shifted += m.shift
		}
		code, reply := sendCompat(t, addrs[i], login, m.rcpts, run, i)
		at := time.Now().Add(shifted)
		var rejected bool
		switch {
		case code == 250:
		case code == 451 && strings.Contains(reply, `Ratelimit "user" exceeded`):
			rejected = true
		default:
			t.Fatalf("message %d (%d recipients): unexpected reply %q", i+1, m.rcpts, reply)
		}
		predicted := model.Update(login, at, float64(m.rcpts))
		if predicted.Limited != rejected {
			t.Errorf("message %d (%d recipients, %v after the first on the model's clock): rspamd %s (%q), the model (%v) predicts limited=%v, level %.3f",
				i+1, m.rcpts, at.Sub(start), map[bool]string{true: "soft-rejected", false: "accepted"}[rejected], reply, model.Policy().Rspamd(), predicted.Limited, predicted.Level)
		}
		stored, err := strconv.ParseFloat(redisCmd(t, "HGET", userKey, "b"), 64)
		if err != nil {
			t.Fatalf("message %d: rspamd's level in redis: %v", i+1, err)
		}
		t.Logf("message %2d: %d recipients at +%v: %d, rspamd level %.4f, model limited=%v level %.4f",
			i+1, m.rcpts, at.Sub(start).Round(time.Millisecond), code, stored, predicted.Limited, predicted.Level)
		if math.Abs(stored-predicted.Level) > 0.01 {
			t.Errorf("message %d: rspamd keeps level %.4f, the model %.4f", i+1, stored, predicted.Level)
		}
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("the run took %v: the sequence's margins assume well under 30 s (half a message's leak)", d)
	}
	redisCmd(t, append([]string{"DEL"}, hashed...)...)
}

// installedRspamd maps `rspamd --version` to the model's release line.
func installedRspamd(t *testing.T) bucket.Version {
	t.Helper()
	out, err := exec.Command("rspamd", "--version").Output()
	if err != nil {
		t.Fatalf("rspamd --version: %v", err)
	}
	f := strings.Fields(string(out))
	if len(f) == 0 {
		t.Fatalf("rspamd --version: %q", out)
	}
	major, minor, _ := strings.Cut(f[len(f)-1], ".")
	ma, err1 := strconv.Atoi(major)
	mi, err2 := strconv.Atoi(strings.SplitN(minor, ".", 2)[0])
	switch {
	case err1 != nil || err2 != nil:
		t.Fatalf("rspamd --version: cannot read %q", out)
	case ma < 3 || ma == 3 && mi <= 4:
		return bucket.Rspamd34
	case ma == 3 && mi == 5:
		t.Skip("rspamd 3.5 counts each message twice; bucket does not model it")
	}
	return bucket.Rspamd36
}

// ratelimitHashes returns the Redis keys rspamd's ratelimit plugin uses for
// the given bucket keys: "RL" and the first min(24, len) characters of the
// key's hash in rspamd's base32 (make_prefix in ratelimit.lua), computed by
// rspamd's own Lua library so that no hash or alphabet is reimplemented.
func ratelimitHashes(t *testing.T, keys []string) []string {
	t.Helper()
	var script strings.Builder
	script.WriteString(`local h = require "rspamd_cryptobox_hash"` + "\n")
	for _, k := range keys {
		fmt.Fprintf(&script, "print(h.create(%q):base32())\n", k)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "rspamadm", "lua", "-e", script.String()).Output()
	if err != nil {
		t.Fatalf("rspamadm lua: %v", err)
	}
	lines := strings.Fields(string(out))
	if len(lines) < len(keys) {
		t.Fatalf("rspamadm lua printed %q for %d keys", out, len(keys))
	}
	lines = lines[len(lines)-len(keys):]
	hashed := make([]string, len(keys))
	for i, k := range keys {
		hashed[i] = "RL" + lines[i][:min(24, len(k), len(lines[i]))]
	}
	return hashed
}

// redisCmd runs one redis-cli command and returns its raw answer.
func redisCmd(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("redis-cli", append([]string{"-h", redisHost, "-p", redisPort, "--no-raw"}, args...)...).Output()
	if err != nil {
		t.Fatalf("redis-cli %v: %v", args, err)
	}
	s := strings.TrimSpace(string(out))
	s = strings.TrimPrefix(s, "(integer) ")
	return strings.Trim(s, `"`)
}

// shiftBucket moves the bucket's last-update time (milliseconds) back by d,
// as if everything in it had happened d earlier.
func shiftBucket(t *testing.T, key string, d time.Duration) {
	t.Helper()
	before, err := strconv.ParseInt(redisCmd(t, "HGET", key, "l"), 10, 64)
	if err != nil {
		t.Fatalf("bucket %s: last-update time: %v", key, err)
	}
	after := redisCmd(t, "HINCRBY", key, "l", strconv.FormatInt(-d.Milliseconds(), 10))
	if after != strconv.FormatInt(before-d.Milliseconds(), 10) {
		t.Fatalf("bucket %s: l was %d, HINCRBY by -%d answered %q", key, before, d.Milliseconds(), after)
	}
}

// sendCompat sends one message as login from client addr to rcpts
// recipients at localhost (XCLIENT LOGIN makes it an authenticated
// submission, which fills rspamd's `user` bucket), and returns the final
// reply.
func sendCompat(t *testing.T, addr, login string, rcpts int, run uint32, i int) (int, string) {
	t.Helper()
	to := make([]string, rcpts)
	for j := range to {
		to[j] = fmt.Sprintf("compat%d@localhost", j+1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, runErr := exec.CommandContext(ctx, "swaks",
		"--server", smtpHost, "--port", smtpPort,
		"--xclient-addr", addr, "--xclient-login", login,
		"--helo", "client.example.org",
		"--from", login, "--to", strings.Join(to, ","),
		"--header", fmt.Sprintf("Subject: mailjail ratelimit compat %d message %d", run, i+1),
	).CombinedOutput()
	code, reply, err := parseSwaks(out)
	if err != nil {
		t.Fatalf("swaks as %s from %s: %v (swaks: %v)\n%s", login, addr, err, runErr, out)
	}
	return code, reply
}
