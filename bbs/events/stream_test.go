package events

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"

	"github.com/gavel-scheduler/gavel/bbs/db"
	"github.com/gavel-scheduler/gavel/internal/etcdembed"
	"github.com/gavel-scheduler/gavel/proto/models"
)

// eventually polls cond until it holds, failing the test after timeout.
func eventually(tb testing.TB, timeout time.Duration, cond func() bool, format string, args ...any) {
	tb.Helper()
	eventuallyDescribe(tb, timeout, cond, func() string { return fmt.Sprintf(format, args...) })
}

// eventuallyDescribe is eventually with a failure message built at the
// moment of failure.
func eventuallyDescribe(tb testing.TB, timeout time.Duration, cond func() bool, describe func() string) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v: %s", timeout, describe())
		}
		<-tick.C
	}
}

func currentRevision(tb testing.TB, cli *clientv3.Client) int64 {
	tb.Helper()
	resp, err := cli.Get(context.Background(), "/revision-probe")
	if err != nil {
		tb.Fatal(err)
	}
	return resp.Header.Revision
}

// afterList is the resume position of a client that listed at rev.
func afterList(rev int64) *models.EventPosition {
	return &models.EventPosition{Revision: rev, Seq: math.MaxUint32}
}

// collector runs one stream in a goroutine the test owns and records what
// it sends.
type collector[E proto.Message] struct {
	mu     sync.Mutex
	events []E
	done   chan error
	cancel context.CancelFunc
}

func collect[E proto.Message](tb testing.TB, run func(ctx context.Context, send func(E) error) error) *collector[E] {
	ctx, cancel := context.WithCancel(context.Background())
	c := &collector[E]{done: make(chan error, 1), cancel: cancel}
	go func() {
		c.done <- run(ctx, func(e E) error {
			c.mu.Lock()
			defer c.mu.Unlock()
			c.events = append(c.events, e)
			return nil
		})
	}()
	tb.Cleanup(func() {
		cancel()
		<-c.done
	})
	return c
}

func (c *collector[E]) snapshot() []E {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]E(nil), c.events...)
}

func (c *collector[E]) waitFor(tb testing.TB, n int) []E {
	tb.Helper()
	eventually(tb, 10*time.Second, func() bool { return len(c.snapshot()) >= n }, "want %d events, have %d", n, len(c.snapshot()))
	return c.snapshot()
}

func put(tb testing.TB, cli *clientv3.Client, key string, m proto.Message) int64 {
	tb.Helper()
	resp, err := cli.Put(context.Background(), key, string(mustMarshal(tb, m)))
	if err != nil {
		tb.Fatal(err)
	}
	return resp.Header.Revision
}

func txn(tb testing.TB, cli *clientv3.Client, ops ...clientv3.Op) int64 {
	tb.Helper()
	resp, err := cli.Txn(context.Background()).Then(ops...).Commit()
	if err != nil {
		tb.Fatal(err)
	}
	return resp.Header.Revision
}

func putOp(tb testing.TB, key string, m proto.Message) clientv3.Op {
	return clientv3.OpPut(key, string(mustMarshal(tb, m)))
}

// kind names the oneof case of an LRP event, for compact expectations.
func kind(e *models.LRPEvent) string {
	switch e.GetEvent().(type) {
	case *models.LRPEvent_DesiredLrpCreated:
		return "desired_created"
	case *models.LRPEvent_DesiredLrpChanged:
		return "desired_changed"
	case *models.LRPEvent_DesiredLrpRemoved:
		return "desired_removed"
	case *models.LRPEvent_ActualLrpInstanceCreated:
		return "instance_created"
	case *models.LRPEvent_ActualLrpInstanceChanged:
		return "instance_changed"
	case *models.LRPEvent_ActualLrpInstanceRemoved:
		return "instance_removed"
	case *models.LRPEvent_ActualLrpCrashed:
		return "crashed"
	}
	return "unknown"
}

type want struct {
	rev  int64
	seq  uint32
	kind string
}

func checkLRPEvents(t *testing.T, got []*models.LRPEvent, wants []want) {
	t.Helper()
	if len(got) != len(wants) {
		for _, e := range got {
			t.Logf("got %d/%d %s", e.GetPosition().GetRevision(), e.GetPosition().GetSeq(), kind(e))
		}
		t.Fatalf("got %d events, want %d", len(got), len(wants))
	}
	for i, w := range wants {
		g := want{got[i].GetPosition().GetRevision(), got[i].GetPosition().GetSeq(), kind(got[i])}
		if g != w {
			t.Errorf("event %d = %+v, want %+v", i, g, w)
		}
	}
}

