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

// TestLRPStreamResumeExactlyOnce is the contract of the stream: writers keep
// writing single keys and multi-key transactions while a subscriber drops
// its stream at random points (often in the middle of a transaction's
// events) and resumes from the last position it processed. In the end it
// must have seen exactly the events of an uninterrupted full-history watch,
// each once and in order, and those must cover every change the writers
// made.
func TestLRPStreamResumeExactlyOnce(t *testing.T) {
	src, cli := newSource(t)
	start := currentRevision(t, cli)
	const (
		minReconnects   = 30
		minMidRevisions = 5
	)

	// The reference: a raw etcd watch over the whole history since start,
	// derived and numbered here, independently of Source.
	type refEvent struct {
		pos *models.EventPosition
		ev  *models.LRPEvent
	}
	var (
		refMu   sync.Mutex
		ref     []refEvent
		refKeys = map[keyRev]bool{}
		refErr  error
	)
	refCtx, refCancel := context.WithCancel(context.Background())
	refDone := make(chan struct{})
	go func() {
		defer close(refDone)
		var rev int64
		var seq uint32
		for resp := range cli.Watch(refCtx, src.Keys.LRP(), clientv3.WithPrefix(), clientv3.WithPrevKV(), clientv3.WithRev(start+1)) {
			for _, ev := range resp.Events {
				evs, err := DeriveLRP(src.Keys, ev)
				refMu.Lock()
				if err != nil && refErr == nil {
					refErr = err
				}
				if ev.Kv.ModRevision != rev {
					rev, seq = ev.Kv.ModRevision, 0
				}
				refKeys[keyRev{string(ev.Kv.Key), rev}] = true
				for _, e := range evs {
					ref = append(ref, refEvent{&models.EventPosition{Revision: rev, Seq: seq}, e})
					seq++
				}
				refMu.Unlock()
			}
		}
	}()
	defer func() { refCancel(); <-refDone }()

	// The writers.
	var stopWriters atomic.Bool
	var writersWG sync.WaitGroup
	writers := make([]*lrpWriter, 4)
	writeErrs := make(chan error, len(writers))
	for i := range writers {
		w := &lrpWriter{keys: src.Keys, cli: cli, rng: rand.New(rand.NewPCG(uint64(i), 42)), name: fmt.Sprintf("w%d", i), state: map[string]proto.Message{}}
		writers[i] = w
		writersWG.Add(1)
		go func() {
			defer writersWG.Done()
			for !stopWriters.Load() {
				if err := w.step(context.Background()); err != nil {
					writeErrs <- err
					return
				}
			}
		}()
	}

	// The subscriber.
	var (
		subMu       sync.Mutex
		seen        []*models.LRPEvent
		last        = afterList(start)
		reconnects  int
		midRevision int
		subErr      error
	)
	errDisconnect := errors.New("subscriber hung up")
	var settle atomic.Bool // set once enough reconnects happened
	subCtx, subCancel := context.WithCancel(context.Background())
	subDone := make(chan struct{})
	go func() {
		defer close(subDone)
		rng := rand.New(rand.NewPCG(7, 7))
		for subCtx.Err() == nil {
			ctx, cancel := context.WithCancel(subCtx)
			subMu.Lock()
			after := last
			subMu.Unlock()
			limit := 1 + rng.IntN(60)
			mode := rng.IntN(3)
			if settle.Load() {
				mode = -1 // stay connected and catch up
			}
			var hangUp *time.Timer
			hangUpAfter := time.Duration(rng.IntN(2000)) * time.Microsecond
			n := 0
			err := src.LRPEvents(ctx, &models.SubscribeLRPEventsRequest{After: after}, func(e *models.LRPEvent) error {
				if err := ctx.Err(); err != nil {
					return err // a gone client processes nothing more
				}
				subMu.Lock()
				defer subMu.Unlock()
				if !posLess(last, e.GetPosition()) {
					subErr = fmt.Errorf("event at %v after having processed %v", e.GetPosition(), last)
				}
				if n == 0 && e.GetPosition().GetRevision() == after.GetRevision() {
					midRevision++
				}
				seen = append(seen, e)
				last = e.GetPosition()
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
				subMu.Lock()
				subErr = fmt.Errorf("stream ended with %v", err)
				subMu.Unlock()
				return
			}
			subMu.Lock()
			reconnects++
			subMu.Unlock()
		}
	}()
	defer func() { subCancel(); <-subDone }()

	subState := func() (int, int, int, error) {
		subMu.Lock()
		defer subMu.Unlock()
		return len(seen), reconnects, midRevision, subErr
	}
	eventually(t, 60*time.Second, func() bool {
		_, r, m, err := subState()
		return err != nil || (r >= minReconnects && m >= minMidRevisions)
	}, "subscriber did not reconnect %d times (%d mid-revision) while writers wrote", minReconnects, minMidRevisions)
	stopWriters.Store(true)
	settle.Store(true)
	writersWG.Wait()
	close(writeErrs)
	for err := range writeErrs {
		t.Fatalf("writer: %v", err)
	}
	end := currentRevision(t, cli)
	var writes int
	for _, w := range writers {
		writes += len(w.log)
	}

	// Let both catch up with the last write: the reference has it when it
	// has seen as many changes as were made.
	eventuallyDescribe(t, 30*time.Second, func() bool {
		refMu.Lock()
		defer refMu.Unlock()
		n, _, _, err := subState()
		return err != nil || refErr != nil || (len(refKeys) >= writes && n >= len(ref))
	}, func() string {
		refMu.Lock()
		defer refMu.Unlock()
		n, r, m, err := subState()
		return fmt.Sprintf("subscriber and reference did not reach revision %d: writes %d, reference changes %d events %d, subscriber events %d reconnects %d mid %d err %v",
			end, writes, len(refKeys), len(ref), n, r, m, err)
	})
	subCancel()
	<-subDone
	refCancel()
	<-refDone

	n, r, m, err := subState()
	if err != nil {
		t.Fatal(err)
	}
	if refErr != nil {
		t.Fatal(refErr)
	}
	t.Logf("%d events over %d revisions, %d reconnects (%d resumed mid-revision)", n, end-start, r, m)

	// Every change the writers made is in the reference, and nothing else.
	for _, w := range writers {
		for _, kr := range w.log {
			if !refKeys[kr] {
				t.Errorf("write %v missing from the watch history", kr)
			}
		}
	}
	if writes != len(refKeys) {
		t.Errorf("watch history has %d changes, writers made %d", len(refKeys), writes)
	}

	// The subscriber saw exactly the reference, in order, with the same
	// positions.
	if len(seen) != len(ref) {
		t.Fatalf("subscriber saw %d events, full history has %d", len(seen), len(ref))
	}
	for i, re := range ref {
		got := seen[i]
		if !proto.Equal(got.GetPosition(), re.pos) {
			t.Fatalf("event %d at %v, want %v", i, got.GetPosition(), re.pos)
		}
		want := proto.CloneOf(re.ev)
		want.Position = re.pos
		if !proto.Equal(got, want) {
			t.Fatalf("event %d (%s at %v) differs from history:\n got %v\nwant %v", i, eventKey(src.Keys, got), re.pos, got, want)
		}
	}
}
