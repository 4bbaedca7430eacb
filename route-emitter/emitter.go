package routeemitter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/gavel-scheduler/gavel/proto/models"
)

// BBS is the part of the BBS API the emitter reads.
type BBS interface {
	ListDesiredLRPSchedulingInfos(ctx context.Context, in *models.ListDesiredLRPsRequest, opts ...grpc.CallOption) (*models.ListDesiredLRPSchedulingInfosResponse, error)
	GetDesiredLRPSchedulingInfo(ctx context.Context, in *models.GetDesiredLRPRequest, opts ...grpc.CallOption) (*models.GetDesiredLRPSchedulingInfoResponse, error)
	ListActualLRPs(ctx context.Context, in *models.ListActualLRPsRequest, opts ...grpc.CallOption) (*models.ListActualLRPsResponse, error)
	ListDomains(ctx context.Context, in *models.ListDomainsRequest, opts ...grpc.CallOption) (*models.ListDomainsResponse, error)
	SubscribeLRPEvents(ctx context.Context, in *models.SubscribeLRPEventsRequest, opts ...grpc.CallOption) (grpc.ServerStreamingClient[models.LRPEvent], error)
}

// EmitterConfig tunes an Emitter.
type EmitterConfig struct {
	// Table options: local mode's cell, direct instance routes.
	Table Options
	// Resources says where Envoy listens.
	Resources ResourceOptions
	// SyncInterval is the period of full syncs (Diego: 60 s).
	SyncInterval time.Duration
	// CallTimeout bounds each BBS list or get.
	CallTimeout time.Duration
	// ReconnectMin and ReconnectMax bound the pause before reopening a
	// broken event stream (or retrying a failed first sync); it doubles
	// between attempts.
	ReconnectMin, ReconnectMax time.Duration
}

func (c *EmitterConfig) defaults() {
	if c.SyncInterval <= 0 {
		c.SyncInterval = DefaultSyncInterval
	}
	if c.CallTimeout <= 0 {
		c.CallTimeout = DefaultCommunicationTimeout
	}
	if c.ReconnectMin <= 0 {
		c.ReconnectMin = 250 * time.Millisecond
	}
	if c.ReconnectMax < c.ReconnectMin {
		c.ReconnectMax = max(5*time.Second, c.ReconnectMin)
	}
}

// Emitter keeps a routing table in step with the BBS and publishes every
// change: a full sync first (nothing is served before it), then the LRP
// event stream, resumed from its last position when it breaks (and
// listed again when that position was compacted away), and a full sync
// every SyncInterval whose diff is all that is pushed.
type Emitter struct {
	cfg     EmitterConfig
	bbs     BBS
	metrics *Metrics
	logger  *slog.Logger

	// mu guards table: the run loop replaces and updates it under the
	// write lock; Routes reads it under the read lock.
	mu    sync.RWMutex
	table *Table
}

// NewEmitter returns an emitter reading from bbs.
func NewEmitter(cfg EmitterConfig, bbs BBS, metrics *Metrics, logger *slog.Logger) *Emitter {
	cfg.defaults()
	if metrics == nil {
		metrics = NewMetrics(nil)
	}
	if logger == nil {
		logger = slog.Default()
	}
	return &Emitter{cfg: cfg, bbs: bbs, metrics: metrics, logger: logger, table: NewTable(cfg.Table)}
}

// View calls fn with the current table under the read lock; fn must not
// keep it.
func (e *Emitter) View(fn func(*Table)) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	fn(e.table)
}

// listing is one full read of the BBS, with the revision each part was
// read at.
type listing struct {
	desired     []*models.DesiredLRPSchedulingInfo
	actuals     []*models.ActualLRP
	fresh       map[string]bool
	desiredRev  int64
	actualRev   int64
	table       *Table
	started     time.Time
	listElapsed time.Duration
	err         error
}

// thresholds are the revisions up to which a table already reflects each
// kind of record: events at or below them are not applied again.
type thresholds struct{ desired, actual int64 }

func (th thresholds) covers(ev *models.LRPEvent) bool {
	rev := ev.GetPosition().GetRevision()
	switch ev.GetEvent().(type) {
	case *models.LRPEvent_DesiredLrpCreated, *models.LRPEvent_DesiredLrpChanged, *models.LRPEvent_DesiredLrpRemoved:
		return rev <= th.desired
	}
	return rev <= th.actual
}

