package rep

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestOpQueueOneAtATimePerGuid: operations on one guid never overlap, a
// newer waiting operation replaces an older waiting one, and other guids
// run meanwhile.
func TestOpQueueOneAtATimePerGuid(t *testing.T) {
	q := newOpQueue()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { q.run(ctx, 4); close(done) }()

	var inA atomic.Int32
	var overlap atomic.Bool
	release := make(chan struct{})
	started := make(chan struct{})
	var ran []string
	var mu sync.Mutex
	record := func(s string) {
		mu.Lock()
		ran = append(ran, s)
		mu.Unlock()
	}
	q.push("a", func(context.Context) {
		if inA.Add(1) > 1 {
			overlap.Store(true)
		}
		close(started)
		<-release
		record("a1")
		inA.Add(-1)
	})
	<-started
	// While a1 runs: a2 waits, then a3 replaces it; b runs at once.
	q.push("a", func(context.Context) { record("a2") })
	q.push("a", func(context.Context) {
		if inA.Add(1) > 1 {
			overlap.Store(true)
		}
		record("a3")
		inA.Add(-1)
	})
	bDone := make(chan struct{})
	q.push("b", func(context.Context) { record("b"); close(bDone) })
	select {
	case <-bDone:
	case <-time.After(10 * time.Second):
		t.Fatal("b waited for a")
	}
	close(release)
	deadline := time.Now().Add(10 * time.Second)
	for !q.idle() {
		if time.Now().After(deadline) {
			t.Fatal("queue never drained")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	if overlap.Load() {
		t.Fatal("two operations on one guid overlapped")
	}
	want := map[string]bool{"a1": true, "a3": true, "b": true}
	if len(ran) != 3 {
		t.Fatalf("ran %v, want a1, a3 and b once each", ran)
	}
	for _, r := range ran {
		if !want[r] {
			t.Fatalf("ran %v: a2 should have been replaced by a3", ran)
		}
	}
	q.push("c", func(context.Context) { t.Error("ran after the queue closed") })
}

// TestOpQueuePushWait: the channel closes once the operation has run, or
// once the newer operation that replaced it has; a queue that closes
// releases whoever still waits.
func TestOpQueuePushWait(t *testing.T) {
	q := newOpQueue()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { q.run(ctx, 2); close(done) }()
	wait := func(what string, ch <-chan struct{}) {
		t.Helper()
		select {
		case <-ch:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s never closed", what)
		}
	}

	var ran atomic.Int32
	wait("a lone operation", q.pushWait("a", func(context.Context) { ran.Add(1) }))
	if ran.Load() != 1 {
		t.Fatalf("closed before the operation ran (ran %d)", ran.Load())
	}

	// b1 runs and blocks; b2 waits and is replaced by b3: b2's channel
	// closes when b3 has run, and not before.
	release, started := make(chan struct{}), make(chan struct{})
	q.push("b", func(context.Context) { close(started); <-release })
	<-started
	var b3 atomic.Bool
	b2 := q.pushWait("b", func(context.Context) { t.Error("b2 ran though b3 replaced it") })
	b3done := q.pushWait("b", func(context.Context) { b3.Store(true) })
	select {
	case <-b2:
		t.Fatal("b2's channel closed while b1 still ran")
	default:
	}
	close(release)
	wait("the replaced operation's channel", b2)
	wait("the replacement's channel", b3done)
	if !b3.Load() {
		t.Fatal("closed before the replacement ran")
	}

	// Shutdown releases a waiter whose operation never ran.
	block := make(chan struct{})
	q.push("c", func(context.Context) { <-block })
	c2 := q.pushWait("c", func(context.Context) {})
	cancel()
	wait("a channel at shutdown", c2)
	close(block)
	<-done
	wait("a channel pushed after close", q.pushWait("d", func(context.Context) { t.Error("ran after close") }))
}
