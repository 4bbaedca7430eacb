package events

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"

	"github.com/gavel-scheduler/gavel/bbs/db"
	"github.com/gavel-scheduler/gavel/internal/etcdembed"
	"github.com/gavel-scheduler/gavel/proto/models"
)

// doneErr waits for a collector's stream to end and returns its error.
func doneErr[E proto.Message](tb testing.TB, c *collector[E], timeout time.Duration) error {
	tb.Helper()
	select {
	case err := <-c.done:
		c.done <- err // for the cleanup
		return err
	case <-time.After(timeout):
		tb.Fatalf("stream still open after %v", timeout)
		return nil
	}
}

func lrpStream(tb testing.TB, src *Source, req *models.SubscribeLRPEventsRequest) *collector[*models.LRPEvent] {
	return collect(tb, func(ctx context.Context, send func(*models.LRPEvent) error) error {
		return src.LRPEvents(ctx, req, send)
	})
}

func taskStream(tb testing.TB, src *Source, req *models.SubscribeTaskEventsRequest) *collector[*models.TaskEvent] {
	return collect(tb, func(ctx context.Context, send func(*models.TaskEvent) error) error {
		return src.TaskEvents(ctx, req, send)
	})
}

// TestHubManySubscribers: while writers write single keys and transactions,
// many subscribers share a hub: some follow from the start, some drop and
// resume at random points, some filtered to a cell, some join late with no
// position. Each must see exactly its part of an independent full-history
// watch. On the tiny ring the same happens while subscribers keep falling
// off the ring and resumes keep missing it.
func TestHubManySubscribers(t *testing.T) {
	for _, p := range []servePath{viaHub, viaTinyHub} {
		t.Run(p.String(), func(t *testing.T) {
			src, cli := newSource(t, p)
			start := currentRevision(t, cli)
			ref := startReference(t, cli, src.Keys, start)
			w := startWriters(t, src, cli, 4, 100)

			var followers []*collector[*models.LRPEvent]
			for range 3 {
				followers = append(followers, lrpStream(t, src, &models.SubscribeLRPEventsRequest{After: afterList(start)}))
			}
			cellFollower := lrpStream(t, src, &models.SubscribeLRPEventsRequest{After: afterList(start), CellId: "cell-1"})
			var resumers []*resumer
			for i := range 3 {
				resumers = append(resumers, startResumer(t, src, afterList(start), "", uint64(10+i)))
			}
			cellResumer := startResumer(t, src, afterList(start), "cell-2", 20)
			allResumers := append(append([]*resumer(nil), resumers...), cellResumer)

			type late struct {
				joinedAfter int64 // revision current before the subscribe call
				c           *collector[*models.LRPEvent]
			}
			var lates []late
			for _, n := range []int{100, 400, 900} {
				eventually(t, 30*time.Second, func() bool { _, events, _ := ref.state(); return events >= n }, "history never reached %d events", n)
				rev := currentRevision(t, cli)
				lates = append(lates, late{rev, lrpStream(t, src, &models.SubscribeLRPEventsRequest{})})
			}

			eventually(t, 60*time.Second, func() bool {
				for _, l := range lates {
					if len(l.c.snapshot()) == 0 {
						return false
					}
				}
				for _, r := range allResumers {
					_, n, _, err := r.state()
					if err != nil {
						return true
					}
					if n < 15 {
						return false
					}
				}
				return true
			}, "late subscribers got nothing or resumers did not reconnect enough while writers wrote")
			for _, r := range allResumers {
				r.settle.Store(true)
			}
			made := w.halt(t)

			full, cell1, cell2 := func() []refEvent { return ref.history("") }, func() []refEvent { return ref.history("cell-1") }, func() []refEvent { return ref.history("cell-2") }
			eventuallyDescribe(t, 60*time.Second, func() bool {
				changes, _, err := ref.state()
				if err != nil || changes < len(made) {
					return err != nil
				}
				n := len(full())
				for _, c := range followers {
					if len(c.snapshot()) < n {
						return false
					}
				}
				for _, r := range resumers {
					if got, _, _, err := r.state(); err == nil && got < n {
						return false
					}
				}
				got, _, _, err := cellResumer.state()
				return (err != nil || got >= len(cell2())) && len(cellFollower.snapshot()) >= len(cell1())
			}, func() string {
				changes, events, err := ref.state()
				return fmt.Sprintf("subscribers did not catch up: writes %d, reference changes %d events %d err %v", len(made), changes, events, err)
			})

			ref.checkChanges(t, made)
			for i, c := range followers {
				t.Run(fmt.Sprintf("follower_%d", i), func(t *testing.T) { checkHistory(t, src.Keys, c.snapshot(), full()) })
			}
			t.Run("cell_follower", func(t *testing.T) { checkHistory(t, src.Keys, cellFollower.snapshot(), cell1()) })
			for i, r := range resumers {
				t.Run(fmt.Sprintf("resumer_%d", i), func(t *testing.T) {
					if _, _, _, err := r.state(); err != nil {
						t.Fatal(err)
					}
					checkHistory(t, src.Keys, r.events(), full())
				})
			}
			t.Run("cell_resumer", func(t *testing.T) {
				if _, _, _, err := cellResumer.state(); err != nil {
					t.Fatal(err)
				}
				checkHistory(t, src.Keys, cellResumer.events(), cell2())
			})
			for i, l := range lates {
				t.Run(fmt.Sprintf("late_%d", i), func(t *testing.T) {
					got, hist := l.c.snapshot(), full()
					if len(got) == 0 {
						t.Fatal("no events")
					}
					first := got[0].GetPosition()
					if first.GetRevision() <= l.joinedAfter || first.GetSeq() != 0 {
						t.Fatalf("first event at %v, want the start of a revision after %d", first, l.joinedAfter)
					}
					i := 0
					for i < len(hist) && posLess(hist[i].pos, first) {
						i++
					}
					checkHistory(t, src.Keys, got, hist[i:])
				})
			}
			t.Logf("%d events; hub: %d served, %d uncovered, %d lagged",
				len(full()), src.stats.served.Load(), src.stats.uncovered.Load(), src.stats.lagged.Load())
			checkServedByHub(t, src, p)
		})
	}
}

