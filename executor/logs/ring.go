// Package logs owns the executor's log capture: a bounded per-container ring
// of output lines that can be read from any position and followed, and the
// line splitter that turns process output into those lines.
package logs

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Stream says which output a line came from.
type Stream uint8

const (
	// Stdout is a process's standard output, and the executor's own
	// progress messages.
	Stdout Stream = iota
	// Stderr is a process's standard error.
	Stderr
)

// String names the stream as "stdout" or "stderr".
func (s Stream) String() string {
	if s == Stderr {
		return "stderr"
	}
	return "stdout"
}

// Line is one captured line of output, without its trailing newline.
type Line struct {
	// Seq numbers lines of one ring from 0, without gaps: a reader that
	// asked for lines from n and got a first Seq above n lost lines to
	// eviction.
	Seq    uint64
	Time   time.Time
	Source string
	Stream Stream
	Text   string
}

// ErrClosed is returned by Follow once a closed ring has been read to its end.
var ErrClosed = errors.New("log ring closed")

// lineOverhead is charged per line on top of its text so that a flood of
// empty lines is bounded too.
const lineOverhead = 32

// Ring keeps the most recent lines of a container's output, bounded both in
// line count and in bytes (text plus a fixed per-line overhead). All methods
// are safe for concurrent use; mu guards every field.
type Ring struct {
	mu       sync.Mutex
	buf      []Line // circular, len(buf) grows up to maxLines
	head     int    // index of the oldest line in buf
	n        int    // lines held
	bytes    int    // bytes charged for the lines held
	maxLines int
	maxBytes int
	next     uint64        // Seq of the next line appended
	changed  chan struct{} // closed and replaced on an append that a follower waits for, and on Close
	watched  bool          // a follower holds changed
	closed   bool
	now      func() time.Time
}

// NewRing returns a ring holding at most maxLines lines and maxBytes bytes.
// Non-positive bounds take 1000 lines and 1 MiB.
func NewRing(maxLines, maxBytes int) *Ring {
	if maxLines <= 0 {
		maxLines = 1000
	}
	if maxBytes <= 0 {
		maxBytes = 1 << 20
	}
	return &Ring{maxLines: maxLines, maxBytes: maxBytes, changed: make(chan struct{}), now: time.Now}
}

// Append adds one line, evicting the oldest lines to stay within bounds. A
// line longer than the byte bound is cut to fit. Appends to a closed ring
// are dropped.
func (r *Ring) Append(source string, stream Stream, text string) {
	if limit := r.maxBytes - lineOverhead; len(text) > limit {
		text = text[:max(limit, 0)]
	}
	cost := len(text) + lineOverhead
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	for r.n > 0 && (r.n >= r.maxLines || r.bytes+cost > r.maxBytes) {
		r.evictOldest()
	}
	l := Line{Seq: r.next, Time: r.now(), Source: source, Stream: stream, Text: text}
	r.next++
	if r.n == len(r.buf) {
		r.grow()
	}
	r.buf[(r.head+r.n)%len(r.buf)] = l
	r.n++
	r.bytes += cost
	if r.watched {
		// Only pay for a new channel when someone waits on the old one.
		close(r.changed)
		r.changed = make(chan struct{})
		r.watched = false
	}
}

// grow doubles the buffer (up to maxLines), laying the held lines out from
// index 0. Growing lazily keeps idle containers cheap.
func (r *Ring) grow() {
	size := min(max(2*len(r.buf), 16), r.maxLines)
	buf := make([]Line, size)
	for i := 0; i < r.n; i++ {
		buf[i] = r.buf[(r.head+i)%len(r.buf)]
	}
	r.buf, r.head = buf, 0
}

func (r *Ring) evictOldest() {
	old := &r.buf[r.head]
	r.bytes -= len(old.Text) + lineOverhead
	*old = Line{}
	r.head = (r.head + 1) % len(r.buf)
	r.n--
}

// Read returns up to limit lines with Seq >= from (all of them when limit
// <= 0), oldest first, and the Seq to pass as from on the next call. When
// from is older than the oldest line held, reading starts at the oldest.
func (r *Ring) Read(from uint64, limit int) (lines []Line, next uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	lines, next, _, _ = r.readLocked(from, limit)
	return lines, next
}

func (r *Ring) readLocked(from uint64, limit int) ([]Line, uint64, chan struct{}, bool) {
	oldest := r.next - uint64(r.n)
	if from < oldest {
		from = oldest
	}
	if from > r.next {
		from = r.next
	}
	count := int(r.next - from)
	if limit > 0 && count > limit {
		count = limit
	}
	var lines []Line
	if count > 0 {
		lines = make([]Line, count)
		start := r.head + int(from-oldest)
		for i := range lines {
			lines[i] = r.buf[(start+i)%len(r.buf)]
		}
	}
	return lines, from + uint64(count), r.changed, r.closed
}

// Follow calls fn for every line with Seq >= from, first those held and then
// each new one as it is appended, until ctx ends (returning ctx.Err()), fn
// fails (returning its error) or the ring is closed and drained (returning
// ErrClosed).
func (r *Ring) Follow(ctx context.Context, from uint64, fn func(Line) error) error {
	for {
		r.mu.Lock()
		lines, next, changed, closed := r.readLocked(from, 256)
		if len(lines) == 0 {
			r.watched = true
		}
		r.mu.Unlock()
		for _, l := range lines {
			if err := fn(l); err != nil {
				return err
			}
		}
		from = next
		if len(lines) > 0 {
			continue
		}
		if closed {
			return ErrClosed
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		}
	}
}

// Next returns the Seq the next appended line will get.
func (r *Ring) Next() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.next
}

// Close stops the ring taking lines and ends every Follow once it has read
// what is held. Closing twice is harmless.
func (r *Ring) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	r.closed = true
	close(r.changed)
}
