package events

import (
	"context"
	"errors"
	"log/slog"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/gavel-scheduler/gavel/bbs/db"
	"github.com/gavel-scheduler/gavel/proto/models"
)

// Source serves event streams straight from etcd.
//
// Every subscriber gets its own etcd watch; there is no shared hub fanning one
// watch out to many subscribers. etcd already multiplexes watches cheaply
// (many watchers share one gRPC stream per client and one revision scan per
// store), and a private watch makes resuming from any revision trivially
// correct: the watch simply starts there, with no hub-side history buffer to
// size, lose or get wrong. It also puts backpressure where it belongs: a slow
// subscriber stalls only its own watch, which etcd buffers per watcher.
//
// A Source holds no state of its own, so one value serves any number of
// concurrent streams.
type Source struct {
	Client *clientv3.Client
	Keys   db.Keys
	// Logger receives the opening of each stream at debug level; nil means
	// slog.Default().
	Logger *slog.Logger
}

// LRPEvents streams desired and actual LRP events to send until ctx is done,
// the watch fails, or send returns an error (which is returned as is).
//
// req.After resumes the stream: events up to and including that position are
// skipped, every later one is delivered exactly once. A client that listed at
// revision R and wants only what came after the list passes
// {revision: R, seq: math.MaxUint32}. An unset After (nil or revision 0)
// starts with the next change.
//
// A position older than etcd's compaction yields a TypeCompacted error: the
// client must list again. A watch that ends while ctx is live (the etcd
// member lost its leader or went away, the etcd client closed) yields a
// TypeUnavailable error: the client resumes from the last position it
// processed, through another BBS if need be.
//
// With req.CellId set only the events MatchesCell keeps are sent, and seq
// numbers count the kept events, so positions stay dense for the client.
func (s *Source) LRPEvents(ctx context.Context, req *models.SubscribeLRPEventsRequest, send func(*models.LRPEvent) error) error {
	cellID := req.GetCellId()
	derive := func(ev *clientv3.Event) ([]*models.LRPEvent, error) {
		evs, err := DeriveLRP(s.Keys, ev)
		if err != nil || cellID == "" {
			return evs, err
		}
		kept := evs[:0]
		for _, e := range evs {
			if MatchesCell(e, cellID) {
				kept = append(kept, e)
			}
		}
		return kept, nil
	}
	emit := func(e *models.LRPEvent, pos *models.EventPosition) error {
		e.Position = pos
		return send(e)
	}
	log := s.logger().With("stream", "lrp", "cell_id", cellID)
	return watch(ctx, s.Client, log, s.Keys.LRP(), req.GetAfter(), derive, emit)
}

// TaskEvents streams task events to send until ctx is done, the watch fails,
// or send returns an error (returned as is). req.After resumes the stream as
// for LRPEvents.
func (s *Source) TaskEvents(ctx context.Context, req *models.SubscribeTaskEventsRequest, send func(*models.TaskEvent) error) error {
	derive := func(ev *clientv3.Event) ([]*models.TaskEvent, error) {
		return DeriveTask(s.Keys, ev)
	}
	emit := func(e *models.TaskEvent, pos *models.EventPosition) error {
		e.Position = pos
		return send(e)
	}
	return watch(ctx, s.Client, s.logger().With("stream", "task"), s.Keys.Tasks(), req.GetAfter(), derive, emit)
}

func (s *Source) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
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
	return pump(ctx, wch, prefix, after, derive, emit)
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
