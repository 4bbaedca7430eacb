package events

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"

	"github.com/gavel-scheduler/gavel/bbs/db"
	"github.com/gavel-scheduler/gavel/proto/models"
)

// keyRev is one stored change: a key and the revision that changed it.
type keyRev struct {
	key string
	rev int64
}

// lrpWriter mutates its own process guids, so it knows the stored value of
// every key it writes without reading it back, and logs every change.
type lrpWriter struct {
	keys  db.Keys
	cli   *clientv3.Client
	rng   *rand.Rand
	name  string
	state map[string]proto.Message // key -> stored value; absent when deleted
	log   []keyRev
}

func (w *lrpWriter) allKeys() []string {
	var ks []string
	for p := range 5 {
		guid := fmt.Sprintf("%s-p%d", w.name, p)
		ks = append(ks, w.keys.SchedulingInfo(guid))
		for i := range int32(4) {
			ks = append(ks, w.keys.ActualLRP(guid, i, models.ActualLRP_ORDINARY))
		}
	}
	return ks
}

// next returns the op that moves key one step through a plausible life,
// and the value it leaves stored (nil for a delete).
func (w *lrpWriter) next(key string) (clientv3.Op, proto.Message) {
	cur := w.state[key]
	var nxt proto.Message
	switch w.keys.Kind(key) {
	case db.KindSchedulingInfo:
		guid := strings.TrimPrefix(key, w.keys.SchedulingInfos())
		if cur != nil && w.rng.IntN(4) == 0 {
			return clientv3.OpDelete(key), nil
		}
		nxt = schedInfo(guid, w.rng.Int32N(10))
	case db.KindActualLRP:
		guid, index, _, _ := w.keys.ParseActualLRP(key)
		cell := fmt.Sprintf("cell-%d", w.rng.IntN(3))
		if cur == nil {
			nxt = actual(guid, index, models.ActualLRP_UNCLAIMED, "", 0)
			break
		}
		l := cur.(*models.ActualLRP)
		switch l.GetState() {
		case models.ActualLRP_UNCLAIMED:
			nxt = actual(guid, index, models.ActualLRP_CLAIMED, cell, l.GetCrashCount())
		case models.ActualLRP_CLAIMED:
			nxt = actual(guid, index, models.ActualLRP_RUNNING, l.GetActualLrpInstanceKey().GetCellId(), l.GetCrashCount())
		case models.ActualLRP_CRASHED:
			nxt = actual(guid, index, models.ActualLRP_UNCLAIMED, "", l.GetCrashCount())
		default: // RUNNING
			switch w.rng.IntN(4) {
			case 0:
				nxt = actual(guid, index, models.ActualLRP_UNCLAIMED, "", l.GetCrashCount()+1)
			case 1:
				nxt = actual(guid, index, models.ActualLRP_CRASHED, "", l.GetCrashCount()+1)
			case 2:
				nxt = actual(guid, index, models.ActualLRP_UNCLAIMED, "", l.GetCrashCount())
			default:
				return clientv3.OpDelete(key), nil
			}
		}
	}
	b, err := proto.Marshal(nxt)
	if err != nil {
		panic(err) // the test's own records always marshal
	}
	return clientv3.OpPut(key, string(b)), nxt
}

// step writes one single put or one transaction of 5-20 keys.
func (w *lrpWriter) step(ctx context.Context) error {
	keys := w.allKeys()
	n := 1
	if w.rng.IntN(2) == 0 {
		n = 5 + w.rng.IntN(16)
	}
	w.rng.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
	keys = keys[:n]
	ops := make([]clientv3.Op, n)
	vals := make([]proto.Message, n)
	for i, k := range keys {
		ops[i], vals[i] = w.next(k)
	}
	resp, err := w.cli.Txn(ctx).Then(ops...).Commit()
	if err != nil {
		return err
	}
	for i, k := range keys {
		if vals[i] == nil {
			delete(w.state, k)
		} else {
			w.state[k] = vals[i]
		}
		w.log = append(w.log, keyRev{k, resp.Header.Revision})
	}
	return nil
}

