// Package storetest checks what a store holds, for tests that count
// events through the whole daemon: every event written must be stored as
// exactly one strike, whatever rotations, restarts or kills happened.
package storetest

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/mailjail/mailjail/internal/store"
)

// CountDiff compares the strikes in st with events 0..written-1, event i
// being one strike of addrOf(i). It lists the events missing, the events
// counted more than once and the strikes of addresses never written; ""
// means every event is stored exactly once.
func CountDiff(st *store.Store, written int64, addrOf func(int64) netip.Addr) (string, error) {
	seen := map[netip.Addr]int{}
	err := st.StrikesSince(time.Time{}, func(_ []byte, a netip.Addr, _ time.Time) error {
		seen[a]++
		return nil
	})
	if err != nil {
		return "", err
	}
	var missing, twice []int64
	for i := range written {
		a := addrOf(i)
		switch seen[a] {
		case 1:
		case 0:
			missing = append(missing, i)
		default:
			twice = append(twice, i)
		}
		delete(seen, a)
	}
	var b strings.Builder
	if len(missing) > 0 {
		fmt.Fprintf(&b, "%d events never counted: %s\n", len(missing), Ranges(missing))
	}
	if len(twice) > 0 {
		fmt.Fprintf(&b, "%d events counted more than once: %s\n", len(twice), Ranges(twice))
	}
	if len(seen) > 0 {
		fmt.Fprintf(&b, "%d addresses counted that were never written\n", len(seen))
	}
	return b.String(), nil
}

// Ranges renders sorted event numbers as "0-9, 12, 20-24".
func Ranges(xs []int64) string {
	var parts []string
	for i := 0; i < len(xs); {
		j := i
		for j+1 < len(xs) && xs[j+1] == xs[j]+1 {
			j++
		}
		if i == j {
			parts = append(parts, fmt.Sprint(xs[i]))
		} else {
			parts = append(parts, fmt.Sprintf("%d-%d", xs[i], xs[j]))
		}
		i = j + 1
	}
	return strings.Join(parts, ", ")
}
