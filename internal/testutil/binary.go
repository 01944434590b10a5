package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
)

// BuildBinary builds the command pkg (an import path, or a directory such
// as "." relative to the test's package) once into a fresh temporary
// directory, with -race when the tests run under the race detector, so a
// test drives the real binary as operators and scripts do. It is meant
// for TestMain: it reports failure instead of failing a test. cleanup
// removes the directory; it is never nil.
func BuildBinary(pkg string) (bin string, cleanup func(), err error) {
	cleanup = func() {}
	gobin, err := goTool()
	if err != nil {
		return "", cleanup, err
	}
	dir, err := os.MkdirTemp("", "mailjail-bin-")
	if err != nil {
		return "", cleanup, fmt.Errorf("build %s: %w", pkg, err)
	}
	cleanup = func() { os.RemoveAll(dir) }
	name := path.Base(filepath.ToSlash(pkg))
	if name == "." || name == "/" || name == "" {
		wd, err := os.Getwd()
		if err != nil {
			return "", cleanup, fmt.Errorf("build %s: %w", pkg, err)
		}
		name = filepath.Base(wd)
	}
	bin = filepath.Join(dir, name)
	args := []string{"build", "-o", bin}
	if Race {
		args = append(args, "-race")
	}
	out, err := exec.Command(gobin, append(args, pkg)...).CombinedOutput()
	if err != nil {
		return "", cleanup, fmt.Errorf("go %s %s: %w\n%s", strings.Join(args, " "), pkg, err, out)
	}
	return bin, cleanup, nil
}

// BinaryEnv is env (os.Environ() when nil) prepared for running a binary
// from BuildBinary. Under -race it sets GORACE's atexit_sleep_ms to 0
// (keeping any other GORACE options): the race runtime otherwise sleeps a
// second at every exit, which made a package of CLI tests ten times
// slower. A race found in the child still makes it exit with status 66.
func BinaryEnv(env []string) []string {
	if env == nil {
		env = os.Environ()
	}
	if !Race {
		return env
	}
	out := make([]string, 0, len(env)+1)
	gorace := "atexit_sleep_ms=0"
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "GORACE="); ok {
			gorace = strings.TrimSpace(v + " " + gorace)
			continue
		}
		out = append(out, kv)
	}
	return append(out, "GORACE="+gorace)
}

// goTool is the go command running the tests: go test puts its GOROOT/bin
// first in PATH; $GOROOT/bin/go is the fallback for other runners.
func goTool() (string, error) {
	if p, err := exec.LookPath("go"); err == nil {
		return p, nil
	}
	if root := os.Getenv("GOROOT"); root != "" {
		p := filepath.Join(root, "bin", "go")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("build: no go command in PATH or $GOROOT/bin")
}
