package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/gavel-scheduler/gavel/proto/models"
)

// streamKind describes one kind of stream (LRP or task) to the code shared by
// both: where its keys live, how a change becomes events, and how an event
// is stamped with a subscriber's position.
type streamKind[E any] struct {
	name   string
	prefix string
	derive func(*clientv3.Event) ([]E, error)
	// wrap returns a new event carrying pos and e's payload. Hub events
	// are shared by every subscriber, so a position is never written into
	// e itself.
	wrap func(e E, pos *models.EventPosition) E
}

// entry is one derived, unfiltered event in a hub's ring, with the etcd
// revision it belongs to.
type entry[E any] struct {
	rev int64
	ev  E
}

// hubStats counts how subscriptions were served; tests read it to tell
// which path a stream took.
type hubStats struct {
	served    atomic.Int64 // subscriptions that started on a hub's ring
	uncovered atomic.Int64 // resumes from before a ring's coverage (private watch)
	lagged    atomic.Int64 // subscribers that fell behind the ring (then private)
}

// hub is one etcd watch over one stream kind, shared by the subscribers of
// one Source. Its goroutine derives every change once and appends the
// unfiltered events to a bounded ring; each subscriber walks the ring with
// its own cursor, filters, numbers and sends. The hub never waits for a
// subscriber: one that is overtaken by eviction continues on a private watch
// (see serve), so a slow client cannot hold up the others.
//
// The ring holds every event of every revision above covered, in order:
// the watch starts right after the revision start read when the hub
// started, and eviction only ever removes the oldest events, raising
// covered to the revision of the last one removed. A revision may be split
// by eviction (then covered equals it) or by etcd over two watch responses
// (then its tail is still to come); serve accounts for both.
//
// A hub that ended (its watch failed, it idled, or the Source closed) is
// never restarted: the Source starts a new one at a fresh revision for the
// next subscriber, while subscribers of the old one finish with it.
type hub[E any] struct {
	kind   streamKind[E]
	size   int // ring capacity
	batch  int // entries a subscriber copies out per lock
	idle   time.Duration
	log    *slog.Logger
	stats  *hubStats
	cancel context.CancelFunc // stops the watch; set before run starts
	idled  chan struct{}      // capacity 1: the last subscriber left

	// mu guards everything below. Subscribers hold it only to copy a batch
	// of entries out, never while sending.
	mu      sync.Mutex
	ready   bool  // start and covered are known
	start   int64 // the revision the watch starts after
	covered int64 // every event of a revision above it is in the ring
	ring    []entry[E]
	head    uint64 // absolute index of the oldest entry held
	tail    uint64 // absolute index of the next entry appended
	// wake is closed, and replaced, whenever entries are appended or the
	// hub ends, so waiting subscribers need no lock to wait.
	wake chan struct{}
	err  error // why the hub ended; nil while it runs
	// drain says subscribers still deliver what the ring holds before
	// returning err: true when the watch failed (the events before the
	// failure are good), false when the Source closed.
	drain bool
	subs  int // attached subscribers
}

func newHub[E any](k streamKind[E], size, batch int, idle time.Duration, log *slog.Logger, stats *hubStats) *hub[E] {
	return &hub[E]{
		kind:  k,
		size:  size,
		batch: batch,
		idle:  idle,
		log:   log,
		stats: stats,
		idled: make(chan struct{}, 1),
		wake:  make(chan struct{}),
		subs:  1, // the subscriber that starts a hub is attached from the start
	}
}

// errHubIdle ends a hub nobody subscribed to for its idle time; no
// subscriber ever sees it.
var errHubIdle = errors.New("event hub idle")

// run follows the watch until it fails, the hub idles or ctx is cancelled,
// then ends the hub.
func (h *hub[E]) run(ctx context.Context, cli *clientv3.Client) {
	err := h.follow(ctx, cli)
	if ctx.Err() != nil && !errors.Is(err, errHubIdle) {
		// Stopped from outside. stop has recorded why; if nothing has,
		// subscribers are told to resume, not that they were cancelled.
		err = models.NewError(models.TypeUnavailable, "event hub %s stopped", h.kind.prefix)
	}
	h.end(err, true)
	h.mu.Lock()
	reason := h.err
	h.mu.Unlock()
	if errors.Is(reason, errHubIdle) || reason == errClosed {
		h.log.Info("event hub stopped", "reason", reason.Error())
	} else {
		h.log.Warn("event hub failed", "error", reason.Error())
	}
}