// eventKey recovers the etcd key an LRP event came from.
func eventKey(keys db.Keys, e *models.LRPEvent) string {
	var l *models.ActualLRP
	switch ev := e.GetEvent().(type) {
	case *models.LRPEvent_DesiredLrpCreated:
		return keys.SchedulingInfo(ev.DesiredLrpCreated.GetDesiredLrp().GetDesiredLrpKey().GetProcessGuid())
	case *models.LRPEvent_DesiredLrpChanged:
		return keys.SchedulingInfo(ev.DesiredLrpChanged.GetAfter().GetDesiredLrpKey().GetProcessGuid())
	case *models.LRPEvent_DesiredLrpRemoved:
		return keys.SchedulingInfo(ev.DesiredLrpRemoved.GetDesiredLrp().GetDesiredLrpKey().GetProcessGuid())
	case *models.LRPEvent_ActualLrpCrashed:
		k := ev.ActualLrpCrashed.GetActualLrpKey()
		return keys.ActualLRP(k.GetProcessGuid(), k.GetIndex(), models.ActualLRP_ORDINARY)
	case *models.LRPEvent_ActualLrpInstanceCreated:
		l = ev.ActualLrpInstanceCreated.GetActualLrp()
	case *models.LRPEvent_ActualLrpInstanceChanged:
		l = ev.ActualLrpInstanceChanged.GetAfter()
	case *models.LRPEvent_ActualLrpInstanceRemoved:
		l = ev.ActualLrpInstanceRemoved.GetActualLrp()
	}
	return keys.ActualLRP(l.GetActualLrpKey().GetProcessGuid(), l.GetActualLrpKey().GetIndex(), l.GetPresence())
}

func posLess(a, b *models.EventPosition) bool {
	return a.GetRevision() < b.GetRevision() || (a.GetRevision() == b.GetRevision() && a.GetSeq() < b.GetSeq())
}

// writers runs lrpWriters, each on its own process guids, until halted.
type writers struct {
	ws   []*lrpWriter
	stop atomic.Bool
	wg   sync.WaitGroup
	errs chan error
}

func startWriters(tb testing.TB, src *Source, cli *clientv3.Client, n int, seed uint64) *writers {
	w := &writers{errs: make(chan error, n)}
	for i := range n {
		lw := &lrpWriter{keys: src.Keys, cli: cli, rng: rand.New(rand.NewPCG(seed+uint64(i), 42)), name: fmt.Sprintf("w%d", i), state: map[string]proto.Message{}}
		w.ws = append(w.ws, lw)
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			for !w.stop.Load() {
				if err := lw.step(context.Background()); err != nil {
					w.errs <- err
					return
				}
			}
		}()
	}
	tb.Cleanup(func() { w.stop.Store(true); w.wg.Wait() })
	return w
}

// halt stops the writers and returns every change they made.
func (w *writers) halt(tb testing.TB) []keyRev {
	tb.Helper()
	w.stop.Store(true)
	w.wg.Wait()
	select {
	case err := <-w.errs:
		tb.Fatalf("writer: %v", err)
	default:
	}
	var all []keyRev
	for _, lw := range w.ws {
		all = append(all, lw.log...)
	}
	return all
}

// refEvent is one event of the reference history.
type refEvent struct {
	pos *models.EventPosition
	ev  *models.LRPEvent
}

// reference is a raw etcd watch over the whole history since a revision,
// derived and numbered by the test itself, independently of Source: the
// sequence every stream must reproduce.
type reference struct {
	mu      sync.Mutex
	events  []refEvent
	changes map[keyRev]bool
	err     error
	cancel  context.CancelFunc
	done    chan struct{}
}

func startReference(tb testing.TB, cli *clientv3.Client, keys db.Keys, start int64) *reference {
	ctx, cancel := context.WithCancel(context.Background())
	r := &reference{changes: map[keyRev]bool{}, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		var rev int64
		var seq uint32
		for resp := range cli.Watch(ctx, keys.LRP(), clientv3.WithPrefix(), clientv3.WithPrevKV(), clientv3.WithRev(start+1)) {
			for _, ev := range resp.Events {
				evs, err := DeriveLRP(keys, ev)
				r.mu.Lock()
				if err != nil && r.err == nil {
					r.err = err
				}
				if ev.Kv.ModRevision != rev {
					rev, seq = ev.Kv.ModRevision, 0
				}
				r.changes[keyRev{string(ev.Kv.Key), rev}] = true
				for _, e := range evs {
					r.events = append(r.events, refEvent{&models.EventPosition{Revision: rev, Seq: seq}, e})
					seq++
				}
				r.mu.Unlock()
			}
		}
	}()
	tb.Cleanup(r.stop)
	return r
}