// TestHubResumeFromBeforeItsStart: a position older than the ring falls
// back to a private watch and still gets exactly the rest, mid-revision
// included; a position at the hub's start is the ring's.
func TestHubResumeFromBeforeItsStart(t *testing.T) {
	_, cli := etcdembed.StartForTestOpts(t, etcdembed.Options{NoFsync: true})
	k := db.NewKeys("/events-test")
	var ops []clientv3.Op
	for i := range int32(5) {
		ops = append(ops, putOp(t, k.ActualLRP("web", i, 0), actual("web", i, models.ActualLRP_UNCLAIMED, "", 0)))
	}
	r1 := txn(t, cli, ops...)
	r2 := put(t, cli, k.SchedulingInfo("web"), schedInfo("web", 5))

	src := sourceOn(t, cli, viaHub) // starts after r2
	if h, _ := hubStart(src, &src.lrp); h != r2 {
		t.Fatalf("hub started after %d, want %d", h, r2)
	}
	ops = ops[:0]
	for i := range int32(3) {
		ops = append(ops, putOp(t, k.ActualLRP("web", i, 0), actual("web", i, models.ActualLRP_CLAIMED, "cell-a", 0)))
	}
	r3 := txn(t, cli, ops...)

	old := lrpStream(t, src, &models.SubscribeLRPEventsRequest{After: &models.EventPosition{Revision: r1, Seq: 2}})
	checkLRPEvents(t, old.waitFor(t, 6), []want{
		{r1, 3, "instance_created"}, {r1, 4, "instance_created"}, {r2, 0, "desired_created"},
		{r3, 0, "instance_changed"}, {r3, 1, "instance_changed"}, {r3, 2, "instance_changed"},
	})
	if n := src.stats.uncovered.Load(); n != 1 {
		t.Errorf("uncovered = %d, want 1", n)
	}
	atStart := lrpStream(t, src, &models.SubscribeLRPEventsRequest{After: afterList(r2)})
	checkLRPEvents(t, atStart.waitFor(t, 3), []want{{r3, 0, "instance_changed"}, {r3, 1, "instance_changed"}, {r3, 2, "instance_changed"}})
	if n := src.stats.uncovered.Load(); n != 1 {
		t.Errorf("uncovered = %d, want still 1: the hub's start is covered", n)
	}
}