// list reads everything a table is built from. Desired LRPs are read
// after the actual LRPs in local mode, to ask only for the processes the
// cell runs.
func (e *Emitter) list(ctx context.Context) *listing {
	l := &listing{started: time.Now()}
	call := func(fn func(ctx context.Context) error) error {
		cctx, cancel := context.WithTimeout(ctx, e.cfg.CallTimeout)
		defer cancel()
		return fn(cctx)
	}
	var wg sync.WaitGroup
	var actualErr, domainErr, desiredErr error
	wg.Add(2)
	go func() {
		defer wg.Done()
		actualErr = call(func(ctx context.Context) error {
			resp, err := e.bbs.ListActualLRPs(ctx, &models.ListActualLRPsRequest{CellId: e.cfg.Table.CellID})
			if err != nil {
				return fmt.Errorf("list actual LRPs: %w", err)
			}
			l.actuals, l.actualRev = resp.GetActualLrps(), resp.GetRevision()
			return nil
		})
	}()
	go func() {
		defer wg.Done()
		domainErr = call(func(ctx context.Context) error {
			resp, err := e.bbs.ListDomains(ctx, &models.ListDomainsRequest{})
			if err != nil {
				return fmt.Errorf("list domains: %w", err)
			}
			l.fresh = map[string]bool{}
			for _, d := range resp.GetDomains() {
				l.fresh[d.GetDomain()] = true
			}
			return nil
		})
	}()
	if e.cfg.Table.CellID == "" {
		desiredErr = call(func(ctx context.Context) error { return e.listDesired(ctx, l, nil) })
		wg.Wait()
	} else {
		wg.Wait()
		if actualErr == nil {
			guids := map[string]bool{}
			var list []string
			for _, a := range l.actuals {
				if g := a.GetActualLrpKey().GetProcessGuid(); !guids[g] {
					guids[g] = true
					list = append(list, g)
				}
			}
			if len(list) > 0 {
				desiredErr = call(func(ctx context.Context) error { return e.listDesired(ctx, l, list) })
			}
		}
	}
	if l.err = errors.Join(actualErr, domainErr, desiredErr); l.err != nil {
		return l
	}
	if e.cfg.Table.CellID != "" && l.desiredRev == 0 {
		// Nothing to ask for: no process runs here. The actual list's
		// revision covers desired events up to it as well.
		l.desiredRev = l.actualRev
	}
	l.listElapsed = time.Since(l.started)
	l.table = BuildTable(e.cfg.Table, l.desired, l.actuals)
	return l
}

func (e *Emitter) listDesired(ctx context.Context, l *listing, guids []string) error {
	resp, err := e.bbs.ListDesiredLRPSchedulingInfos(ctx, &models.ListDesiredLRPsRequest{ProcessGuids: guids})
	if err != nil {
		return fmt.Errorf("list desired LRPs: %w", err)
	}
	l.desired, l.desiredRev = resp.GetDesiredLrpSchedulingInfos(), resp.GetRevision()
	return nil
}

// streamItem is what the stream reader hands the loop: an event, or the
// error that ended the stream.
type streamItem struct {
	ev  *models.LRPEvent
	err error
}

