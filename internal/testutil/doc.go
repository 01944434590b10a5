// Package testutil is what mailjail's tests share: a fake clock moved by
// hand, waits with deadlines that grow under the race detector, and
// builders for log lines. It is imported by tests only.
package testutil