func (h *hub[E]) follow(ctx context.Context, cli *clientv3.Client) error {
	start, err := headRevision(ctx, cli, h.kind.prefix)
	if err != nil {
		return models.NewError(models.TypeUnavailable, "event hub %s: %v", h.kind.prefix, err)
	}
	h.mu.Lock()
	h.ready, h.start, h.covered = true, start, start
	h.notify()
	h.mu.Unlock()
	h.log.Info("event hub started", "after_revision", start, "ring_size", h.size)

	// WithRequireLeader for the reason watch gives: a member cut off from
	// the quorum must end the watch rather than keep it silently open.
	wch := cli.Watch(clientv3.WithRequireLeader(ctx), h.kind.prefix,
		clientv3.WithPrefix(), clientv3.WithPrevKV(), clientv3.WithRev(start+1))
	var (
		idleTimer *time.Timer
		idleC     <-chan time.Time
	)
	defer func() {
		if idleTimer != nil {
			idleTimer.Stop()
		}
	}()
	derive := completing(ctx, cli, h.kind.derive)
	var batch []entry[E]
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-h.idled:
			if idleTimer == nil {
				idleTimer = time.NewTimer(h.idle)
			} else {
				idleTimer.Reset(h.idle)
			}
			idleC = idleTimer.C
			continue
		case <-idleC:
			idleC = nil
			if h.endIfIdle() {
				return errHubIdle
			}
			continue
		case resp, ok := <-wch:
			if !ok {
				if err := ctx.Err(); err != nil {
					return err
				}
				return models.NewError(models.TypeUnavailable, "event hub %s: watch closed by the etcd client", h.kind.prefix)
			}
			if resp.CompactRevision != 0 || errors.Is(resp.Err(), rpctypes.ErrCompacted) {
				// Only possible if etcd compacted between the read and the
				// watch: the hub's own start is gone, not a client's, so
				// clients just resume (on a new hub).
				return models.NewError(models.TypeUnavailable, "event hub %s: start revision %d compacted", h.kind.prefix, start)
			}
			if err := resp.Err(); err != nil || resp.Canceled {
				if ctxErr := ctx.Err(); ctxErr != nil {
					return ctxErr
				}
				if err == nil {
					err = errors.New("cancelled by etcd")
				}
				return models.NewError(models.TypeUnavailable, "event hub %s: watch ended: %v", h.kind.prefix, err)
			}
			batch = batch[:0]
			for _, ev := range resp.Events {
				evs, err := derive(ev)
				if err != nil {
					// Subscribers get what came before the bad change,
					// then the error, as a private watch would give them.
					h.append(batch)
					return err
				}
				for _, e := range evs {
					batch = append(batch, entry[E]{rev: ev.Kv.ModRevision, ev: e})
				}
			}
			h.append(batch)
			clear(batch) // drop references the ring now holds alone
		}
	}
}

// append adds derived events to the ring, evicting the oldest ones once it
// is full, and wakes waiting subscribers.
func (h *hub[E]) append(batch []entry[E]) {
	if len(batch) == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range batch {
		if len(h.ring) < h.size {
			h.ring = append(h.ring, e)
		} else {
			i := h.tail % uint64(h.size) // holds the entry at head
			h.covered = h.ring[i].rev
			h.ring[i] = e
			h.head++
		}
		h.tail++
	}
	h.notify()
}

// at returns the entry with absolute index i. h.mu must be held and
// head <= i < tail.
func (h *hub[E]) at(i uint64) *entry[E] {
	return &h.ring[i%uint64(h.size)]
}

// notify wakes every waiting subscriber. h.mu must be held.
func (h *hub[E]) notify() {
	close(h.wake)
	h.wake = make(chan struct{})
}

// end records why the hub ended, unless it already had, and wakes its
// subscribers.
func (h *hub[E]) end(err error, drain bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.err != nil {
		return
	}
	h.err, h.drain = err, drain
	h.notify()
}

// stop ends the hub with err, without letting subscribers drain the ring,
// and cancels its watch.
func (h *hub[E]) stop(err error) {
	h.end(err, false)
	h.cancel()
}

// endIfIdle ends the hub if it still has no subscribers. Deciding under
// h.mu, as attach does, is what keeps a subscriber from attaching to a hub
// that is going away.
func (h *hub[E]) endIfIdle() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.subs > 0 || h.err != nil {
		return false
	}
	h.err, h.drain = errHubIdle, false
	h.notify()
	return true
}

// attach adds a subscriber unless the hub has ended.
func (h *hub[E]) attach() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.err != nil {
		return false
	}
	h.subs++
	return true
}

func (h *hub[E]) detach() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.subs--
	if h.subs == 0 && h.err == nil {
		select {
		case h.idled <- struct{}{}:
		default: // a signal is already pending
		}
	}
}

