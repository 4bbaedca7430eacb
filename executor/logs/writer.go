package logs

import (
	"bytes"
	"sync"
)

// MaxLineBytes is the longest line a Writer holds back waiting for its
// newline; longer output is split into lines of this size.
const MaxLineBytes = 16 << 10

// Writer is an io.Writer that cuts what it is given into lines and appends
// each to a ring under one source and stream. A trailing partial line is
// kept until its newline arrives or Flush is called. Safe for concurrent
// use; mu guards pending.
type Writer struct {
	ring    *Ring
	source  string
	stream  Stream
	mu      sync.Mutex
	pending []byte
}

// Writer returns a line writer appending to r.
func (r *Ring) Writer(source string, stream Stream) *Writer {
	return &Writer{ring: r, source: source, stream: stream}
}

// Write appends every complete line in p; it never fails.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.pending = append(w.pending, p...)
			for len(w.pending) >= MaxLineBytes {
				w.emit(w.pending[:MaxLineBytes])
				w.pending = append(w.pending[:0], w.pending[MaxLineBytes:]...)
			}
			break
		}
		if len(w.pending) > 0 {
			w.pending = append(w.pending, p[:i]...)
			w.emitLong(w.pending)
			w.pending = w.pending[:0]
		} else {
			w.emitLong(p[:i])
		}
		p = p[i+1:]
	}
	return n, nil
}

// Flush appends a held partial line, if any.
func (w *Writer) Flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.pending) > 0 {
		w.emitLong(w.pending)
		w.pending = w.pending[:0]
	}
}

func (w *Writer) emitLong(b []byte) {
	for len(b) > MaxLineBytes {
		w.emit(b[:MaxLineBytes])
		b = b[MaxLineBytes:]
	}
	w.emit(b)
}

func (w *Writer) emit(b []byte) {
	b = bytes.TrimSuffix(b, []byte{'\r'})
	w.ring.Append(w.source, w.stream, string(b))
}