func (r *reference) stop() {
	r.cancel()
	<-r.done
}

// state returns how many changes and events the reference has seen.
func (r *reference) state() (changes, events int, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.changes), len(r.events), r.err
}

// history returns the reference as a stream filtered to cellID would see
// it: the kept events, renumbered per revision.
func (r *reference) history(cellID string) []refEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []refEvent
	var rev int64
	var seq uint32
	for _, re := range r.events {
		if !MatchesCell(re.ev, cellID) {
			continue
		}
		if re.pos.GetRevision() != rev {
			rev, seq = re.pos.GetRevision(), 0
		}
		out = append(out, refEvent{&models.EventPosition{Revision: rev, Seq: seq}, re.ev})
		seq++
	}
	return out
}

// checkChanges fails unless the reference holds exactly the changes made.
func (r *reference) checkChanges(tb testing.TB, made []keyRev) {
	tb.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		tb.Fatal(r.err)
	}
	for _, kr := range made {
		if !r.changes[kr] {
			tb.Errorf("write %v missing from the watch history", kr)
		}
	}
	if len(made) != len(r.changes) {
		tb.Errorf("watch history has %d changes, writers made %d", len(r.changes), len(made))
	}
}

// checkHistory fails unless got is exactly want: same events, same
// positions, same order.
func checkHistory(tb testing.TB, keys db.Keys, got []*models.LRPEvent, want []refEvent) {
	tb.Helper()
	if len(got) != len(want) {
		tb.Fatalf("stream has %d events, history has %d", len(got), len(want))
	}
	for i, re := range want {
		g := got[i]
		if !proto.Equal(g.GetPosition(), re.pos) {
			tb.Fatalf("event %d at %v, want %v", i, g.GetPosition(), re.pos)
		}
		w := proto.CloneOf(re.ev)
		w.Position = re.pos
		if !proto.Equal(g, w) {
			tb.Fatalf("event %d (%s at %v) differs from history:\n got %v\nwant %v", i, eventKey(keys, g), re.pos, g, w)
		}
	}
}

// resumer is a subscriber that drops its stream at random points (often in
// the middle of a transaction's events) and resumes from the last position
// it processed, until told to settle, when it stays connected.
type resumer struct {
	mu          sync.Mutex
	seen        []*models.LRPEvent
	last        *models.EventPosition
	reconnects  int
	midRevision int
	err         error

	settle atomic.Bool
	cancel context.CancelFunc
	done   chan struct{}
}

func startResumer(tb testing.TB, src *Source, after *models.EventPosition, cellID string, seed uint64) *resumer {
	errDisconnect := errors.New("subscriber hung up")
	subCtx, subCancel := context.WithCancel(context.Background())
	r := &resumer{last: after, cancel: subCancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		rng := rand.New(rand.NewPCG(seed, 7))
		for subCtx.Err() == nil {
			ctx, cancel := context.WithCancel(subCtx)
			r.mu.Lock()
			after := r.last
			r.mu.Unlock()
			limit := 1 + rng.IntN(60)
			mode := rng.IntN(3)
			if r.settle.Load() {
				mode = -1 // stay connected and catch up
			}
			var hangUp *time.Timer
			hangUpAfter := time.Duration(rng.IntN(2000)) * time.Microsecond
			n := 0
			err := src.LRPEvents(ctx, &models.SubscribeLRPEventsRequest{After: after, CellId: cellID}, func(e *models.LRPEvent) error {
				if err := ctx.Err(); err != nil {
					return err // a gone client processes nothing more
				}
				r.mu.Lock()
				defer r.mu.Unlock()
				if r.last.GetRevision() > 0 && !posLess(r.last, e.GetPosition()) {
					r.err = fmt.Errorf("event at %v after having processed %v", e.GetPosition(), r.last)
				}
				if n == 0 && e.GetPosition().GetRevision() == after.GetRevision() {
					r.midRevision++
				}
				r.seen = append(r.seen, e)
				r.last = e.GetPosition()
				n++
				if mode == 2 && n == 1 {
					// Hang up from outside, at a moment unrelated to the
					// events, as a dropped connection would.
					hangUp = time.AfterFunc(hangUpAfter, cancel)
				}
				if n == limit {
					if mode == 0 {
						cancel()
						return nil
					}
					if mode == 1 {
						return errDisconnect
					}
				}
				return nil
			})
			cancel()
			if hangUp != nil {
				hangUp.Stop()
			}
			if !errors.Is(err, context.Canceled) && !errors.Is(err, errDisconnect) {
				r.mu.Lock()
				r.err = fmt.Errorf("stream ended with %v", err)
				r.mu.Unlock()
				return
			}
			r.mu.Lock()
			r.reconnects++
			r.mu.Unlock()
		}
	}()
	tb.Cleanup(r.stop)
	return r
}

