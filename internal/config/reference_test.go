package config

import (
	"slices"
	"sort"
	"strings"
	"testing"
)

// TestReferenceDocumentsEveryKey keeps mailjail.toml(5) from drifting: a
// key the decoder accepts must be in Reference, and a key in Reference
// must be accepted.
func TestReferenceDocumentsEveryKey(t *testing.T) {
	var documented []string
	for _, s := range Reference {
		if s.Intro == "" {
			t.Errorf("section %s has no intro", s.Name)
		}
		for _, k := range s.Keys {
			if k.Doc == "" || k.Type == "" {
				t.Errorf("%s.%s: no type or doc", s.Name, k.Key)
			}
			documented = append(documented, s.Name+"."+k.Key)
		}
	}
	sort.Strings(documented)
	if d := slices.Compact(slices.Clone(documented)); len(d) != len(documented) {
		t.Errorf("a key is documented twice")
	}
	var accepted []string
	for _, k := range AcceptedKeys() {
		// [defaults] takes a jail's keys, documented under jail.NAME.
		if rest, ok := strings.CutPrefix(k, "defaults."); ok {
			if !slices.Contains(AcceptedKeys(), "jail.NAME."+rest) {
				t.Errorf("%s: [defaults] key that no jail takes", k)
			}
			continue
		}
		accepted = append(accepted, k)
	}
	for _, k := range accepted {
		if _, ok := slices.BinarySearch(documented, k); !ok {
			t.Errorf("%s: accepted by the decoder but not documented in Reference (reference.go)", k)
		}
	}
	for _, k := range documented {
		if !slices.Contains(accepted, k) {
			t.Errorf("%s: documented in Reference but not accepted by the decoder", k)
		}
	}
}

// TestAcceptedKeysParse checks the walker against the decoder itself:
// each accepted key, written alone, is not refused as unknown (its value
// may well be of the wrong type).
func TestAcceptedKeysParse(t *testing.T) {
	for _, k := range AcceptedKeys() {
		doc := strings.ReplaceAll(k, "NAME", "x") + " = 1\n"
		_, err := Parse(strings.NewReader(doc), "one.toml")
		if err != nil && strings.Contains(err.Error(), "unknown field") {
			t.Errorf("%s: listed by AcceptedKeys but unknown to the decoder: %v", k, err)
		}
	}
	if _, err := Parse(strings.NewReader("global.no_such_key = 1\n"), "one.toml"); err == nil || !strings.Contains(err.Error(), "unknown field") {
		t.Fatalf("an unknown key is not refused (%v): the check above proves nothing", err)
	}
}
