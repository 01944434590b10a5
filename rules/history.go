package rules

import (
	"slices"
	"time"
)

// History is the start times of earlier bans per key, what escalation
// counts. Each Policy has its own (the bans of its jail); an engine whose
// jails count bans of every jail (bantime_overalljails) keeps one more,
// records every jail's bans in it, and gives it to those jails'
// policies (Policy.ShareHistory).
type History[K comparable] struct {
	keep   time.Duration // how long a start is kept: the longest lookback that reads it
	starts map[K][]int64 // unix ns, ascending
}

// NewHistory returns an empty history keeping ban starts for keep.
func NewHistory[K comparable](keep time.Duration) *History[K] {
	return &History[K]{keep: keep, starts: make(map[K][]int64)}
}

// Record remembers a ban of k that started at since.
func (h *History[K]) Record(k K, since time.Time) {
	s := h.starts[k]
	t := since.UnixNano()
	i, _ := slices.BinarySearch(s, t)
	h.starts[k] = slices.Insert(s, i, t)
}

// Count is the number of k's bans that started inside lookback before
// now.
func (h *History[K]) Count(k K, now time.Time, lookback time.Duration) int {
	s := h.starts[k]
	i, _ := slices.BinarySearch(s, now.Add(-lookback).UnixNano())
	return len(s) - i
}

// Prune forgets starts older than keep before now.
func (h *History[K]) Prune(now time.Time) {
	cut := now.Add(-h.keep).UnixNano()
	for k, s := range h.starts {
		j, _ := slices.BinarySearch(s, cut)
		switch {
		case j == len(s):
			delete(h.starts, k)
		case j > 0:
			h.starts[k] = s[:copy(s, s[j:])]
		}
	}
}

// Len is the number of keys with a recorded ban.
func (h *History[K]) Len() int { return len(h.starts) }