// Run publishes to pub until ctx ends. ready is called once the first
// sync is published: from then on pub holds a consistent, complete set of
// resources. A first sync that fails is retried; nothing is published
// until one succeeds.
func (e *Emitter) Run(ctx context.Context, pub *Publisher, ready func()) error {
	wait := e.cfg.ReconnectMin
	var first *listing
	for {
		first = e.list(ctx)
		if first.err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		e.logger.Warn("first sync failed; retrying", "error", first.err, "retry_in", wait.String())
		if !sleep(ctx, wait) {
			return nil
		}
		wait = min(wait*2, e.cfg.ReconnectMax)
	}
	e.install(ctx, pub, first, nil, true)
	ready()

	th := thresholds{desired: first.desiredRev, actual: first.actualRev}
	after := positionAfter(th)
	items := make(chan streamItem, 1024)
	stopStream := e.startStream(ctx, after, items)
	defer func() { stopStream() }()

	ticker := time.NewTicker(e.cfg.SyncInterval)
	defer ticker.Stop()
	syncs := make(chan *listing, 1)
	syncing := false
	var replay []*models.LRPEvent
	wait = e.cfg.ReconnectMin
	for {
		select {
		case <-ctx.Done():
			return nil
		case it := <-items:
			if it.err == nil {
				wait = e.cfg.ReconnectMin
				if p := it.ev.GetPosition(); p != nil {
					after = p
				}
				if th.covers(it.ev) {
					continue
				}
				e.applyEvent(ctx, pub, it.ev)
				if syncing {
					replay = append(replay, it.ev)
				}
				continue
			}
			if ctx.Err() != nil {
				return nil
			}
			stopStream()
			if errors.Is(models.FromStatus(it.err), models.ErrCompacted) {
				// The events since our position are gone: list again
				// and follow from the new lists' revisions.
				e.metrics.StreamRestarts.WithLabelValues("compacted").Inc()
				e.logger.Warn("event stream position compacted; listing again", "after_revision", after.GetRevision(), "error", it.err)
				l := e.list(ctx)
				for l.err != nil {
					if ctx.Err() != nil {
						return nil
					}
					e.logger.Warn("re-list after compaction failed; retrying", "error", l.err, "retry_in", wait.String())
					if !sleep(ctx, wait) {
						return nil
					}
					wait = min(wait*2, e.cfg.ReconnectMax)
					l = e.list(ctx)
				}
				e.install(ctx, pub, l, nil, false)
				th = thresholds{desired: l.desiredRev, actual: l.actualRev}
				after = positionAfter(th)
				replay = nil
			} else {
				e.metrics.StreamRestarts.WithLabelValues("transient").Inc()
				e.logger.Warn("event stream broke; resuming", "after_revision", after.GetRevision(), "after_seq", after.GetSeq(),
					"error", it.err, "retry_in", wait.String())
				if !sleep(ctx, wait) {
					return nil
				}
				wait = min(wait*2, e.cfg.ReconnectMax)
			}
			stopStream = e.startStream(ctx, after, items)
		case <-ticker.C:
			if syncing {
				continue
			}
			syncing, replay = true, nil
			go func() { syncs <- e.list(ctx) }()
		case l := <-syncs:
			syncing = false
			if l.err != nil {
				if ctx.Err() == nil {
					e.logger.Warn("periodic sync failed; keeping the current table", "error", l.err)
				}
				replay = nil
				continue
			}
			e.install(ctx, pub, l, replay, false)
			// Events the loop has yet to receive that the lists already
			// reflect must not be applied twice.
			th = thresholds{desired: max(th.desired, l.desiredRev), actual: max(th.actual, l.actualRev)}
			replay = nil
		}
	}
}

// positionAfter is the stream position after everything both lists saw.
func positionAfter(th thresholds) *models.EventPosition {
	return &models.EventPosition{Revision: min(th.desired, th.actual), Seq: math.MaxUint32}
}

// install swaps in a sync's table: the events applied while the lists ran
// that they do not reflect are applied again to it, the routes of
// processes in stale domains are kept, and only the difference from the
// current table is pushed (everything, on the first sync).
func (e *Emitter) install(ctx context.Context, pub *Publisher, l *listing, replay []*models.LRPEvent, first bool) {
	th := thresholds{desired: l.desiredRev, actual: l.actualRev}
	next := l.table
	for _, ev := range replay {
		if !th.covers(ev) {
			e.fetchIfUnknown(ctx, next, ev)
			next.Apply(ev)
		}
	}
	e.mu.Lock()
	old := e.table
	next.RetainStale(old, l.fresh)
	var u Update
	if first {
		u = Update{Set: e.cfg.Resources.Build(next)}
	} else {
		u = e.cfg.Resources.UpdateFor(next, DiffTables(old, next))
	}
	e.table = next
	e.observeTable(next)
	e.mu.Unlock()
	stats := pub.Apply(u)
	e.metrics.SyncDuration.Observe(time.Since(l.started).Seconds())
	routes, endpoints := next.Counts()
	e.logger.Info("sync installed", "desired_lrps", len(l.desired), "actual_lrps", len(l.actuals), "routes", routes,
		"endpoints", endpoints, "invalid_route_lrps", next.InvalidRouteLRPs(), "list_seconds", l.listElapsed.Seconds(),
		"sync_seconds", time.Since(l.started).Seconds(), "pushed", pushedCount(stats))
}

func pushedCount(s PushStats) int {
	n := 0
	for _, v := range s {
		n += v
	}
	return n
}

func (e *Emitter) observeTable(t *Table) {
	routes, endpoints := t.Counts()
	e.metrics.Routes.Set(float64(routes))
	e.metrics.Endpoints.Set(float64(endpoints))
	e.metrics.InvalidRoutes.Set(float64(t.InvalidRouteLRPs()))
}

// applyEvent applies one event to the current table and pushes what it
// changed.
func (e *Emitter) applyEvent(ctx context.Context, pub *Publisher, ev *models.LRPEvent) {
	e.metrics.Events.WithLabelValues(eventKind(ev)).Inc()
	e.mu.RLock()
	t := e.table
	e.mu.RUnlock()
	// The fetch is I/O: done outside the lock, on the loop that alone
	// writes the table.
	fetched := e.fetchIfUnknown(ctx, t, ev)
	e.mu.Lock()
	d := MergeDiffs(fetched, t.Apply(ev))
	if d == nil {
		e.mu.Unlock()
		return
	}
	u := e.cfg.Resources.UpdateFor(t, d)
	e.observeTable(t)
	e.mu.Unlock()
	if si := desiredOf(ev); si != nil {
		if ds := t.Desired(si.GetDesiredLrpKey().GetProcessGuid()); ds != nil && len(ds.Errors) > 0 {
			e.logger.Warn("desired LRP has invalid routes; serving the rest", "process_guid", ds.ProcessGUID, "errors", errors.Join(routeErrs(ds.Errors)...).Error())
		}
	}
	pub.Apply(u)
}

