package events

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/gavel-scheduler/gavel/bbs/db"
	"github.com/gavel-scheduler/gavel/proto/models"
)

// Source serves the LRP and task event streams of one BBS process.
//
// Per stream kind it runs one hub: a single etcd watch (with prev KVs) whose
// changes are derived once into a bounded ring of unfiltered events, which
// every subscriber then walks on its own, filtering, numbering and sending.
// A watch per subscriber would have etcd and the BBS fetch, send and decode
// every change once per subscriber: with ten subscribers that, not etcd's
// write rate, bounds the event rate.
//
// The private watch is kept as the baseline the hub must agree with, and it
// serves whatever the ring cannot: a resume from before the ring's oldest
// complete revision (a client that was away, or came from another BBS), and
// a subscriber that falls so far behind that eviction overtakes it, which
// continues on a private watch from the last position it dealt with. Both
// paths number events the same way, so a client can resume from a position
// either gave it, on this BBS or another. The ring never waits for a
// subscriber, so a slow one holds up no one else: its private watch is
// where backpressure lands, buffered by etcd for it alone.
//
// A hub starts with its kind's first subscriber and stops when it has had
// none for HubIdle, when its watch fails, or when the Source is closed. Set
// the exported fields before the first stream and do not copy a Source once
// used; one value serves any number of concurrent streams.
type Source struct {
	Client *clientv3.Client
	Keys   db.Keys
	// Logger receives the opening of each stream at debug level, hub
	// starts and stops and lagging subscribers at info, hub failures at
	// warn; nil means slog.Default().
	Logger *slog.Logger
	// RingSize is how many derived events a hub keeps; 0 means
	// DefaultRingSize. It bounds the hub's memory (a decoded event with
	// its before and after is on the order of a kilobyte) and sets how far
	// a subscriber may lag, or how old a resume position may be, before it
	// is served by a private watch instead.
	RingSize int
	// HubIdle is how long a hub with no subscribers keeps its watch and
	// ring; 0 means DefaultHubIdle. Keeping them a while lets clients that
	// reconnect (a BBS restart elsewhere, a network blip) resume from the
	// ring.
	HubIdle time.Duration

	// noHub serves every stream from a private watch; tests set it to run
	// the same cases over both paths.
	noHub bool
	// batch overrides serveBatch; tests make it small so that subscribers
	// fall off the ring in the middle of a revision.
	batch int
	stats hubStats

	// mu guards closed, lrp and task; it is taken before any hub's own
	// lock, never after.
	mu     sync.Mutex
	closed bool
	lrp    *hub[*models.LRPEvent]
	task   *hub[*models.TaskEvent]
	// hubs counts running hub goroutines, so Close can wait for them.
	hubs sync.WaitGroup
}

const (
	// DefaultRingSize is a hub's ring size when Source.RingSize is 0:
	// several seconds of events at ten thousand a second.
	DefaultRingSize = 1 << 16
	// DefaultHubIdle is Source.HubIdle's default.
	DefaultHubIdle = time.Minute
)

// errClosed ends the streams of a closed Source: Unavailable, so clients
// resume through another BBS.
var errClosed = models.NewError(models.TypeUnavailable, "event source closed")