func TestLRPStreamOrderAndPositions(t *testing.T) { forEachPath(t, testLRPStreamOrderAndPositions) }

func testLRPStreamOrderAndPositions(t *testing.T, p servePath) {
	src, cli := newSource(t, p)
	k := src.Keys
	start := currentRevision(t, cli)
	c := collect(t, func(ctx context.Context, send func(*models.LRPEvent) error) error {
		return src.LRPEvents(ctx, &models.SubscribeLRPEventsRequest{After: afterList(start)}, send)
	})

	a0, a1 := k.ActualLRP("web", 0, models.ActualLRP_ORDINARY), k.ActualLRP("web", 1, models.ActualLRP_ORDINARY)
	r1 := put(t, cli, k.SchedulingInfo("web"), schedInfo("web", 1))
	r2 := put(t, cli, a0, actual("web", 0, models.ActualLRP_UNCLAIMED, "", 0))
	r3 := txn(t, cli, // one revision, three events, in op order
		putOp(t, a0, actual("web", 0, models.ActualLRP_CLAIMED, "cell-a", 0)),
		putOp(t, a1, actual("web", 1, models.ActualLRP_UNCLAIMED, "", 0)),
		putOp(t, k.SchedulingInfo("web"), schedInfo("web", 2)),
	)
	put(t, cli, k.RunInfo("web"), &models.DesiredLRPRunInfo{}) // outside the prefix: no event
	r4 := put(t, cli, a0, actual("web", 0, models.ActualLRP_RUNNING, "cell-a", 0))
	r5 := put(t, cli, a0, actual("web", 0, models.ActualLRP_UNCLAIMED, "", 1))
	r6 := txn(t, cli, clientv3.OpDelete(a1), clientv3.OpDelete(k.SchedulingInfo("web")))

	checkLRPEvents(t, c.waitFor(t, 11), []want{
		{r1, 0, "desired_created"},
		{r2, 0, "instance_created"},
		{r3, 0, "instance_changed"},
		{r3, 1, "instance_created"},
		{r3, 2, "desired_changed"},
		{r4, 0, "instance_changed"},
		{r5, 0, "crashed"},
		{r5, 1, "instance_removed"},
		{r5, 2, "instance_created"},
		{r6, 0, "instance_removed"},
		{r6, 1, "desired_removed"},
	})
	got := c.snapshot()
	if ck := got[6].GetActualLrpCrashed(); ck.GetActualLrpInstanceKey().GetCellId() != "cell-a" || ck.GetCrashCount() != 1 {
		t.Errorf("crashed event = %v, want instance on cell-a and count 1", ck)
	}
	if d := got[4].GetDesiredLrpChanged(); d.GetBefore().GetInstances() != 1 || d.GetAfter().GetInstances() != 2 {
		t.Errorf("desired changed = %v, want instances 1 -> 2", d)
	}
	checkServedByHub(t, src, p)
}

func TestLRPStreamResumesMidRevision(t *testing.T) { forEachPath(t, testLRPStreamResumesMidRevision) }

func testLRPStreamResumesMidRevision(t *testing.T, p servePath) {
	src, cli := newSource(t, p)
	k := src.Keys
	start := currentRevision(t, cli)
	var ops []clientv3.Op
	for i := range int32(4) {
		ops = append(ops, putOp(t, k.ActualLRP("web", i, 0), actual("web", i, models.ActualLRP_UNCLAIMED, "", 0)))
	}
	r1 := txn(t, cli, ops...)
	r2 := put(t, cli, k.SchedulingInfo("web"), schedInfo("web", 4))

	tests := []struct {
		after *models.EventPosition
		want  []want
	}{
		{afterList(start), []want{{r1, 0, "instance_created"}, {r1, 1, "instance_created"}, {r1, 2, "instance_created"}, {r1, 3, "instance_created"}, {r2, 0, "desired_created"}}},
		{&models.EventPosition{Revision: r1, Seq: 1}, []want{{r1, 2, "instance_created"}, {r1, 3, "instance_created"}, {r2, 0, "desired_created"}}},
		{&models.EventPosition{Revision: r1, Seq: 3}, []want{{r2, 0, "desired_created"}}},
		{afterList(r1), []want{{r2, 0, "desired_created"}}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("after_%d_%d", tt.after.GetRevision(), tt.after.GetSeq()), func(t *testing.T) {
			c := collect(t, func(ctx context.Context, send func(*models.LRPEvent) error) error {
				return src.LRPEvents(ctx, &models.SubscribeLRPEventsRequest{After: tt.after}, send)
			})
			checkLRPEvents(t, c.waitFor(t, len(tt.want)), tt.want)
		})
	}
	checkServedByHub(t, src, p)
}

