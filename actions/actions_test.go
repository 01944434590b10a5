package actions_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailjail/mailjail/actions"
	"github.com/mailjail/mailjail/actions/actionstest"
	"github.com/mailjail/mailjail/internal/testutil"
)

func TestExpand(t *testing.T) {
	argv := []string{"/usr/sbin/nft", "add", "element", "inet", "f", "s", "{ <ip> timeout <bantime>s }", "<jail>"}
	got := actions.Expand(argv, actions.Vars{IP: "2001:db8::42", Jail: "rspamd-ratelimit", BanTime: time.Hour})
	want := []string{"/usr/sbin/nft", "add", "element", "inet", "f", "s", "{ 2001:db8::42 timeout 3600s }", "rspamd-ratelimit"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q", got)
	}
	if got := actions.Expand([]string{"<bantime>"}, actions.Vars{}); got[0] != "-1" {
		t.Errorf("permanent = %q", got[0])
	}
}

// hostile are values a filter could have captured if mailjail took text
// from a log line as it is (it does not: see the enforce tests).
var hostile = []string{
	"192.0.2.1; touch PWNED",
	"$(touch PWNED)",
	"`touch PWNED`",
	"192.0.2.1 && touch PWNED",
	"a b\tc\nd",
	"'\"; touch PWNED; echo \"'",
	"192.0.2.1 | tee PWNED",
	"-rf",
}

// A value arrives as ONE argv element whatever it holds: Expand never
// splits it and Run passes it to the program without a shell.
func TestValueStaysOneArgvElement(t *testing.T) {
	for _, v := range hostile {
		t.Run(v, func(t *testing.T) {
			dir := t.TempDir()
			out := filepath.Join(dir, "out")
			pwned := strings.ReplaceAll(v, "PWNED", filepath.Join(dir, "pwned"))
			// The script prints its argument count and each argument
			// NUL-terminated, so that a split would show.
			argv := actions.Expand([]string{"/bin/sh", "-c", `printf '%s\0' "$#" "$@" > "$0"`, out, "<ip>", "<jail>"}, actions.Vars{IP: pwned, Jail: "j"})
			if len(argv) != 6 || argv[4] != pwned {
				t.Fatalf("expanded to %q", argv)
			}
			if _, err := actions.Run(context.Background(), actions.Command{Argv: argv}, nil); err != nil {
				t.Fatal(err)
			}
			data, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := string(data), "2\x00"+pwned+"\x00j\x00"; got != want {
				t.Errorf("arguments = %q, want %q", got, want)
			}
			if _, err := os.Stat(filepath.Join(dir, "pwned")); err == nil {
				t.Error("a value was interpreted by a shell")
			}
		})
	}
	if _, err := actions.Run(context.Background(), actions.Command{Argv: []string{"/nonexistent/program"}}, nil); err == nil {
		t.Error("a missing program succeeded")
	}
}

// The command sees only the minimal environment, never the daemon's.
func TestRunEnvironmentIsMinimal(t *testing.T) {
	t.Setenv("MAILJAIL_SECRET_OF_THE_DAEMON", "s3cret")
	t.Setenv("HTTPS_PROXY", "http://proxy.example:3128")
	out, err := actions.Run(context.Background(), actions.Command{Argv: []string{"/usr/bin/env"}, Event: "ban", Jail: "rl", Addr: "2001:db8::/64"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSpace(string(out.Kept)), "\n")
	slices.Sort(got)
	want := []string{"LANG=C", "MAILJAIL_ADDR=2001:db8::/64", "MAILJAIL_EVENT=ban", "MAILJAIL_JAIL=rl", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	if !slices.Equal(got, want) {
		t.Errorf("env =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// Output is kept up to actions.OutputLimit and the rest counted; a command that
// prints far more than that is not blocked by a full pipe. Output of a
// success is logged, cut; a failure's is in the error.
func TestRunOutputIsBounded(t *testing.T) {
	var logged bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logged, nil))
	// 1 MiB on stdout and 1 MiB on stderr, then a word.
	out, err := actions.Run(context.Background(), actions.Command{Argv: []string{"/bin/sh", "-c",
		`head -c 1048576 /dev/zero | tr '\0' o; head -c 1048576 /dev/zero | tr '\0' e >&2; echo END`}, Event: "ban"}, log)
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Kept) != actions.OutputLimit || out.Dropped != 2<<20+4-actions.OutputLimit {
		t.Errorf("kept %d, dropped %d", len(out.Kept), out.Dropped)
	}
	if !bytes.Equal(out.Kept, bytes.Repeat([]byte("o"), actions.OutputLimit)) {
		t.Error("kept is not the first bytes")
	}
	if l := logged.String(); !strings.Contains(l, "action output") || !strings.Contains(l, "more bytes dropped") || len(l) > 2000 {
		t.Errorf("logged %d bytes: %.300s", len(l), l)
	}
	_, err = actions.Run(context.Background(), actions.Command{Argv: []string{"/bin/sh", "-c", "echo no such set >&2; exit 3"}}, nil)
	if err == nil || !strings.Contains(err.Error(), "exit status 3: no such set") {
		t.Errorf("err = %v", err)
	}
}

// A hung action is killed with its children at the deadline: children
// that do not die with their parent must not survive it.
func TestRunKillsTheWholeProcessGroupAtTheDeadline(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pids")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := actions.Run(ctx, actions.Command{Argv: actionstest.HungArgv(pidFile, false)}, nil)
	if err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("err = %v, want a kill at the deadline", err)
	}
	if d := time.Since(start); d > testutil.Scale(3*time.Second) {
		t.Errorf("Run returned after %s", d)
	}
	actionstest.WantGone(t, pidFile)
}