func routeErrs(rs []RouteError) []error {
	out := make([]error, len(rs))
	for i, r := range rs {
		out[i] = r
	}
	return out
}

func desiredOf(ev *models.LRPEvent) *models.DesiredLRPSchedulingInfo {
	switch e := ev.GetEvent().(type) {
	case *models.LRPEvent_DesiredLrpCreated:
		return e.DesiredLrpCreated.GetDesiredLrp()
	case *models.LRPEvent_DesiredLrpChanged:
		return e.DesiredLrpChanged.GetAfter()
	}
	return nil
}

// fetchIfUnknown reads the DesiredLRP of a RUNNING instance whose process
// the table does not know (in local mode, the first instance of an app on
// this cell), so the instance is routed at once rather than at the next
// sync. A failure is logged; the sync repairs it.
func (e *Emitter) fetchIfUnknown(ctx context.Context, t *Table, ev *models.LRPEvent) Diff {
	var a *models.ActualLRP
	switch x := ev.GetEvent().(type) {
	case *models.LRPEvent_ActualLrpInstanceCreated:
		a = x.ActualLrpInstanceCreated.GetActualLrp()
	case *models.LRPEvent_ActualLrpInstanceChanged:
		a = x.ActualLrpInstanceChanged.GetAfter()
	}
	if a.GetState() != models.ActualLRP_RUNNING {
		return nil
	}
	if cell := e.cfg.Table.CellID; cell != "" && a.GetActualLrpInstanceKey().GetCellId() != cell {
		return nil
	}
	guid := a.GetActualLrpKey().GetProcessGuid()
	e.mu.RLock()
	known := t.Desired(guid) != nil
	e.mu.RUnlock()
	if known {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, e.cfg.CallTimeout)
	defer cancel()
	resp, err := e.bbs.GetDesiredLRPSchedulingInfo(cctx, &models.GetDesiredLRPRequest{ProcessGuid: guid})
	if err != nil {
		if !models.IsNotFound(models.FromStatus(err)) {
			e.logger.Warn("fetch desired LRP of a running instance", "process_guid", guid, "error", err)
		}
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return t.SetDesired(DesiredFrom(resp.GetDesiredLrpSchedulingInfo()))
}

func eventKind(ev *models.LRPEvent) string {
	switch ev.GetEvent().(type) {
	case *models.LRPEvent_DesiredLrpCreated:
		return "desired_created"
	case *models.LRPEvent_DesiredLrpChanged:
		return "desired_changed"
	case *models.LRPEvent_DesiredLrpRemoved:
		return "desired_removed"
	case *models.LRPEvent_ActualLrpInstanceCreated:
		return "actual_created"
	case *models.LRPEvent_ActualLrpInstanceChanged:
		return "actual_changed"
	case *models.LRPEvent_ActualLrpInstanceRemoved:
		return "actual_removed"
	case *models.LRPEvent_ActualLrpCrashed:
		return "actual_crashed"
	}
	return "unknown"
}

// startStream runs readStream until the returned function is called.
func (e *Emitter) startStream(ctx context.Context, after *models.EventPosition, out chan<- streamItem) context.CancelFunc {
	sctx, cancel := context.WithCancel(ctx)
	go e.readStream(sctx, after, out)
	return cancel
}

// readStream follows the LRP event stream after a position, handing each
// event to out; the error that ends the stream is handed over last.
func (e *Emitter) readStream(ctx context.Context, after *models.EventPosition, out chan<- streamItem) {
	send := func(it streamItem) bool {
		select {
		case out <- it:
			return true
		case <-ctx.Done():
			return false
		}
	}
	s, err := e.bbs.SubscribeLRPEvents(ctx, &models.SubscribeLRPEventsRequest{CellId: e.cfg.Table.CellID, After: after})
	if err != nil {
		send(streamItem{err: err})
		return
	}
	for {
		ev, err := s.Recv()
		if err != nil {
			send(streamItem{err: err})
			return
		}
		if !send(streamItem{ev: ev}) {
			return
		}
	}
}

// sleep waits d or until ctx ends; it reports whether the wait completed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