// lockedBuffer collects log output written from several goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestHubSlowSubscriber: subscribers whose sends block while the tiny ring
// turns over many times switch to private watches, in the middle of a
// revision, and lose or repeat nothing. The switch is logged: it means the
// ring is too small for the event rate, or a client too slow.
func TestHubSlowSubscriber(t *testing.T) {
	_, cli := etcdembed.StartForTestOpts(t, etcdembed.Options{NoFsync: true})
	var logs lockedBuffer
	src := &Source{Client: cli, Keys: db.NewKeys("/events-test"), Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		RingSize: tinyRing, batch: 3}
	t.Cleanup(src.Close)
	start := currentRevision(t, cli)
	ref := startReference(t, cli, src.Keys, start)
	gate := make(chan struct{})
	slow := func(cellID string) *collector[*models.LRPEvent] {
		return collect(t, func(ctx context.Context, send func(*models.LRPEvent) error) error {
			return src.LRPEvents(ctx, &models.SubscribeLRPEventsRequest{After: afterList(start), CellId: cellID}, func(e *models.LRPEvent) error {
				if err := send(e); err != nil {
					return err
				}
				select { // the first send blocks until the gate opens
				case <-gate:
				case <-ctx.Done():
				}
				return nil
			})
		})
	}
	all, onCell := slow(""), slow("cell-a")
	// They alone are on the hub (no warm-up here, so no other subscriber
	// can fall behind too); it must have started before the writes.
	eventually(t, 10*time.Second, func() bool { return src.stats.served.Load() == 2 }, "slow subscribers did not start on the hub")

	// Ten transactions of five, every other instance on cell-a.
	var last int64
	for n := range 10 {
		guid := fmt.Sprintf("p%d", n)
		var ops []clientv3.Op
		for i := range int32(5) {
			cell := "cell-b"
			if i%2 == 0 {
				cell = "cell-a"
			}
			ops = append(ops, putOp(t, src.Keys.ActualLRP(guid, i, 0), actual(guid, i, models.ActualLRP_RUNNING, cell, 0)))
		}
		last = txn(t, cli, ops...)
		if n == 0 {
			// Both have copied their first batch (and block sending
			// it) before the ring turns over: on a loaded machine they
			// could otherwise fall behind before copying anything.
			all.waitFor(t, 1)
			onCell.waitFor(t, 1)
		}
	}
	// Let them go once the ring has turned over past both.
	eventually(t, 10*time.Second, func() bool {
		src.mu.Lock()
		h := src.lrp
		src.mu.Unlock()
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.tail > 0 && h.at(h.tail-1).rev == last
	}, "hub did not receive the writes")
	close(gate)

	checkHistory(t, src.Keys, all.waitFor(t, 50), ref.history(""))
	checkHistory(t, src.Keys, onCell.waitFor(t, 30), ref.history("cell-a"))
	if n := src.stats.lagged.Load(); n != 2 {
		t.Errorf("lagged = %d, want both slow subscribers", n)
	}
	// Each copied 3 entries of the first transaction: the unfiltered one
	// sent seqs 0-2, the cell-a one (instances 0 and 2) seqs 0-1.
	for _, want := range []string{
		fmt.Sprintf("after_revision=%d after_seq=2", start+1),
		fmt.Sprintf("after_revision=%d after_seq=1", start+1),
	} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("no lagging subscriber logged with %s in:\n%s", want, logs.String())
		}
	}
}

// TestHubCellFilterMatchesPrivate: cell-filtered streams from a hub (large
// and tiny ring) and from private watches number the same events the same
// way.
func TestHubCellFilterMatchesPrivate(t *testing.T) {
	_, cli := etcdembed.StartForTestOpts(t, etcdembed.Options{NoFsync: true})
	srcs := map[servePath]*Source{}
	for _, p := range []servePath{viaPrivate, viaHub, viaTinyHub} {
		srcs[p] = sourceOn(t, cli, p)
	}
	keys := srcs[viaHub].Keys
	start := currentRevision(t, cli)
	ref := startReference(t, cli, keys, start)
	type stream struct {
		p    servePath
		cell string
		c    *collector[*models.LRPEvent]
	}
	var streams []stream
	for p, src := range srcs {
		for _, cell := range []string{"cell-0", "cell-1"} {
			streams = append(streams, stream{p, cell, lrpStream(t, src, &models.SubscribeLRPEventsRequest{After: afterList(start), CellId: cell})})
		}
	}
	w := startWriters(t, srcs[viaHub], cli, 3, 200)
	eventually(t, 30*time.Second, func() bool { _, n, _ := ref.state(); return n >= 2000 }, "writers wrote too little")
	made := w.halt(t)
	eventually(t, 30*time.Second, func() bool { n, _, _ := ref.state(); return n >= len(made) }, "reference did not catch up")
	ref.checkChanges(t, made)
	for _, s := range streams {
		t.Run(fmt.Sprintf("%s_%s", s.p, s.cell), func(t *testing.T) {
			want := ref.history(s.cell)
			checkHistory(t, keys, s.c.waitFor(t, len(want)), want)
		})
	}
	checkServedByHub(t, srcs[viaHub], viaHub)
}

// TestHubOutlivesCompaction: a hub serves positions its ring covers even
// after etcd compacted past them; only positions it cannot serve are
// refused as compacted.
func TestHubOutlivesCompaction(t *testing.T) {
	src, cli := newSource(t, viaHub)
	start := currentRevision(t, cli)
	r1 := put(t, cli, src.Keys.SchedulingInfo("a"), schedInfo("a", 1))
	r2 := put(t, cli, src.Keys.SchedulingInfo("b"), schedInfo("b", 1))
	warm := lrpStream(t, src, &models.SubscribeLRPEventsRequest{After: afterList(start)})
	warm.waitFor(t, 2) // the ring has both
	if _, err := cli.Compact(context.Background(), r2, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	c := lrpStream(t, src, &models.SubscribeLRPEventsRequest{After: &models.EventPosition{Revision: r1}})
	checkLRPEvents(t, c.waitFor(t, 1), []want{{r2, 0, "desired_created"}})
	checkServedByHub(t, src, viaHub)
}