func TestLRPStreamWithoutPositionStartsNow(t *testing.T) {
	forEachPath(t, testLRPStreamWithoutPositionStartsNow)
}

func testLRPStreamWithoutPositionStartsNow(t *testing.T, p servePath) {
	src, cli := newSource(t, p)
	k := src.Keys
	put(t, cli, k.SchedulingInfo("old"), schedInfo("old", 1))
	c := collect(t, func(ctx context.Context, send func(*models.LRPEvent) error) error {
		return src.LRPEvents(ctx, &models.SubscribeLRPEventsRequest{}, send)
	})
	// The watch starts at whatever revision is current when etcd registers
	// it, which the test cannot see: keep writing until one write lands.
	i := 0
	eventually(t, 10*time.Second, func() bool {
		i++
		put(t, cli, k.SchedulingInfo(fmt.Sprintf("new-%d", i)), schedInfo("new", 1))
		return len(c.snapshot()) > 0
	}, "no event for new writes")
	for _, e := range c.snapshot() {
		if guid := e.GetDesiredLrpCreated().GetDesiredLrp().GetDesiredLrpKey().GetProcessGuid(); guid != "new" {
			t.Errorf("got event for %q written before the subscription", guid)
		}
	}
	checkServedByHub(t, src, p)
}

func TestLRPStreamCellFilter(t *testing.T) { forEachPath(t, testLRPStreamCellFilter) }

func testLRPStreamCellFilter(t *testing.T, p servePath) {
	src, cli := newSource(t, p)
	k := src.Keys
	start := currentRevision(t, cli)
	sub := func(after *models.EventPosition) *collector[*models.LRPEvent] {
		return collect(t, func(ctx context.Context, send func(*models.LRPEvent) error) error {
			return src.LRPEvents(ctx, &models.SubscribeLRPEventsRequest{CellId: "cell-a", After: after}, send)
		})
	}
	c := sub(afterList(start))

	a := func(i int32) string { return k.ActualLRP("web", i, models.ActualLRP_ORDINARY) }
	r1 := txn(t, cli,
		putOp(t, a(0), actual("web", 0, models.ActualLRP_RUNNING, "cell-a", 0)),
		putOp(t, a(1), actual("web", 1, models.ActualLRP_RUNNING, "cell-b", 0)),
		putOp(t, a(2), actual("web", 2, models.ActualLRP_RUNNING, "cell-a", 0)),
		putOp(t, k.SchedulingInfo("web"), schedInfo("web", 3)),
	)
	put(t, cli, a(1), actual("web", 1, models.ActualLRP_UNCLAIMED, "", 0)) // cell-b only: nothing
	// Leaving cell-a: the removal of the cell-a instance passes, the
	// creation of the empty slot does not.
	r3 := put(t, cli, a(2), actual("web", 2, models.ActualLRP_UNCLAIMED, "", 0))
	r4 := put(t, cli, a(1), actual("web", 1, models.ActualLRP_CLAIMED, "cell-a", 0)) // arriving on cell-a

	// Seqs count the kept events only, so they stay dense.
	checkLRPEvents(t, c.waitFor(t, 5), []want{
		{r1, 0, "instance_created"},
		{r1, 1, "instance_created"},
		{r1, 2, "desired_created"},
		{r3, 0, "instance_removed"},
		{r4, 0, "instance_changed"},
	})
	// A filtered client resumes by its own (filtered) positions.
	checkLRPEvents(t, sub(&models.EventPosition{Revision: r1, Seq: 1}).waitFor(t, 3), []want{
		{r1, 2, "desired_created"},
		{r3, 0, "instance_removed"},
		{r4, 0, "instance_changed"},
	})
	checkServedByHub(t, src, p)
}

func TestTaskStream(t *testing.T) { forEachPath(t, testTaskStream) }