func (r *resumer) stop() {
	r.cancel()
	<-r.done
}

func (r *resumer) state() (events, reconnects, midRevision int, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.seen), r.reconnects, r.midRevision, r.err
}

func (r *resumer) events() []*models.LRPEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*models.LRPEvent(nil), r.seen...)
}

// TestLRPStreamResumeExactlyOnce is the contract of the stream: writers keep
// writing single keys and multi-key transactions while a subscriber drops
// its stream at random points and resumes from the last position it
// processed. In the end it must have seen exactly the events of an
// uninterrupted full-history watch, each once and in order, and those must
// cover every change the writers made. It runs on a private watch, on a hub,
// and on a hub whose ring is so small that resumes keep crossing between
// the two paths.
func TestLRPStreamResumeExactlyOnce(t *testing.T) {
	for _, p := range []servePath{viaPrivate, viaHub, viaTinyHub} {
		t.Run(p.String(), func(t *testing.T) {
			src, cli := newSource(t, p)
			start := currentRevision(t, cli)
			const (
				minReconnects   = 30
				minMidRevisions = 5
			)
			ref := startReference(t, cli, src.Keys, start)
			w := startWriters(t, src, cli, 4, 0)
			sub := startResumer(t, src, afterList(start), "", 7)

			eventually(t, 60*time.Second, func() bool {
				_, r, m, err := sub.state()
				return err != nil || (r >= minReconnects && m >= minMidRevisions)
			}, "subscriber did not reconnect %d times (%d mid-revision) while writers wrote", minReconnects, minMidRevisions)
			sub.settle.Store(true)
			made := w.halt(t)
			end := currentRevision(t, cli)

			// Let both catch up with the last write: the reference has it
			// when it has seen as many changes as were made.
			eventuallyDescribe(t, 30*time.Second, func() bool {
				changes, events, refErr := ref.state()
				n, _, _, err := sub.state()
				return err != nil || refErr != nil || (changes >= len(made) && n >= events)
			}, func() string {
				changes, events, refErr := ref.state()
				n, r, m, err := sub.state()
				return fmt.Sprintf("subscriber and reference did not reach revision %d: writes %d, reference changes %d events %d (err %v), subscriber events %d reconnects %d mid %d err %v",
					end, len(made), changes, events, refErr, n, r, m, err)
			})
			sub.stop()
			ref.stop()

			n, r, m, err := sub.state()
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%d events over %d revisions, %d reconnects (%d resumed mid-revision); hub: %d served, %d uncovered, %d lagged",
				n, end-start, r, m, src.stats.served.Load(), src.stats.uncovered.Load(), src.stats.lagged.Load())
			ref.checkChanges(t, made)
			checkHistory(t, src.Keys, sub.events(), ref.history(""))
			if p == viaHub && src.stats.uncovered.Load()+src.stats.lagged.Load() > 0 {
				t.Errorf("a hub with a large ring sent %d resumes and %d subscribers to private watches", src.stats.uncovered.Load(), src.stats.lagged.Load())
			}
		})
	}
}
