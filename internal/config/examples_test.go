package config

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// Every filter example is a valid configuration on its own, and finds in
// its sample log (hostile lines included) exactly the addresses of its
// golden file.
func TestExampleFiltersMatchTheirSamples(t *testing.T) {
	paths, err := filepath.Glob("../../examples/filters/*.toml")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no filter examples: %v", err)
	}
	for _, path := range paths {
		name := strings.TrimSuffix(filepath.Base(path), ".toml")
		t.Run(name, func(t *testing.T) {
			fh, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer fh.Close()
			c, err := Parse(fh, path)
			if err == nil {
				err = c.Validate()
			}
			if err != nil {
				t.Fatal(err)
			}
			f, err := c.CompileFilter(c.Jail(name).Filter)
			if err != nil {
				t.Fatal(err)
			}
			log, err := os.Open(filepath.Join("testdata/filters", name+".log"))
			if err != nil {
				t.Fatal(err)
			}
			defer log.Close()
			counts := map[string]int{}
			ref := time.Date(2013, 12, 20, 0, 0, 0, 0, time.UTC)
			for sc := bufio.NewScanner(log); sc.Scan(); {
				line := sc.Bytes()
				if !f.Prefilter().Pass(line) {
					continue
				}
				_, n, ok := f.ParseTime(line, time.UTC, ref)
				if !ok {
					t.Errorf("no time in %q", line)
				}
				if m, ok := f.Match(line[n:]); ok {
					counts[m.Addr.String()]++
				}
			}
			var got []string
			for a, n := range counts {
				got = append(got, fmt.Sprintf("%s %d\n", a, n))
			}
			slices.Sort(got)
			want, err := os.ReadFile(filepath.Join("testdata/filters", name+".golden"))
			if err != nil {
				t.Fatal(err)
			}
			wantLines := strings.SplitAfter(string(want), "\n")
			wantLines = slices.DeleteFunc(wantLines, func(s string) bool { return s == "" })
			slices.Sort(wantLines)
			if strings.Join(got, "") != strings.Join(wantLines, "") {
				t.Errorf("matches:\n%s\nwant:\n%s", strings.Join(got, ""), strings.Join(wantLines, ""))
			}
		})
	}
}
