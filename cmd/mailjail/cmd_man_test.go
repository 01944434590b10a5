package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/mailjail/mailjail/internal/config"
)

// The man pages and completions are generated from the definitions: every
// visible command is in mailjail(1) and the fish completion, every
// documented key in mailjail.toml(5).
func TestManAndCompletions(t *testing.T) {
	var cmds []string
	for _, c := range newApp(nil, nil).Commands {
		if !c.Hidden {
			cmds = append(cmds, c.Name)
		}
	}
	tests := []struct {
		args []string
		head string
		want []string
	}{
		{[]string{"man", "1"}, ".TH mailjail 1", cmds},
		{[]string{"completion", "fish"}, "# mailjail fish shell completion", cmds},
		{[]string{"completion", "bash"}, "# bash completion for mailjail", nil},
		{[]string{"completion", "zsh"}, "#compdef mailjail", nil},
	}
	var keys []string
	for _, s := range config.Reference {
		for _, k := range s.Keys {
			keys = append(keys, k.Key)
		}
	}
	tests = append(tests, struct {
		args []string
		head string
		want []string
	}{[]string{"man", "5"}, ".TH mailjail.toml 5", keys})
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := run(append([]string{"mailjail"}, tt.args...), &out, &errb); code != 0 {
				t.Fatalf("exit %d: %s", code, errb.String())
			}
			s := out.String()
			if !strings.Contains(s, tt.head) {
				t.Errorf("no %q in:\n%.300s", tt.head, s)
			}
			for _, w := range tt.want {
				if !strings.Contains(s, w) {
					t.Errorf("%q missing", w)
				}
			}
		})
	}
	var out, errb bytes.Buffer
	if code := run([]string{"mailjail", "man", "8"}, &out, &errb); code != 2 {
		t.Errorf("man 8: exit %d, want 2", code)
	}
}
