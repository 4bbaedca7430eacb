package db

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Group commit of guarded transactions.
//
// Every transition is its own guarded transaction, but sending each as its
// own etcd request makes throughput a matter of round trips. The batcher
// packs the transactions that are waiting into one etcd transaction, each
// as a nested transaction (etcd ≥ 3.3) with its own guard, so each still
// succeeds or fails on its own. etcd evaluates every nested guard against
// the state before the whole request, so two transactions touching the same
// key must never share a request: a batch holds only transactions whose keys
// are disjoint, and the rest wait for the next one.
const (
	// maxBatch bounds the nested transactions of one request. etcd gives a
	// nested transaction the op budget left by its parent (128 − batch), and
	// ours use at most 4 ops, so 64 leaves room.
	maxBatch = 64
	// maxBatchBytes keeps a request well under etcd's 1.5 MiB limit.
	maxBatchBytes = 1 << 20
	// maxCommitters is how many batches may be in flight at once; the
	// batches themselves grow when etcd is slow.
	maxCommitters = 2
	// commitTimeout bounds one batch's etcd request.
	commitTimeout = 30 * time.Second
)

// guardedTxn is one caller's transaction.
type guardedTxn struct {
	ctx   context.Context
	cmps  []clientv3.Cmp
	then  []clientv3.Op
	els   []clientv3.Op
	keys  []string
	bytes int
	done  chan txnOutcome
}

// txnOutcome is what a caller learns about its transaction.
type txnOutcome struct {
	succeeded bool
	responses []*pb.ResponseOp
	revision  int64
	err       error
}

// batcher queues guarded transactions and commits them in groups. Its
// committer goroutines start when work arrives and end when the queue is
// empty, so it needs no Close.
type batcher struct {
	client  *clientv3.Client
	metrics *batchMetrics

	mu     sync.Mutex
	queue  []*guardedTxn
	active int
}

func newBatcher(client *clientv3.Client, m *batchMetrics) *batcher {
	return &batcher{client: client, metrics: m}
}

// batchMetrics describe group commit: how many transactions share an etcd
// request, and how long the request takes.
type batchMetrics struct {
	size     prometheus.Histogram
	duration prometheus.Histogram
}

func newBatchMetrics(reg prometheus.Registerer) *batchMetrics {
	m := &batchMetrics{
		size: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "gavel_bbs_store_batch_size",
			Help:    "Guarded transactions committed in one etcd request.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64},
		}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "gavel_bbs_store_commit_duration_seconds",
			Help:    "Latency of one group-commit etcd request.",
			Buckets: prometheus.ExponentialBuckets(0.0002, 2, 14),
		}),
	}
	if reg != nil {
		reg.MustRegister(m.size, m.duration)
	}
	return m
}

// commit runs one guarded transaction (If cmps Then then Else els) as part
// of a batch and waits for its outcome.
func (b *batcher) commit(ctx context.Context, cmps []clientv3.Cmp, then, els []clientv3.Op) txnOutcome {
	t := &guardedTxn{ctx: ctx, cmps: cmps, then: then, els: els, done: make(chan txnOutcome, 1)}
	for _, c := range cmps {
		t.keys = append(t.keys, string(c.KeyBytes()))
		t.bytes += len(c.KeyBytes()) + 16
	}
	for _, ops := range [][]clientv3.Op{then, els} {
		for _, op := range ops {
			t.keys = append(t.keys, string(op.KeyBytes()))
			t.bytes += len(op.KeyBytes()) + len(op.ValueBytes()) + 16
		}
	}
	b.mu.Lock()
	b.queue = append(b.queue, t)
	if b.active < maxCommitters {
		b.active++
		go b.drain()
	}
	b.mu.Unlock()
	select {
	case out := <-t.done:
		return out
	case <-ctx.Done():
		// The transaction may still be committed; the caller's guard makes
		// a later retry see whatever happened.
		return txnOutcome{err: ctx.Err()}
	}
}

// drain commits batches until the queue is empty.
func (b *batcher) drain() {
	for {
		batch := b.take()
		if batch == nil {
			return
		}
		b.send(batch)
	}
}

// take removes a batch of disjoint transactions from the queue, or returns
// nil (and retires the calling committer) when there is nothing to do.
func (b *batcher) take() []*guardedTxn {
	b.mu.Lock()
	defer b.mu.Unlock()
	var batch []*guardedTxn
	seen := make(map[string]struct{})
	size := 0
	rest := b.queue[:0]
	for _, t := range b.queue {
		if t.ctx.Err() != nil {
			t.done <- txnOutcome{err: t.ctx.Err()}
			continue
		}
		if len(batch) >= maxBatch || (len(batch) > 0 && size+t.bytes > maxBatchBytes) || overlaps(seen, t.keys) {
			rest = append(rest, t)
			continue
		}
		for _, k := range t.keys {
			seen[k] = struct{}{}
		}
		size += t.bytes
		batch = append(batch, t)
	}
	clear(b.queue[len(rest):])
	b.queue = rest
	if len(batch) == 0 {
		b.active--
	}
	return batch
}

func overlaps(seen map[string]struct{}, keys []string) bool {
	for _, k := range keys {
		if _, ok := seen[k]; ok {
			return true
		}
	}
	return false
}

// send commits one batch and hands each transaction its outcome.
func (b *batcher) send(batch []*guardedTxn) {
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	start := time.Now()
	defer func() {
		b.metrics.size.Observe(float64(len(batch)))
		b.metrics.duration.Observe(time.Since(start).Seconds())
	}()
	if len(batch) == 1 {
		t := batch[0]
		resp, err := b.client.Txn(ctx).If(t.cmps...).Then(t.then...).Else(t.els...).Commit()
		if err != nil {
			t.done <- txnOutcome{err: err}
			return
		}
		t.done <- txnOutcome{succeeded: resp.Succeeded, responses: resp.Responses, revision: resp.Header.Revision}
		return
	}
	ops := make([]clientv3.Op, len(batch))
	for i, t := range batch {
		ops[i] = clientv3.OpTxn(t.cmps, t.then, t.els)
	}
	resp, err := b.client.Txn(ctx).Then(ops...).Commit()
	if err == nil && len(resp.Responses) != len(batch) {
		err = fmt.Errorf("batched txn: %d responses for %d transactions", len(resp.Responses), len(batch))
	}
	for i, t := range batch {
		if err != nil {
			t.done <- txnOutcome{err: err}
			continue
		}
		inner := resp.Responses[i].GetResponseTxn()
		t.done <- txnOutcome{succeeded: inner.GetSucceeded(), responses: inner.GetResponses(), revision: resp.Header.Revision}
	}
}
