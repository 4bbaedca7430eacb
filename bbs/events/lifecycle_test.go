package events

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/gavel-scheduler/gavel/bbs/db"
	"github.com/gavel-scheduler/gavel/internal/etcdembed"
	"github.com/gavel-scheduler/gavel/proto/models"
)

// TestHubWatchFailure: when the hub's etcd client closes, every stream on
// the hub ends Unavailable, so clients resume elsewhere.
func TestHubWatchFailure(t *testing.T) {
	srv, cli := etcdembed.StartForTestOpts(t, etcdembed.Options{NoFsync: true})
	own, err := clientv3.New(clientv3.Config{Endpoints: srv.Endpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	src := sourceOn(t, own, viaHub)
	start := currentRevision(t, cli)
	lrps := []*collector[*models.LRPEvent]{
		lrpStream(t, src, &models.SubscribeLRPEventsRequest{After: afterList(start)}),
		lrpStream(t, src, &models.SubscribeLRPEventsRequest{After: afterList(start), CellId: "cell-a"}),
		lrpStream(t, src, &models.SubscribeLRPEventsRequest{}),
	}
	task := taskStream(t, src, &models.SubscribeTaskEventsRequest{After: afterList(start)})
	put(t, cli, src.Keys.ActualLRP("web", 0, 0), actual("web", 0, models.ActualLRP_RUNNING, "cell-a", 0))
	put(t, cli, src.Keys.Task("t"), &models.Task{TaskGuid: "t"})
	lrps[0].waitFor(t, 1)
	lrps[1].waitFor(t, 1)
	task.waitFor(t, 1)
	own.Close()

	for i, c := range lrps {
		if err := doneErr(t, c, 10*time.Second); !errors.Is(err, models.ErrUnavailable) {
			t.Errorf("lrp stream %d: err = %v, want Unavailable", i, err)
		}
	}
	if err := doneErr(t, task, 10*time.Second); !errors.Is(err, models.ErrUnavailable) {
		t.Errorf("task stream: err = %v, want Unavailable", err)
	}
	if n := src.stats.uncovered.Load() + src.stats.lagged.Load(); n > 0 {
		t.Errorf("%d streams were on private watches; this case is about the hub", n)
	}
}

// TestHubRestartsAfterFailure: once a hub's watch has ended, its
// subscribers get Unavailable and the next subscriber starts a new hub at a
// fresh revision.
func TestHubRestartsAfterFailure(t *testing.T) {
	src, cli := newSource(t, viaHub)
	start := currentRevision(t, cli)
	r1 := put(t, cli, src.Keys.SchedulingInfo("a"), schedInfo("a", 1))
	before := lrpStream(t, src, &models.SubscribeLRPEventsRequest{After: afterList(start)})
	before.waitFor(t, 1)

	src.mu.Lock()
	first := src.lrp
	src.mu.Unlock()
	first.cancel() // what a failing watch amounts to: the hub's loop ends
	if err := doneErr(t, before, 10*time.Second); !errors.Is(err, models.ErrUnavailable) {
		t.Fatalf("err = %v, want Unavailable", err)
	}

	r2 := put(t, cli, src.Keys.SchedulingInfo("b"), schedInfo("b", 1))
	resumed := lrpStream(t, src, &models.SubscribeLRPEventsRequest{After: &models.EventPosition{Revision: r1}})
	checkLRPEvents(t, resumed.waitFor(t, 1), []want{{r2, 0, "desired_created"}})
	src.mu.Lock()
	second := src.lrp
	src.mu.Unlock()
	if second == nil || second == first {
		t.Fatal("no new hub after the first ended")
	}
	if h, _ := hubStart(src, &src.lrp); h < r2 {
		t.Errorf("new hub started after %d, want a fresh revision (>= %d)", h, r2)
	}
	r3 := put(t, cli, src.Keys.SchedulingInfo("c"), schedInfo("c", 1))
	checkLRPEvents(t, resumed.waitFor(t, 2), []want{{r2, 0, "desired_created"}, {r3, 0, "desired_created"}})
}

// settledGoroutines polls until the goroutine count is at most want.
func settledGoroutines(tb testing.TB, want int) {
	tb.Helper()
	eventuallyDescribe(tb, 10*time.Second, func() bool { return runtime.NumGoroutine() <= want }, func() string {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		return fmt.Sprintf("%d goroutines, want at most %d:\n%s", runtime.NumGoroutine(), want, buf)
	})
}

// TestSourceClose: Close ends hub streams with Unavailable, refuses new
// streams, and leaves no goroutine behind.
func TestSourceClose(t *testing.T) {
	_, cli := etcdembed.StartForTestOpts(t, etcdembed.Options{NoFsync: true})
	currentRevision(t, cli) // the client's connection is up before counting
	base := runtime.NumGoroutine()

	src := &Source{Client: cli, Keys: db.NewKeys("/events-test"), Logger: discardLogger}
	start := currentRevision(t, cli)
	const n = 6
	var (
		streams  sync.WaitGroup
		received [n]atomic.Int64
	)
	errs := make(chan error, n)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i := range n {
		streams.Add(1)
		go func() {
			defer streams.Done()
			after := afterList(start)
			if i%2 == 0 {
				errs <- src.LRPEvents(ctx, &models.SubscribeLRPEventsRequest{After: after, CellId: fmt.Sprint(i)}, func(*models.LRPEvent) error {
					received[i].Add(1)
					return nil
				})
			} else {
				errs <- src.TaskEvents(ctx, &models.SubscribeTaskEventsRequest{After: after}, func(*models.TaskEvent) error {
					received[i].Add(1)
					return nil
				})
			}
		}()
	}
	eventually(t, 10*time.Second, func() bool { return src.stats.served.Load() == n }, "streams did not all start on the hubs")
	put(t, cli, src.Keys.Task("t"), &models.Task{TaskGuid: "t"})
	put(t, cli, src.Keys.SchedulingInfo("web"), schedInfo("web", 1)) // passes every cell filter
	// Events delivered mean the hubs' watches are fully set up: cancelling
	// a watch etcd has not yet confirmed leaves the etcd client's stream
	// goroutine running until the next watch on it ends, which would read
	// as a leak here.
	eventually(t, 10*time.Second, func() bool {
		for i := range received {
			if received[i].Load() == 0 {
				return false
			}
		}
		return true
	}, "streams did not all get their first event")

	src.Close()
	streams.Wait() // Close must end them: ctx stays live
	close(errs)
	for err := range errs {
		if !errors.Is(err, models.ErrUnavailable) {
			t.Errorf("stream ended with %v, want Unavailable", err)
		}
	}
	if err := src.LRPEvents(ctx, &models.SubscribeLRPEventsRequest{}, func(*models.LRPEvent) error { return nil }); !errors.Is(err, models.ErrUnavailable) {
		t.Errorf("stream on a closed Source: %v, want Unavailable", err)
	}
	src.Close() // again: harmless
	settledGoroutines(t, base)
}

// TestHubStopsWhenIdle: a hub with no subscribers for HubIdle stops and
// releases its watch; the next subscriber starts a new one.
func TestHubStopsWhenIdle(t *testing.T) {
	_, cli := etcdembed.StartForTestOpts(t, etcdembed.Options{NoFsync: true})
	currentRevision(t, cli)
	base := runtime.NumGoroutine()

	src := &Source{Client: cli, Keys: db.NewKeys("/events-test"), Logger: discardLogger, HubIdle: 10 * time.Millisecond}
	defer src.Close()
	for round := range 2 {
		ctx, cancel := context.WithCancel(context.Background())
		got := make(chan struct{}, 1)
		done := make(chan error, 1)
		go func() {
			done <- src.TaskEvents(ctx, &models.SubscribeTaskEventsRequest{}, func(*models.TaskEvent) error {
				select {
				case got <- struct{}{}:
				default:
				}
				return nil
			})
		}()
		eventually(t, 10*time.Second, func() bool { _, ok := hubStart(src, &src.task); return ok }, "round %d: hub did not start", round)
		// The stream read etcd's revision before the hub started, so this
		// write is after it. Delivered, it also shows the watch set up
		// (see TestSourceClose).
		put(t, cli, src.Keys.Task("t"), &models.Task{TaskGuid: "t", RejectionCount: int32(round)})
		select {
		case <-got:
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: no event", round)
		}
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("round %d: stream ended with %v", round, err)
		}
		eventually(t, 10*time.Second, func() bool {
			src.mu.Lock()
			defer src.mu.Unlock()
			return src.task == nil
		}, "round %d: idle hub still running", round)
		settledGoroutines(t, base)
	}
}
