package testutil

import (
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
