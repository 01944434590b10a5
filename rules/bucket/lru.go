package bucket

import (
	"cmp"
	"fmt"
	"math"
	"slices"
)

// nilIndex terminates the LRU list.
const nilIndex int32 = -1

// slot is one key of an lru. The LRU list is threaded through the slice by
// int32 index so that slots are not separately allocated and hold no
// pointers besides the key and whatever V holds.
type slot[V any] struct {
	key        string
	val        V
	prev, next int32 // towards head (more recent) and tail (less recent)
}

// lru is the bounded, least-recently-used keyed store shared by Table and
// Window. It never evicts on its own: insert asks the caller whether the
// least recently used value may go, because evicting a key that still
// counts would reset a client that is being limited.
type lru[V any] struct {
	max        int
	onFull     OnFull
	index      map[string]int32
	slots      []slot[V]
	head, tail int32 // most and least recently used
	stats      Stats
}

// newLRU validates the bound (0 means DefaultMaxEntries) and the on-full
// policy.
func newLRU[V any](maxEntries int, onFull OnFull) (lru[V], error) {
	switch {
	case maxEntries == 0:
		maxEntries = DefaultMaxEntries
	case maxEntries < 0 || maxEntries > math.MaxInt32:
		return lru[V]{}, fmt.Errorf("max entries %d out of range 1..%d: %w", maxEntries, math.MaxInt32, ErrInvalidLimit)
	}
	if onFull != FailOpen && onFull != FailClosed {
		return lru[V]{}, fmt.Errorf("unknown on-full policy %d: %w", onFull, ErrInvalidLimit)
	}
	l := lru[V]{max: maxEntries, onFull: onFull}
	l.reset()
	return l, nil
}

func (l *lru[V]) reset() {
	l.index = make(map[string]int32)
	l.slots = l.slots[:0]
	l.head, l.tail = nilIndex, nilIndex
}

func (l *lru[V]) len() int { return len(l.index) }

// statsNow returns the counters with the current number of entries.
func (l *lru[V]) statsNow() Stats {
	s := l.stats
	s.Entries = len(l.index)
	return s
}

// lookup returns key's value and marks it most recently used.
func (l *lru[V]) lookup(key string) (*V, bool) {
	i, ok := l.index[key]
	if !ok {
		return nil, false
	}
	l.moveToFront(i)
	return &l.slots[i].val, true
}

// peek returns key's value without touching the LRU order.
func (l *lru[V]) peek(key string) (*V, bool) {
	i, ok := l.index[key]
	if !ok {
		return nil, false
	}
	return &l.slots[i].val, true
}

// insert adds key, which must not be present, as most recently used. When
// the store is full only the least recently used value is considered (it
// is the one most likely to be idle, and looking further would make a full
// store cost O(n) per new key exactly when under attack): if idle says it
// may go it is evicted, otherwise nothing is stored, the on-full counter is
// incremented and insert returns nil.
func (l *lru[V]) insert(key string, idle func(*V) bool) *V {
	var i int32
	if len(l.slots) < l.max {
		l.grow()
		l.slots = append(l.slots, slot[V]{})
		i = int32(len(l.slots) - 1)
	} else {
		i = l.tail
		if !idle(&l.slots[i].val) {
			if l.onFull == FailClosed {
				l.stats.FailedClosed++
			} else {
				l.stats.FailedOpen++
			}
			return nil
		}
		delete(l.index, l.slots[i].key)
		l.unlink(i)
		l.stats.Evicted++
	}
	l.slots[i] = slot[V]{key: key, prev: nilIndex, next: nilIndex}
	l.index[key] = i
	l.pushFront(i)
	return &l.slots[i].val
}

// oldestFirst calls f for every key, least recently used first, so that
// restoring in the same order rebuilds the same LRU order.
func (l *lru[V]) oldestFirst(f func(key string, v *V)) {
	for i := l.tail; i != nilIndex; i = l.slots[i].prev {
		f(l.slots[i].key, &l.slots[i].val)
	}
}

// restoreOrder prepares a snapshot for restoring: the later of two items
// with the same key wins, items are ordered by last (stably, so equal
// times keep their order) and only the max most recent are kept.
func restoreOrder[T any](items []T, max int, key func(*T) string, last func(*T) int64) []T {
	latest := make(map[string]int, len(items))
	for i := range items {
		latest[key(&items[i])] = i
	}
	kept := make([]T, 0, len(latest))
	for i := range items {
		if latest[key(&items[i])] == i {
			kept = append(kept, items[i])
		}
	}
	slices.SortStableFunc(kept, func(a, b T) int { return cmp.Compare(last(&a), last(&b)) })
	if len(kept) > max {
		kept = kept[len(kept)-max:]
	}
	return kept
}

// grow makes room for one more slot, doubling but never beyond the bound:
// append's own growth would leave up to a quarter of a full store's slice
// unused for good.
func (l *lru[V]) grow() {
	if len(l.slots) < cap(l.slots) {
		return
	}
	n := min(l.max, max(2*cap(l.slots), 64))
	grown := make([]slot[V], len(l.slots), n)
	copy(grown, l.slots)
	l.slots = grown
}

func (l *lru[V]) pushFront(i int32) {
	s := &l.slots[i]
	s.prev, s.next = nilIndex, l.head
	if l.head != nilIndex {
		l.slots[l.head].prev = i
	}
	l.head = i
	if l.tail == nilIndex {
		l.tail = i
	}
}

func (l *lru[V]) unlink(i int32) {
	s := &l.slots[i]
	if s.prev != nilIndex {
		l.slots[s.prev].next = s.next
	} else {
		l.head = s.next
	}
	if s.next != nilIndex {
		l.slots[s.next].prev = s.prev
	} else {
		l.tail = s.prev
	}
	s.prev, s.next = nilIndex, nilIndex
}

func (l *lru[V]) moveToFront(i int32) {
	if l.head == i {
		return
	}
	l.unlink(i)
	l.pushFront(i)
}
