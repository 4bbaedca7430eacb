package events

import (
	"context"
	"log/slog"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/gavel-scheduler/gavel/bbs/db"
	"github.com/gavel-scheduler/gavel/internal/etcdembed"
	"github.com/gavel-scheduler/gavel/proto/models"
)

// servePath is a way a Source serves streams; the stream tests run over
// each.
type servePath int

const (
	viaPrivate servePath = iota // every stream on its own watch
	viaHub                      // streams from a hub with the default ring
	viaTinyHub                  // a ring small enough that subscribers keep falling off it
)

func (p servePath) String() string {
	return [...]string{"private", "hub", "tiny_hub"}[p]
}

// tinyRing is the ring size of viaTinyHub: smaller than many of the tests'
// transactions, so eviction splits revisions.
const tinyRing = 16

// newSource starts a fresh etcd for one test and a Source on it serving by
// p. Fsync is off: these tests check behaviour, not write latency.
func newSource(tb testing.TB, p servePath) (*Source, *clientv3.Client) {
	tb.Helper()
	_, cli := etcdembed.StartForTestOpts(tb, etcdembed.Options{NoFsync: true})
	return sourceOn(tb, cli, p), cli
}

// sourceOn returns a Source over cli serving by p. On a hub path both hubs
// are started, and kept running by an idle subscriber until the test ends,
// before it returns, so a test's first write is already in their rings and
// resume positions taken from here on are theirs to serve.
func sourceOn(tb testing.TB, cli *clientv3.Client, p servePath) *Source {
	tb.Helper()
	src := &Source{Client: cli, Keys: db.NewKeys("/events-test"), Logger: discardLogger, noHub: p == viaPrivate}
	if p == viaTinyHub {
		src.RingSize = tinyRing
	}
	// Before warming: cleanups run last first, so the hubs' idle
	// subscribers leave before Close, and the etcd client closes after.
	tb.Cleanup(src.Close)
	if p != viaPrivate {
		warmHubs(tb, src)
	}
	return src
}

var discardLogger = slog.New(slog.DiscardHandler)

// warmHubs starts both hubs of src and waits until they know their start.
func warmHubs(tb testing.TB, src *Source) {
	tb.Helper()
	collect(tb, func(ctx context.Context, send func(*models.LRPEvent) error) error {
		return src.LRPEvents(ctx, &models.SubscribeLRPEventsRequest{}, func(*models.LRPEvent) error { return nil })
	})
	collect(tb, func(ctx context.Context, send func(*models.TaskEvent) error) error {
		return src.TaskEvents(ctx, &models.SubscribeTaskEventsRequest{}, func(*models.TaskEvent) error { return nil })
	})
	eventually(tb, 10*time.Second, func() bool {
		_, lrp := hubStart(src, &src.lrp)
		_, task := hubStart(src, &src.task)
		return lrp && task
	}, "hubs did not start")
}

// hubStart returns the revision the current hub in slot started after, and
// whether there is a running hub that knows it.
func hubStart[E any](src *Source, slot **hub[E]) (int64, bool) {
	src.mu.Lock()
	h := *slot
	src.mu.Unlock()
	if h == nil {
		return 0, false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.start, h.ready && h.err == nil
}

// forEachPath runs test once per way of serving.
func forEachPath(t *testing.T, test func(t *testing.T, p servePath)) {
	for _, p := range []servePath{viaPrivate, viaHub, viaTinyHub} {
		t.Run(p.String(), func(t *testing.T) { test(t, p) })
	}
}

// checkServedByHub fails unless every stream of a hub path was served from
// the ring from start to end: a case written to exercise the hub must not
// pass by quietly falling back to private watches.
func checkServedByHub(t *testing.T, src *Source, p servePath) {
	t.Helper()
	if p != viaHub {
		return
	}
	if n := src.stats.uncovered.Load(); n > 0 {
		t.Errorf("%d streams started on a private watch", n)
	}
	if n := src.stats.lagged.Load(); n > 0 {
		t.Errorf("%d streams fell off the ring", n)
	}
}