// LRPEvents streams desired and actual LRP events to send until ctx is done,
// the watch fails, or send returns an error (which is returned as is). send
// must treat the event as read-only: its payload may be shared with other
// streams.
//
// req.After resumes the stream: events up to and including that position are
// skipped, every later one is delivered exactly once. A client that listed at
// revision R and wants only what came after the list passes
// {revision: R, seq: math.MaxUint32}. An unset After (nil or revision 0)
// starts with the next change.
//
// A position older than etcd's compaction yields a TypeCompacted error: the
// client must list again. (Unless this BBS's hub still holds every event
// after it: then the stream is served as usual, since nothing is missing.)
// A watch that ends while ctx is live (the etcd member lost its leader or
// went away, the etcd client closed, the Source closed) yields a
// TypeUnavailable error: the client resumes from the last position it
// processed, through another BBS if need be.
//
// With req.CellId set only the events MatchesCell keeps are sent, and seq
// numbers count the kept events, so positions stay dense for the client.
func (s *Source) LRPEvents(ctx context.Context, req *models.SubscribeLRPEventsRequest, send func(*models.LRPEvent) error) error {
	cellID := req.GetCellId()
	var keep func(*models.LRPEvent) bool
	if cellID != "" {
		keep = func(e *models.LRPEvent) bool { return MatchesCell(e, cellID) }
	}
	log := s.logger().With("stream", "lrp", "cell_id", cellID)
	return subscribe(ctx, s, &s.lrp, s.lrpKind(), req.GetAfter(), keep, send, log)
}

// TaskEvents streams task events to send until ctx is done, the watch fails,
// or send returns an error (returned as is). req.After resumes the stream as
// for LRPEvents, and send must treat events as read-only as there.
func (s *Source) TaskEvents(ctx context.Context, req *models.SubscribeTaskEventsRequest, send func(*models.TaskEvent) error) error {
	return subscribe(ctx, s, &s.task, s.taskKind(), req.GetAfter(), nil, send, s.logger().With("stream", "task"))
}

// Close stops the hubs and waits for their goroutines: their subscribers
// end with a TypeUnavailable error, and so does any stream opened later.
// Streams on a private watch end with their own contexts.
func (s *Source) Close() {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		if s.lrp != nil {
			s.lrp.stop(errClosed)
		}
		if s.task != nil {
			s.task.stop(errClosed)
		}
	}
	s.mu.Unlock()
	// Outside mu: a hub goroutine takes it on its way out.
	s.hubs.Wait()
}

func (s *Source) lrpKind() streamKind[*models.LRPEvent] {
	return streamKind[*models.LRPEvent]{
		name:   "lrp",
		prefix: s.Keys.LRP(),
		derive: func(ev *clientv3.Event) ([]*models.LRPEvent, error) { return DeriveLRP(s.Keys, ev) },
		wrap: func(e *models.LRPEvent, pos *models.EventPosition) *models.LRPEvent {
			return &models.LRPEvent{Position: pos, Event: e.Event}
		},
	}
}

func (s *Source) taskKind() streamKind[*models.TaskEvent] {
	return streamKind[*models.TaskEvent]{
		name:   "task",
		prefix: s.Keys.Tasks(),
		derive: func(ev *clientv3.Event) ([]*models.TaskEvent, error) { return DeriveTask(s.Keys, ev) },
		wrap: func(e *models.TaskEvent, pos *models.EventPosition) *models.TaskEvent {
			return &models.TaskEvent{Position: pos, Event: e.Event}
		},
	}
}

func (s *Source) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

// subscribe serves one stream: from the kind's hub while its ring can, then
// (or from the start) from a private watch. keep is the stream's filter;
// nil keeps everything.
func subscribe[E any](
	ctx context.Context,
	s *Source,
	slot **hub[E],
	k streamKind[E],
	after *models.EventPosition,
	keep func(E) bool,
	send func(E) error,
	log *slog.Logger,
) error {
	emit := func(e E, pos *models.EventPosition) error { return send(k.wrap(e, pos)) }
	if !s.noHub {
		if after.GetRevision() == 0 {
			// "Only new changes" must exclude every change committed
			// before the call, as a private watch registered now would;
			// the ring may not have caught up with those yet, so its end
			// is no substitute for etcd's current revision. Read before
			// acquiring, so a hub started now starts no earlier.
			rev, err := headRevision(ctx, s.Client, k.prefix)
			if err != nil {
				if ctxErr := ctx.Err(); ctxErr != nil {
					return ctxErr
				}
				return models.NewError(models.TypeUnavailable, "%s events: %v", k.name, err)
			}
			after = afterRevision(rev)
		}
		h, err := acquire(s, slot, k)
		if err != nil {
			return err
		}
		from, err := h.serve(ctx, log, after, keep, emit)
		if from == nil {
			return err
		}
		after = from
	}
	derive := func(ev *clientv3.Event) ([]E, error) {
		evs, err := k.derive(ev)
		if err != nil || keep == nil {
			return evs, err
		}
		kept := evs[:0]
		for _, e := range evs {
			if keep(e) {
				kept = append(kept, e)
			}
		}
		return kept, nil
	}
	return watch(ctx, s.Client, log, k.prefix, after, derive, emit)
}

