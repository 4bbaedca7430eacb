package logs

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func texts(lines []Line) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = l.Text
	}
	return out
}

func TestRingBounds(t *testing.T) {
	tests := []struct {
		name       string
		maxLines   int
		maxBytes   int
		append     []string
		want       []string
		wantOldest uint64
	}{
		{"under both bounds", 10, 1 << 10, []string{"a", "b"}, []string{"a", "b"}, 0},
		{"line bound evicts oldest", 3, 1 << 10, []string{"a", "b", "c", "d", "e"}, []string{"c", "d", "e"}, 2},
		{"byte bound evicts oldest", 100, 3 * (lineOverhead + 1), []string{"a", "b", "c", "d"}, []string{"b", "c", "d"}, 1},
		{"long line is cut to the byte bound", 100, lineOverhead + 4, []string{"abcdefgh"}, []string{"abcd"}, 0},
		{"long line evicts everything else", 100, lineOverhead + 4, []string{"x", "abcdefgh"}, []string{"abcd"}, 1},
		{"many lines through a small circle", 4, 1 << 10, strings.Split("0 1 2 3 4 5 6 7 8 9 10", " "), []string{"7", "8", "9", "10"}, 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewRing(tt.maxLines, tt.maxBytes)
			for _, s := range tt.append {
				r.Append("app", Stdout, s)
			}
			got, next := r.Read(0, 0)
			if fmt.Sprint(texts(got)) != fmt.Sprint(tt.want) {
				t.Fatalf("lines = %q, want %q", texts(got), tt.want)
			}
			if got[0].Seq != tt.wantOldest {
				t.Errorf("oldest seq = %d, want %d", got[0].Seq, tt.wantOldest)
			}
			if next != uint64(len(tt.append)) {
				t.Errorf("next = %d, want %d", next, len(tt.append))
			}
		})
	}
}

func TestRingGrowsAcrossWrap(t *testing.T) {
	// Evicting by bytes while the buffer is still growing leaves head != 0;
	// growing must keep the order.
	r := NewRing(1000, 20*(lineOverhead+2))
	for i := range 200 {
		r.Append("app", Stdout, fmt.Sprintf("%02d", i%100))
	}
	got, _ := r.Read(0, 0)
	if len(got) != 20 {
		t.Fatalf("held %d lines, want 20", len(got))
	}
	for i, l := range got {
		if want := uint64(180 + i); l.Seq != want {
			t.Fatalf("line %d seq = %d, want %d", i, l.Seq, want)
		}
	}
}

func TestRingReadFromAndLimit(t *testing.T) {
	r := NewRing(10, 1<<10)
	for _, s := range []string{"a", "b", "c", "d"} {
		r.Append("app", Stderr, s)
	}
	got, next := r.Read(1, 2)
	if fmt.Sprint(texts(got)) != "[b c]" || next != 3 {
		t.Fatalf("Read(1,2) = %q next %d", texts(got), next)
	}
	got, next = r.Read(next, 0)
	if fmt.Sprint(texts(got)) != "[d]" || next != 4 {
		t.Fatalf("Read(3,0) = %q next %d", texts(got), next)
	}
	got, next = r.Read(99, 0)
	if len(got) != 0 || next != 4 {
		t.Fatalf("Read past end = %q next %d", texts(got), next)
	}
}

func TestFollowSeesNewLinesAndClose(t *testing.T) {
	r := NewRing(10, 1<<10)
	r.Append("app", Stdout, "before")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	seen := make(chan string, 10)
	done := make(chan error, 1)
	go func() {
		done <- r.Follow(ctx, 0, func(l Line) error { seen <- l.Text; return nil })
	}()
	if got := <-seen; got != "before" {
		t.Fatalf("first = %q", got)
	}
	r.Append("app", Stdout, "after")
	if got := <-seen; got != "after" {
		t.Fatalf("second = %q", got)
	}
	r.Close()
	r.Append("app", Stdout, "dropped")
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("Follow = %v, want ErrClosed", err)
	}
	if len(seen) != 0 {
		t.Fatalf("line after close delivered: %q", <-seen)
	}
}

func TestFollowStopsOnContextAndCallbackError(t *testing.T) {
	r := NewRing(10, 1<<10)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r.Follow(ctx, 0, func(Line) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("Follow on cancelled ctx = %v", err)
	}
	r.Append("app", Stdout, "x")
	boom := errors.New("boom")
	if err := r.Follow(context.Background(), 0, func(Line) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("Follow with failing fn = %v", err)
	}
}

func TestWriterSplitsLines(t *testing.T) {
	tests := []struct {
		name   string
		writes []string
		flush  bool
		want   []string
	}{
		{"one line", []string{"hello\n"}, false, []string{"hello"}},
		{"partial held until newline", []string{"hel", "lo\nwor", "ld\n"}, false, []string{"hello", "world"}},
		{"partial kept without flush", []string{"a\nb"}, false, []string{"a"}},
		{"flush emits partial", []string{"a\nb"}, true, []string{"a", "b"}},
		{"crlf trimmed", []string{"a\r\n"}, false, []string{"a"}},
		{"empty lines kept", []string{"\n\n"}, false, []string{"", ""}},
		{"overlong line split", []string{strings.Repeat("x", MaxLineBytes+3) + "\n"}, false,
			[]string{strings.Repeat("x", MaxLineBytes), "xxx"}},
		{"overlong partial split", []string{strings.Repeat("y", MaxLineBytes+1)}, true,
			[]string{strings.Repeat("y", MaxLineBytes), "y"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewRing(100, 1<<20)
			w := r.Writer("app", Stderr)
			for _, s := range tt.writes {
				if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			if tt.flush {
				w.Flush()
			}
			got, _ := r.Read(0, 0)
			if fmt.Sprint(texts(got)) != fmt.Sprint(tt.want) {
				t.Fatalf("lines = %q, want %q", texts(got), tt.want)
			}
			for _, l := range got {
				if l.Source != "app" || l.Stream != Stderr {
					t.Fatalf("line %+v has wrong source/stream", l)
				}
			}
		})
	}
}

func BenchmarkRingAppend(b *testing.B) {
	r := NewRing(10000, 1<<20)
	line := strings.Repeat("l", 100)
	b.ReportAllocs()
	for b.Loop() {
		r.Append("app", Stdout, line)
	}
}

func BenchmarkWriterLines(b *testing.B) {
	r := NewRing(10000, 1<<20)
	w := r.Writer("app", Stdout)
	chunk := []byte(strings.Repeat(strings.Repeat("l", 99)+"\n", 40))
	b.SetBytes(int64(len(chunk)))
	b.ReportAllocs()
	for b.Loop() {
		_, _ = w.Write(chunk)
	}
}
