package rep

import (
	"context"
	"sync"
)

// opQueue runs operations keyed by guid on a fixed set of workers, at most
// one at a time per guid. An operation queued while another waits for the
// same guid replaces it (the newer one re-reads the same state anyway),
// and one queued while another runs waits for it: events and bulk syncs
// never race on one container.
type opQueue struct {
	mu      sync.Mutex // guards everything below
	cond    *sync.Cond
	fifo    []string
	waiting map[string]*queuedOp
	running map[string]bool
	closed  bool
}

// queuedOp is a waiting operation and the channels closed once it (or an
// operation that replaced it) has run.
type queuedOp struct {
	op   func(context.Context)
	done []chan struct{}
}

func newOpQueue() *opQueue {
	q := &opQueue{waiting: map[string]*queuedOp{}, running: map[string]bool{}}
	q.cond = sync.NewCond(&q.mu)
	return q
}

// push queues op for guid.
func (q *opQueue) push(guid string, op func(context.Context)) { q.enqueue(guid, op, nil) }

// pushWait queues op for guid and returns a channel closed once op, or a
// newer operation on guid that replaced it, has run (or the queue has
// closed without running it).
func (q *opQueue) pushWait(guid string, op func(context.Context)) <-chan struct{} {
	done := make(chan struct{})
	q.enqueue(guid, op, done)
	return done
}

func (q *opQueue) enqueue(guid string, op func(context.Context), done chan struct{}) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		if done != nil {
			close(done)
		}
		return
	}
	prev, queued := q.waiting[guid]
	next := &queuedOp{op: op}
	if queued {
		next.done = prev.done
	}
	if done != nil {
		next.done = append(next.done, done)
	}
	q.waiting[guid] = next
	if !queued && !q.running[guid] {
		q.fifo = append(q.fifo, guid)
		q.cond.Signal()
	}
}

// idle reports whether no operation waits or runs.
func (q *opQueue) idle() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.waiting) == 0 && len(q.running) == 0
}

// run works the queue on n workers until ctx ends, then waits for the
// operations in flight.
func (q *opQueue) run(ctx context.Context, n int) {
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() { q.work(ctx) })
	}
	<-ctx.Done()
	q.mu.Lock()
	q.closed = true
	for guid, w := range q.waiting {
		closeAll(w.done)
		delete(q.waiting, guid)
	}
	q.fifo = nil
	q.cond.Broadcast()
	q.mu.Unlock()
	wg.Wait()
}

func closeAll(chans []chan struct{}) {
	for _, ch := range chans {
		close(ch)
	}
}

func (q *opQueue) work(ctx context.Context) {
	for {
		q.mu.Lock()
		for len(q.fifo) == 0 && !q.closed {
			q.cond.Wait()
		}
		if q.closed {
			q.mu.Unlock()
			return
		}
		guid := q.fifo[0]
		q.fifo = q.fifo[1:]
		w := q.waiting[guid]
		delete(q.waiting, guid)
		q.running[guid] = true
		q.mu.Unlock()

		w.op(ctx)
		closeAll(w.done)

		q.mu.Lock()
		delete(q.running, guid)
		if _, again := q.waiting[guid]; again {
			q.fifo = append(q.fifo, guid)
			q.cond.Signal()
		}
		q.mu.Unlock()
	}
}