// acquire attaches a subscriber to the kind's hub, starting one if there is
// none or the last one ended.
func acquire[E any](s *Source, slot **hub[E], k streamKind[E]) (*hub[E], error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errClosed
	}
	if h := *slot; h != nil && h.attach() {
		return h, nil
	}
	size := s.RingSize
	if size <= 0 {
		size = DefaultRingSize
	}
	idle := s.HubIdle
	if idle <= 0 {
		idle = DefaultHubIdle
	}
	batch := s.batch
	if batch <= 0 {
		batch = serveBatch
	}
	h := newHub(k, size, batch, idle, s.logger().With("stream", k.name), &s.stats)
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	*slot = h
	s.hubs.Add(1)
	go func() {
		defer s.hubs.Done()
		defer cancel()
		h.run(ctx, s.Client)
		// Let the ring go; subscribers still draining it hold their own
		// reference.
		s.mu.Lock()
		if *slot == h {
			*slot = nil
		}
		s.mu.Unlock()
	}()
	return h, nil
}

// watch runs one etcd watch over prefix and hands every derived event, with
// its position, to emit. Events are emitted from the watch loop itself, so a
// slow consumer holds the loop (and etcd buffers) instead of a queue here
// growing without bound.
func watch[E any](
	ctx context.Context,
	cli *clientv3.Client,
	log *slog.Logger,
	prefix string,
	after *models.EventPosition,
	derive func(*clientv3.Event) ([]E, error),
	emit func(E, *models.EventPosition) error,
) error {
	// Cancelling our own context closes the watch on every return path,
	// including a failed send.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	opts := []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithPrevKV()}
	startRev := after.GetRevision()
	if startRev > 0 {
		opts = append(opts, clientv3.WithRev(startRev))
	}
	log.Debug("event stream opened", "prefix", prefix, "after_revision", startRev, "after_seq", after.GetSeq())

	// Without WithRequireLeader a member cut off from the quorum keeps the
	// watch open and silent forever; with it, etcd ends the watch so the
	// client can resume against a healthy member.
	wch := cli.Watch(clientv3.WithRequireLeader(ctx), prefix, opts...)
	return pump(ctx, wch, prefix, after, completing(ctx, cli, derive), emit)
}

// completing returns derive with every change that came without its
// previous value completed first, by a read at the revision before it.
// etcd leaves a watch event's PrevKv out whenever it cannot read it: when
// that revision was compacted, and (etcd 3.6) when a watch starting in the
// past sends its first events before the server has recorded its prev_kv
// flag.
func completing[E any](ctx context.Context, cli *clientv3.Client, derive func(*clientv3.Event) ([]E, error)) func(*clientv3.Event) ([]E, error) {
	return func(ev *clientv3.Event) ([]E, error) {
		if ev.PrevKv == nil && !ev.IsCreate() {
			if err := readPrev(ctx, cli, ev); err != nil {
				return nil, err
			}
		}
		return derive(ev)
	}
}