func testTaskStream(t *testing.T, p servePath) {
	src, cli := newSource(t, p)
	k := src.Keys
	start := currentRevision(t, cli)
	c := collect(t, func(ctx context.Context, send func(*models.TaskEvent) error) error {
		return src.TaskEvents(ctx, &models.SubscribeTaskEventsRequest{After: afterList(start)}, send)
	})
	r1 := put(t, cli, k.Task("t1"), &models.Task{TaskGuid: "t1", State: models.Task_PENDING})
	put(t, cli, k.SchedulingInfo("web"), schedInfo("web", 1)) // other prefix: nothing
	r2 := txn(t, cli,
		putOp(t, k.Task("t1"), &models.Task{TaskGuid: "t1", State: models.Task_RUNNING, CellId: "cell-a"}),
		putOp(t, k.Task("t2"), &models.Task{TaskGuid: "t2", State: models.Task_PENDING}),
	)
	r3 := txn(t, cli, clientv3.OpDelete(k.Task("t1")))

	type tw struct {
		rev  int64
		seq  uint32
		kind string
		guid string
	}
	check := func(got []*models.TaskEvent, wants []tw) {
		t.Helper()
		if len(got) != len(wants) {
			t.Fatalf("got %d events, want %d: %v", len(got), len(wants), got)
		}
		for i, w := range wants {
			var g tw
			g.rev, g.seq = got[i].GetPosition().GetRevision(), got[i].GetPosition().GetSeq()
			switch ev := got[i].GetEvent().(type) {
			case *models.TaskEvent_TaskCreated:
				g.kind, g.guid = "created", ev.TaskCreated.GetTask().GetTaskGuid()
			case *models.TaskEvent_TaskChanged:
				g.kind, g.guid = "changed", ev.TaskChanged.GetAfter().GetTaskGuid()
			case *models.TaskEvent_TaskRemoved:
				g.kind, g.guid = "removed", ev.TaskRemoved.GetTask().GetTaskGuid()
			}
			if g != w {
				t.Errorf("event %d = %+v, want %+v", i, g, w)
			}
		}
	}
	check(c.waitFor(t, 4), []tw{
		{r1, 0, "created", "t1"},
		{r2, 0, "changed", "t1"},
		{r2, 1, "created", "t2"},
		{r3, 0, "removed", "t1"},
	})
	resumed := collect(t, func(ctx context.Context, send func(*models.TaskEvent) error) error {
		return src.TaskEvents(ctx, &models.SubscribeTaskEventsRequest{After: &models.EventPosition{Revision: r2, Seq: 0}}, send)
	})
	check(resumed.waitFor(t, 2), []tw{{r2, 1, "created", "t2"}, {r3, 0, "removed", "t1"}})
	checkServedByHub(t, src, p)
}

func TestStreamCompacted(t *testing.T) { forEachPath(t, testStreamCompacted) }

