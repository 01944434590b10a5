package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// `mailjail -c FILE check` and `mailjail --config FILE check` checked the
// default configuration and said ok: check's own --config flag shadowed
// the global one. Every spelling must check FILE, and say which file it
// checked.
func TestCheckValidatesTheFileNamedInEverySpelling(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	bad := filepath.Join(e.dir, "bad.toml")
	if err := os.WriteFile(bad, []byte("[jail.x]\nfilter = \"rspamd-ratelimit\"\nlogpath = [\"/l\"]\nmaxretry = 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	spellings := []struct {
		name string
		env  []string
		args func(file string) []string
	}{
		{"-c FILE check", nil, func(f string) []string { return []string{"-c", f, "check"} }},
		{"--config FILE check", nil, func(f string) []string { return []string{"--config", f, "check"} }},
		{"--config=FILE check", nil, func(f string) []string { return []string{"--config=" + f, "check"} }},
		{"check FILE", nil, func(f string) []string { return []string{"check", f} }},
		{"check --config FILE", nil, func(f string) []string { return []string{"check", "--config", f} }},
		{"check -c FILE", nil, func(f string) []string { return []string{"check", "-c", f} }},
		{"MAILJAIL_CONFIG=FILE check", []string{"MAILJAIL_CONFIG=" + "%s"}, func(string) []string { return []string{"check"} }},
		{"MAILJAIL_CONFIG=other check FILE", []string{"MAILJAIL_CONFIG=/nonexistent/mailjail.toml"}, func(f string) []string { return []string{"check", f} }},
	}
	for _, sp := range spellings {
		t.Run(sp.name, func(t *testing.T) {
			for _, tt := range []struct {
				file string
				code int
				out  string // stdout for a good file, stderr for a bad one
			}{
				{e.config, 0, e.config + ": ok\n"},
				{bad, 2, bad + ":4: jail.x.maxretry: must be at least 1"},
			} {
				env := []string{"MAILJAIL_CONFIG="}
				for _, v := range sp.env {
					env = append(env, strings.ReplaceAll(v, "%s", tt.file))
				}
				out, errs, code, err := runCLI(env, sp.args(tt.file)...)
				if err != nil {
					t.Fatal(err)
				}
				got := out
				if tt.code != 0 {
					got = errs
				}
				if code != tt.code || !strings.Contains(got, tt.out) {
					t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit %d and %q", tt.file, code, out, errs, tt.code, tt.out)
				}
			}
		})
	}
}

// A --config that names another file than check's FILE would be ignored:
// refuse it rather than guess.
func TestCheckRefusesTwoDifferentFiles(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, args := range [][]string{
		{"-c", "/nonexistent/other.toml", "check", e.config},
		{"check", e.config, "/nonexistent/other.toml"},
	} {
		if _, errs, code, err := runCLI(nil, args...); err != nil || code != 2 || errs == "" {
			t.Errorf("%q: exit %d %q %v, want 2", args, code, errs, err)
		}
	}
	if out, errs, code, err := runCLI(nil, "-c", e.config, "check", e.config); err != nil || code != 0 || !strings.HasPrefix(out, e.config+": ok") {
		t.Errorf("the same file twice: exit %d %q %q %v", code, out, errs, err)
	}
}

// check reads ignoreip files (a bad line is an error with its file and
// line) and looks up host names: one that does not resolve is a warning.
func TestCheckReadsIgnoreFilesAndResolvesNames(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	list := filepath.Join(e.dir, "gateways")
	cfgPath := filepath.Join(e.dir, "ignore.toml")
	// .onion names are never looked up (RFC 7686): a lookup that fails
	// at once, without network.
	toml := "[global]\nignoreip = [\"file:" + list + "\", \"localhost\", \"gone.onion\"]\n[jail.x]\nfilter = \"rspamd-ratelimit\"\nlogpath = [\"/l\"]\n"
	if err := os.WriteFile(cfgPath, []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		list, out, errs string
		code            int
	}{
		{list: "192.0.2.1\nbad line\n", code: 2, errs: cfgPath + ":2: global.ignoreip: file:" + list + ": " + list + ":2: invalid address \"bad line\""},
		{list: "192.0.2.1\n", code: 0, out: "warning: ignoreip: host name gone.onion does not resolve"},
	} {
		if err := os.WriteFile(list, []byte(tc.list), 0o644); err != nil {
			t.Fatal(err)
		}
		out, errs, code, err := runCLI([]string{"MAILJAIL_CONFIG="}, "check", cfgPath)
		if err != nil {
			t.Fatal(err)
		}
		if code != tc.code || !strings.Contains(out, tc.out) || !strings.Contains(errs, tc.errs) {
			t.Errorf("list %q: exit %d, stdout %q, stderr %q", tc.list, code, out, errs)
		}
		if strings.Contains(out, "localhost does not resolve") {
			t.Errorf("localhost reported: %q", out)
		}
	}
}