// readPrev sets ev.PrevKv to the key's value at the revision before ev.
func readPrev(ctx context.Context, cli *clientv3.Client, ev *clientv3.Event) error {
	key, rev := string(ev.Kv.Key), ev.Kv.ModRevision
	resp, err := cli.Get(ctx, key, clientv3.WithRev(rev-1))
	switch {
	case errors.Is(err, rpctypes.ErrCompacted):
		return models.NewError(models.TypeCompacted,
			"the value of %s before revision %d has been compacted: list again and subscribe after the list's revision", key, rev)
	case err != nil:
		if ctxErr := ctx.Err(); ctxErr != nil {
			return ctxErr
		}
		return models.NewError(models.TypeUnavailable, "read the value of %s before revision %d: %v", key, rev, err)
	case len(resp.Kvs) == 1:
		ev.PrevKv = resp.Kvs[0]
	}
	return nil
}

// pump turns watch responses into emitted events until the channel closes,
// a response carries an error, or ctx is done. It is apart from watch so a
// test can feed it responses etcd rarely produces (one revision split over
// several responses).
func pump[E any](
	ctx context.Context,
	wch clientv3.WatchChan,
	prefix string,
	after *models.EventPosition,
	derive func(*clientv3.Event) ([]E, error),
	emit func(E, *models.EventPosition) error,
) error {
	startRev := after.GetRevision()
	pos := newPositioner(after)
	for {
		var resp clientv3.WatchResponse
		var ok bool
		select {
		case <-ctx.Done():
			return ctx.Err()
		case resp, ok = <-wch:
		}
		if !ok {
			if err := ctx.Err(); err != nil {
				return err
			}
			return models.NewError(models.TypeUnavailable, "watch %s: closed by the etcd client", prefix)
		}
		if resp.CompactRevision != 0 || errors.Is(resp.Err(), rpctypes.ErrCompacted) {
			// The start revision is gone, so the events between it and
			// the oldest kept revision can never be replayed.
			return models.NewError(models.TypeCompacted,
				"revision %d has been compacted (oldest available is %d): list again and subscribe after the list's revision",
				startRev, resp.CompactRevision)
		}
		if err := resp.Err(); err != nil || resp.Canceled {
			if ctxErr := ctx.Err(); ctxErr != nil {
				return ctxErr
			}
			// Unavailable, not the etcd error itself: a closing etcd
			// client reports context.Canceled, which a caller would take
			// for its own cancellation instead of a cue to resume.
			if err == nil {
				err = errors.New("cancelled by etcd")
			}
			return models.NewError(models.TypeUnavailable, "watch %s ended: %v", prefix, err)
		}
		for _, ev := range resp.Events {
			evs, err := derive(ev)
			if err != nil {
				return err
			}
			rev := ev.Kv.ModRevision
			for _, e := range evs {
				p, deliver := pos.next(rev)
				if !deliver {
					continue
				}
				// A cancelled subscriber must not be handed more events:
				// it would count them as processed and resume past them.
				if err := ctx.Err(); err != nil {
					return err
				}
				if err := emit(e, p); err != nil {
					return err
				}
			}
		}
	}
}

// positioner numbers the events of one stream. It keeps its count across
// watch responses because etcd may split one revision's events over several
// of them, and it drops the events a resuming client has already processed.
type positioner struct {
	rev  int64
	seq  uint32 // seq of the next event at rev
	skip *models.EventPosition
}

func newPositioner(after *models.EventPosition) *positioner {
	p := &positioner{}
	if after.GetRevision() > 0 {
		p.skip = after
	}
	return p
}

// next returns the position of the next event, which belongs to revision
// rev, and whether to deliver it. Revisions arrive in ascending order.
func (p *positioner) next(rev int64) (*models.EventPosition, bool) {
	if rev != p.rev {
		p.rev, p.seq = rev, 0
	}
	pos := &models.EventPosition{Revision: rev, Seq: p.seq}
	p.seq++
	if p.skip != nil {
		if rev < p.skip.GetRevision() || (rev == p.skip.GetRevision() && pos.Seq <= p.skip.GetSeq()) {
			return pos, false
		}
		p.skip = nil // past the resume point: nothing later can be a repeat
	}
	return pos, true
}