// search returns the absolute index of the first entry of revision rev or
// later, or tail if there is none. h.mu must be held.
func (h *hub[E]) search(rev int64) uint64 {
	lo, hi := h.head, h.tail
	for lo < hi {
		mid := lo + (hi-lo)/2
		if h.at(mid).rev < rev {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo
}

// serveBatch is how many entries a subscriber copies out per lock: enough
// that the lock is rare, few enough that a copy is cheap.
const serveBatch = 256

// serve streams the ring, from after (which must be set), to one attached
// subscriber, detaching it on return. It numbers the events keep keeps
// exactly as a private watch would (per revision, after the filter), so the
// positions of both paths are interchangeable.
//
// It returns a non-nil position, and no error, when the ring cannot serve
// the subscriber from there on: either the ring never held what comes
// right after `after`, or eviction overtook the subscriber. The caller
// then continues on a private watch from that position, which is the last
// one this subscriber has fully dealt with, so the switch loses and
// repeats nothing.
func (h *hub[E]) serve(
	ctx context.Context,
	log *slog.Logger,
	after *models.EventPosition,
	keep func(E) bool,
	emit func(E, *models.EventPosition) error,
) (*models.EventPosition, error) {
	defer h.detach()
	// ended is how a subscriber leaves a hub that ended: with its own
	// cancellation if it has one, as pump does, else with the hub's reason.
	ended := func(err error) (*models.EventPosition, error) {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, ctxErr
		}
		return nil, err
	}

	// The coverage check needs the hub's start revision.
	for {
		h.mu.Lock()
		ready, err, wake := h.ready, h.err, h.wake
		h.mu.Unlock()
		if ready {
			break
		}
		if err != nil {
			return ended(err)
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}

	h.mu.Lock()
	if h.err != nil && !h.drain {
		err := h.err
		h.mu.Unlock()
		return ended(err)
	}
	if after.GetRevision() < h.covered || (after.GetRevision() == h.covered && after.GetSeq() != math.MaxUint32) {
		// Some event right after `after` was never in the ring, or has
		// been evicted.
		h.mu.Unlock()
		h.stats.uncovered.Add(1)
		return after, nil
	}
	// Every event after `after` is (or will be) in the ring, including
	// all of after's revision when the client stopped inside it.
	cursor, from := h.search(after.GetRevision()), after
	h.mu.Unlock()
	h.stats.served.Add(1)

	pos := newPositioner(after)
	buf := make([]entry[E], 0, h.batch)
	defer clear(buf[:cap(buf)])
	for {
		h.mu.Lock()
		if h.err != nil && !h.drain {
			err := h.err
			h.mu.Unlock()
			return ended(err)
		}
		if cursor < h.head {
			h.mu.Unlock()
			h.stats.lagged.Add(1)
			// Worth a line: the ring is too small for the event rate, or
			// this client too slow for it.
			log.Info("event subscriber fell behind the hub; continuing on its own watch",
				"after_revision", from.GetRevision(), "after_seq", from.GetSeq())
			return from, nil
		}
		buf = buf[:0]
		for i := cursor; i < h.tail && len(buf) < h.batch; i++ {
			buf = append(buf, *h.at(i))
		}
		err, wake := h.err, h.wake
		h.mu.Unlock()

		if err != nil && len(buf) == 0 {
			return ended(err) // drained
		}
		if len(buf) == 0 {
			select {
			case <-wake:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		cursor += uint64(len(buf))
		for _, e := range buf {
			// Entries come in revision order, so reaching revision rev
			// means every earlier one has been dealt with, sent or
			// filtered out. Moving `from` past them keeps a filtered
			// subscriber that lags from resuming (privately) at a revision
			// etcd may have compacted long ago.
			if prev := e.rev - 1; prev > from.GetRevision() || (prev == from.GetRevision() && from.GetSeq() != math.MaxUint32) {
				from = afterRevision(prev)
			}
			if keep != nil && !keep(e.ev) {
				continue
			}
			p, deliver := pos.next(e.rev)
			if !deliver {
				continue
			}
			// As in pump: a cancelled subscriber must not be handed more.
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			if err := emit(e.ev, p); err != nil {
				return nil, err
			}
			from = p
		}
	}
}

// afterRevision is the position just past every event of rev.
func afterRevision(rev int64) *models.EventPosition {
	return &models.EventPosition{Revision: rev, Seq: math.MaxUint32}
}

// headRevision returns etcd's current revision: a linearizable read, so no
// change committed before the call is above it.
func headRevision(ctx context.Context, cli *clientv3.Client, prefix string) (int64, error) {
	// Any key will do; counting the one key named like the prefix costs
	// etcd next to nothing.
	resp, err := cli.Get(ctx, prefix, clientv3.WithCountOnly())
	if err != nil {
		return 0, fmt.Errorf("read current revision: %w", err)
	}
	return resp.Header.Revision, nil
}
