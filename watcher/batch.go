package watcher

import (
	"context"
	"sync"
	"sync/atomic"
)

// batcher hands lines to the consumer in batches; the file follower and the
// journal follower share it. Two batches alternate: when the send of one
// completes the consumer has asked for it, so it is done with the other,
// whose memory is then reused. The Text of a line points into its batch's
// arena, so delivering a line costs no allocation.
type batcher struct {
	out  chan []Line
	bufs [2]batch
	cur  int

	lines, batches atomic.Uint64 // lines and batches handed out

	mu   sync.Mutex
	last Position // of the last line handed out
}

// batch is one batch being filled: its lines and the bytes of their Text.
type batch struct {
	lines []Line
	arena []byte
}

// newBatcher makes room for maxBatch lines in each batch, and for at least
// one line of maxLine bytes in its arena.
func newBatcher(maxBatch, maxLine int) *batcher {
	b := &batcher{out: make(chan []Line)}
	arena := max(1<<20, maxLine+1)
	for i := range b.bufs {
		b.bufs[i] = batch{lines: make([]Line, 0, maxBatch), arena: make([]byte, 0, arena)}
	}
	return b
}

// room returns the batch being filled with room for one more line of n
// bytes, sending it first when it is full. It reports false when ctx was
// cancelled.
func (b *batcher) room(ctx context.Context, n int) (*batch, bool) {
	cur := &b.bufs[b.cur]
	if len(cur.lines) == cap(cur.lines) || len(cur.arena)+n > cap(cur.arena) {
		if !b.flush(ctx) {
			return nil, false
		}
		cur = &b.bufs[b.cur]
	}
	return cur, true
}

// add appends l, whose text the caller has just appended to the arena
// after offset start.
func (c *batch) add(start int, l Line) {
	l.Text = c.arena[start:len(c.arena):len(c.arena)]
	c.lines = append(c.lines, l)
}

// addCopy appends l with a copy of text.
func (c *batch) addCopy(text []byte, l Line) {
	start := len(c.arena)
	c.arena = append(c.arena, text...)
	c.add(start, l)
}

// flush sends the batch being filled, if it holds anything. It reports
// false when ctx was cancelled before the consumer took it.
func (b *batcher) flush(ctx context.Context) bool {
	cur := &b.bufs[b.cur]
	n := len(cur.lines)
	if n == 0 {
		return true
	}
	last := cur.lines[n-1].Pos
	select {
	case b.out <- cur.lines[:n:n]:
	case <-ctx.Done():
		return false
	}
	b.lines.Add(uint64(n))
	b.batches.Add(1)
	b.mu.Lock()
	b.last = last
	b.mu.Unlock()
	b.cur ^= 1
	next := &b.bufs[b.cur]
	clear(next.lines) // drop references into the old arena
	next.lines, next.arena = next.lines[:0], next.arena[:0]
	return true
}

// lastSent is the position of the last line handed out (or the one set
// with setLast before any was).
func (b *batcher) lastSent() Position {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.last
}

func (b *batcher) setLast(p Position) {
	b.mu.Lock()
	b.last = p
	b.mu.Unlock()
}
