package testutil

import (
	"errors"
	"os"
	"testing"
)

// ReadFile returns the file's content, failing the test when it cannot
// be read.
func ReadFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// ReadFileOrEmpty is ReadFile of a file that may not exist yet (a map
// before its first write): "" then.
func ReadFileOrEmpty(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return string(b)
}