func testStreamCompacted(t *testing.T, p servePath) {
	_, cli := etcdembed.StartForTestOpts(t, etcdembed.Options{NoFsync: true})
	k := db.NewKeys("/events-test")
	early := put(t, cli, k.Task("t"), &models.Task{TaskGuid: "t"})
	put(t, cli, k.SchedulingInfo("web"), schedInfo("web", 1))
	for i := range 3 {
		put(t, cli, k.Task("t"), &models.Task{TaskGuid: "t", RejectionCount: int32(i)})
	}
	compactAt := currentRevision(t, cli)
	if _, err := cli.Compact(context.Background(), compactAt, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	// Hubs started now begin after the compaction: the positions are
	// theirs to refuse too. (A hub started earlier would still hold the
	// events and serve them; see TestHubOutlivesCompaction.)
	src := sourceOn(t, cli, p)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for name, run := range map[string]func() error{
		"lrp": func() error {
			return src.LRPEvents(ctx, &models.SubscribeLRPEventsRequest{After: &models.EventPosition{Revision: early}}, func(*models.LRPEvent) error { return nil })
		},
		"task": func() error {
			return src.TaskEvents(ctx, &models.SubscribeTaskEventsRequest{After: &models.EventPosition{Revision: early}}, func(*models.TaskEvent) error { return nil })
		},
	} {
		t.Run(name, func(t *testing.T) {
			err := run()
			if !errors.Is(err, models.ErrCompacted) {
				t.Fatalf("err = %v, want a Compacted error", err)
			}
			if want := fmt.Sprintf("revision %d has been compacted (oldest available is %d)", early, compactAt); !strings.Contains(err.Error(), want) {
				t.Errorf("err = %q, want it to contain %q", err, want)
			}
		})
	}
	if p != viaPrivate && src.stats.uncovered.Load() != 2 {
		t.Errorf("%d resumes from before the hubs' start went to private watches, want 2", src.stats.uncovered.Load())
	}
}

// TestStreamPreviousValueCompacted: a change whose previous value was
// compacted away ends the stream with a Compacted error (the client lists
// again), not with a decoding failure. etcd sends such a change without its
// previous value.
func TestStreamPreviousValueCompacted(t *testing.T) { forEachPath(t, testStreamPreviousValueCompacted) }

func testStreamPreviousValueCompacted(t *testing.T, p servePath) {
	_, cli := etcdembed.StartForTestOpts(t, etcdembed.Options{NoFsync: true})
	k := db.NewKeys("/events-test")
	put(t, cli, k.Task("a"), &models.Task{TaskGuid: "a"})
	put(t, cli, k.Task("b"), &models.Task{TaskGuid: "b"})
	both := txn(t, cli, putOp(t, k.Task("a"), &models.Task{TaskGuid: "a", RejectionCount: 1}),
		putOp(t, k.Task("b"), &models.Task{TaskGuid: "b", RejectionCount: 1}))
	if _, err := cli.Compact(context.Background(), both, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	src := sourceOn(t, cli, p)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// From inside the transaction: its revision is kept, the values
	// before it are compacted.
	err := src.TaskEvents(ctx, &models.SubscribeTaskEventsRequest{After: &models.EventPosition{Revision: both, Seq: 0}},
		func(e *models.TaskEvent) error { return fmt.Errorf("unexpected event %v", e) })
	if !errors.Is(err, models.ErrCompacted) || !strings.Contains(err.Error(), fmt.Sprintf("before revision %d has been compacted", both)) {
		t.Fatalf("err = %v, want a Compacted error naming revision %d", err, both)
	}
}

// TestCompletingReadsTheMissingPreviousValue: a change that came without
// its previous value gets it from etcd before it is derived.
func TestCompletingReadsTheMissingPreviousValue(t *testing.T) {
	_, cli := etcdembed.StartForTestOpts(t, etcdembed.Options{NoFsync: true})
	key := db.NewKeys("/events-test").Task("a")
	created := put(t, cli, key, &models.Task{TaskGuid: "a"})
	changed := put(t, cli, key, &models.Task{TaskGuid: "a", RejectionCount: 1})
	ev := &clientv3.Event{Type: clientv3.EventTypePut, Kv: &mvccpb.KeyValue{
		Key: []byte(key), CreateRevision: created, ModRevision: changed,
		Value: mustMarshal(t, &models.Task{TaskGuid: "a", RejectionCount: 1}),
	}}
	derive := completing(context.Background(), cli, func(ev *clientv3.Event) ([]*models.Task, error) {
		before, after, err := decodePair(key, ev, func() *models.Task { return &models.Task{} })
		return []*models.Task{before, after}, err
	})
	got, err := derive(ev)
	if err != nil {
		t.Fatal(err)
	}
	if got[0].GetRejectionCount() != 0 || got[1].GetRejectionCount() != 1 {
		t.Fatalf("before %v, after %v", got[0], got[1])
	}
}

func TestStreamEndsWhenEtcdGoesAway(t *testing.T) { forEachPath(t, testStreamEndsWhenEtcdGoesAway) }

func testStreamEndsWhenEtcdGoesAway(t *testing.T, p servePath) {
	srv, cli := etcdembed.StartForTestOpts(t, etcdembed.Options{NoFsync: true})
	own, err := clientv3.New(clientv3.Config{Endpoints: srv.Endpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	src := sourceOn(t, own, p)
	start := currentRevision(t, cli)
	c := collect(t, func(ctx context.Context, send func(*models.TaskEvent) error) error {
		return src.TaskEvents(ctx, &models.SubscribeTaskEventsRequest{After: afterList(start)}, send)
	})
	put(t, cli, src.Keys.Task("t"), &models.Task{TaskGuid: "t"})
	c.waitFor(t, 1)
	own.Close()

	select {
	case err := <-c.done:
		c.done <- err // for the cleanup
		if !errors.Is(err, models.ErrUnavailable) {
			t.Fatalf("err = %v, want Unavailable so the client resumes elsewhere", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("stream still open after its etcd client closed")
	}
}

func TestStreamReturnsSendError(t *testing.T) { forEachPath(t, testStreamReturnsSendError) }

func testStreamReturnsSendError(t *testing.T, p servePath) {
	src, cli := newSource(t, p)
	start := currentRevision(t, cli)
	put(t, cli, src.Keys.Task("t"), &models.Task{TaskGuid: "t"})
	errGone := errors.New("client gone")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := src.TaskEvents(ctx, &models.SubscribeTaskEventsRequest{After: afterList(start)}, func(*models.TaskEvent) error { return errGone })
	if err != errGone {
		t.Fatalf("err = %v, want the send error as is", err)
	}
}

func TestStreamContextDone(t *testing.T) { forEachPath(t, testStreamContextDone) }

func testStreamContextDone(t *testing.T, p servePath) {
	src, _ := newSource(t, p)
	ctx, cancel := context.WithCancel(context.Background())
	c := collect(t, func(_ context.Context, send func(*models.LRPEvent) error) error {
		return src.LRPEvents(ctx, &models.SubscribeLRPEventsRequest{}, send)
	})
	cancel()
	select {
	case err := <-c.done:
		c.done <- err
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("stream still open after its context was cancelled")
	}
}

// BenchmarkFanOut measures delivery to 10 concurrent subscribers, from one
// hub or each on its own etcd watch, while one writer commits 100-key
// transactions (one op is one transaction). events/s/sub is the rate each
// subscriber receives events at.
func BenchmarkFanOut(b *testing.B) {
	for _, p := range []servePath{viaHub, viaPrivate} {
		b.Run(p.String(), func(b *testing.B) { benchmarkFanOut(b, p) })
	}
}

func benchmarkFanOut(b *testing.B, p servePath) {
	const (
		subscribers = 10
		keysPerTxn  = 100
	)
	// Fsync on, as in production: the writer's commit rate is part of
	// what a subscriber can be fed.
	_, cli := etcdembed.StartForTest(b)
	src := &Source{Client: cli, Keys: db.NewKeys("/events-bench"), Logger: discardLogger, noHub: p == viaPrivate}
	defer src.Close()
	start := currentRevision(b, cli)

	var received [subscribers]atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	errs := make(chan error, subscribers)
	for i := range subscribers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := src.LRPEvents(ctx, &models.SubscribeLRPEventsRequest{After: afterList(start)}, func(*models.LRPEvent) error {
				received[i].Add(1)
				return nil
			})
			if ctx.Err() == nil {
				errs <- err
			}
		}()
	}
	defer func() { cancel(); wg.Wait() }()
	if p == viaHub {
		// A hub that started after the first write would send every
		// subscriber to a private watch.
		eventually(b, 10*time.Second, func() bool { return src.stats.served.Load() == subscribers }, "subscribers did not start on the hub")
	}

	values := make([]string, keysPerTxn)
	keys := make([]string, keysPerTxn)
	for i := range keysPerTxn {
		keys[i] = src.Keys.ActualLRP("bench", int32(i), models.ActualLRP_ORDINARY)
	}
	ops := make([]clientv3.Op, keysPerTxn)

	b.ResetTimer()
	began := time.Now()
	for n := 0; n < b.N; n++ {
		for i := range keysPerTxn {
			// A changing crash-free RUNNING row: every event after the
			// first transaction is an instance change with a before.
			l := actual("bench", int32(i), models.ActualLRP_RUNNING, "cell-a", 0)
			l.Since = int64(n)
			values[i] = string(mustMarshal(b, l))
			ops[i] = clientv3.OpPut(keys[i], values[i])
		}
		if _, err := cli.Txn(context.Background()).Then(ops...).Commit(); err != nil {
			b.Fatal(err)
		}
	}
	want := int64(b.N) * keysPerTxn
	eventuallyDescribe(b, 5*time.Minute, func() bool {
		select {
		case err := <-errs:
			b.Fatalf("subscriber: %v", err)
		default:
		}
		for i := range received {
			if received[i].Load() < want {
				return false
			}
		}
		return true
	}, func() string { return fmt.Sprintf("subscribers did not receive %d events each", want) })
	elapsed := time.Since(began)
	b.StopTimer()
	b.ReportMetric(float64(want)/elapsed.Seconds(), "events/s/sub")
}
