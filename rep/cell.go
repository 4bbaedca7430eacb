package rep

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gavel-scheduler/gavel/executor"
	"github.com/gavel-scheduler/gavel/proto/models"
)

// Defaults for CellConfig (Diego's rep defaults).
const (
	DefaultPollInterval           = 30 * time.Second
	DefaultEvacuationPollInterval = 10 * time.Second
	DefaultEvacuationTimeout      = 10 * time.Minute
	DefaultWorkers                = 32
)

// CellConfig tunes the reconciliation of a cell.
type CellConfig struct {
	CellID string
	Zone   string
	// PollInterval is the bulk sync period; EvacuationPollInterval
	// replaces it while the cell evacuates.
	PollInterval           time.Duration
	EvacuationPollInterval time.Duration
	// EvacuationTimeout bounds the drain: instances still here then are
	// left to convergence.
	EvacuationTimeout time.Duration
	// Workers bounds concurrent container operations.
	Workers int
}

func (c CellConfig) withDefaults() CellConfig {
	if c.PollInterval <= 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.EvacuationPollInterval <= 0 {
		c.EvacuationPollInterval = DefaultEvacuationPollInterval
	}
	if c.EvacuationTimeout <= 0 {
		c.EvacuationTimeout = DefaultEvacuationTimeout
	}
	if c.Workers <= 0 {
		c.Workers = DefaultWorkers
	}
	return c
}

// SyncStats is what one bulk sync saw and queued.
type SyncStats struct {
	Containers int
	ActualLRPs int
	Tasks      int
	// Orphans are BBS records of this cell without a container here.
	Orphans  int
	Duration time.Duration
}

// Cell reconciles a cell's containers with the BBS: every executor event
// and a bulk sync every PollInterval queue container operations (claim,
// run, start, crash, remove; start, complete, reject), and BBS records of
// the cell with no container here are cleaned up. It also runs the cell's
// evacuation. It is an ifrit runner.
type Cell struct {
	cfg    CellConfig
	bbs    models.BBSClient
	exec   Executor
	proc   *processor
	queue  *opQueue
	logger *slog.Logger

	syncDuration prometheus.Histogram
	evacuations  prometheus.Gauge

	mu             sync.Mutex // guards evacuating, evacuationDone
	evacuating     bool
	evacuationDone bool
	evacuate       chan struct{} // one slot: evacuation began
	// syncNow asks the loop for a bulk sync before the next tick.
	syncNow chan struct{}
}

// NewCell returns the reconciler of one cell.
func NewCell(cfg CellConfig, bbs models.BBSClient, exec Executor, reg prometheus.Registerer, logger *slog.Logger) *Cell {
	cfg = cfg.withDefaults()
	if logger == nil {
		logger = slog.Default()
	}
	c := &Cell{cfg: cfg, bbs: bbs, exec: exec, queue: newOpQueue(), logger: logger,
		evacuate: make(chan struct{}, 1), syncNow: make(chan struct{}, 1),
		syncDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "gavel_rep_bulk_sync_duration_seconds",
			Help:    "Time of one bulk sync: listing the cell's containers and its BBS records and queueing their reconciliation.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}),
		evacuations: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gavel_rep_evacuating",
			Help: "1 while the cell evacuates or has evacuated.",
		}),
	}
	if reg != nil {
		reg.MustRegister(c.syncDuration, c.evacuations)
	}
	c.proc = &processor{cellID: cfg.CellID, zone: cfg.Zone, bbs: bbs, exec: exec, evacuating: c.Evacuating,
		overrides: newOverrides(), logger: logger}
	return c
}

// Evacuating reports whether the cell evacuates (or has).
func (c *Cell) Evacuating() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.evacuating
}

// Evacuate starts the cell's evacuation; it reports whether it had begun
// already.
func (c *Cell) Evacuate() bool {
	c.mu.Lock()
	already := c.evacuating
	c.evacuating = true
	c.mu.Unlock()
	if !already {
		c.evacuations.Set(1)
		c.logger.Info("evacuating: handing instances over to other cells")
		select {
		case c.evacuate <- struct{}{}:
		default:
		}
	}
	return already
}

// Run implements ifrit.Runner: ready once the first bulk sync is queued.
func (c *Cell) Run(signals <-chan os.Signal, ready chan<- struct{}) error {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { c.queue.run(ctx, c.cfg.Workers) })
	sub, err := c.exec.SubscribeToEvents(ctx)
	if err != nil {
		return err
	}
	wg.Go(func() { c.consume(ctx, sub) })
	c.Sync(ctx)
	close(ready)

	timer := time.NewTimer(c.cfg.PollInterval)
	defer timer.Stop()
	var deadline <-chan time.Time
	for {
		select {
		case <-signals:
			return nil
		case <-c.evacuate:
			deadline = time.After(c.cfg.EvacuationTimeout)
		case <-c.syncNow:
		case <-timer.C:
		case <-deadline:
			c.logger.Warn("evacuation timed out; leaving the remaining instances to convergence", "timeout", c.cfg.EvacuationTimeout)
			deadline = nil
			c.markEvacuated()
		}
		c.Sync(ctx)
		if deadline != nil && c.drained(ctx) {
			c.logger.Info("evacuation complete: no instance left on the cell")
			deadline = nil
			c.markEvacuated()
		}
		interval := c.cfg.PollInterval
		if c.Evacuating() {
			interval = c.cfg.EvacuationPollInterval
		}
		timer.Reset(interval)
	}
}

func (c *Cell) markEvacuated() {
	c.mu.Lock()
	c.evacuationDone = true
	c.mu.Unlock()
}

// EvacuationDone reports whether the evacuation has finished (drained or
// timed out).
func (c *Cell) EvacuationDone() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.evacuationDone
}

// drained: no LRP container is left (tasks are not migrated; they finish
// where they are).
func (c *Cell) drained(ctx context.Context) bool {
	lrps, err := c.exec.ListContainers(ctx, executor.Tags{TagLifecycle: LifecycleLRP})
	return err == nil && len(lrps) == 0
}

// consume queues an operation for every container event. A subscription
// that overflowed missed events: subscribe again and resynchronise.
func (c *Cell) consume(ctx context.Context, sub *executor.Subscription) {
	for {
		ev, err := sub.Next(ctx)
		if err == nil {
			guid := ev.Container.Guid
			c.queue.push(guid, func(ctx context.Context) { c.proc.process(ctx, guid) })
			continue
		}
		sub.Close()
		if ctx.Err() != nil || errors.Is(err, executor.ErrClosed) {
			return
		}
		c.logger.Warn("container events lost; resubscribing and syncing", "error", err)
		for {
			if sub, err = c.exec.SubscribeToEvents(ctx); err == nil {
				break
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
		select {
		case c.syncNow <- struct{}{}:
		default:
		}
	}
}

// Sync compares the cell's containers with the BBS records of the cell and
// queues the repairs: every container is reconciled; an instance record
// with no container is removed, a running task with no container is
// failed.
func (c *Cell) Sync(ctx context.Context) (st SyncStats) {
	start := time.Now()
	defer func() {
		st.Duration = time.Since(start)
		c.syncDuration.Observe(st.Duration.Seconds())
	}()
	containers, err := c.exec.ListContainers(ctx, nil)
	if err != nil {
		c.logger.Warn("bulk sync: list containers", "error", err)
		return st
	}
	actuals, err := c.bbs.ListActualLRPs(ctx, &models.ListActualLRPsRequest{CellId: c.cfg.CellID})
	if err != nil {
		c.logger.Warn("bulk sync: list actual LRPs", "error", err)
		return st
	}
	tasks, err := c.bbs.ListTasks(ctx, &models.ListTasksRequest{CellId: c.cfg.CellID})
	if err != nil {
		c.logger.Warn("bulk sync: list tasks", "error", err)
		return st
	}
	st.Containers, st.ActualLRPs, st.Tasks = len(containers), len(actuals.ActualLrps), len(tasks.Tasks)
	have := make(map[string]bool, len(containers))
	for _, ctr := range containers {
		have[ctr.Guid] = true
		guid := ctr.Guid
		c.queue.push(guid, func(ctx context.Context) { c.proc.process(ctx, guid) })
	}
	c.proc.overrides.retain(have)
	evacuatingRows := map[string]bool{}
	for _, a := range actuals.ActualLrps {
		if a.Presence == models.ActualLRP_EVACUATING {
			evacuatingRows[a.InstanceGuid()] = true
		}
	}
	for _, a := range actuals.ActualLrps {
		ig := a.InstanceGuid()
		if ig == "" || have[ig] {
			continue
		}
		st.Orphans++
		row := a
		if row.Presence == models.ActualLRP_EVACUATING {
			c.queue.push("evacuating/"+ig, func(ctx context.Context) { c.removeEvacuating(ctx, row) })
			continue
		}
		// Checked again when the operation runs: a container reserved
		// since the list was read must not lose its record.
		c.queue.push(ig, func(ctx context.Context) { c.removeOrphan(ctx, row) })
	}
	for _, t := range tasks.Tasks {
		if t.State != models.Task_RUNNING || have[t.TaskGuid] {
			continue
		}
		st.Orphans++
		guid := t.TaskGuid
		c.queue.push(guid, func(ctx context.Context) { c.failOrphanTask(ctx, guid) })
	}
	if st.Orphans > 0 {
		c.logger.Info("bulk sync: records without a container", "orphans", st.Orphans)
	}
	return st
}

func (c *Cell) stillAbsent(ctx context.Context, guid string) bool {
	_, err := c.exec.GetContainer(ctx, guid)
	return errors.Is(err, executor.ErrContainerNotFound)
}

func (c *Cell) removeOrphan(ctx context.Context, a *models.ActualLRP) {
	if !c.stillAbsent(ctx, a.InstanceGuid()) {
		return
	}
	log := c.logger.With("process_guid", a.ProcessGuid(), "index", a.Index(), "instance_guid", a.InstanceGuid())
	_, err := c.bbs.RemoveActualLRP(ctx, &models.RemoveActualLRPRequest{ProcessGuid: a.ProcessGuid(), Index: a.Index(), ActualLrpInstanceKey: a.ActualLrpInstanceKey})
	if err != nil && !isNotFound(err) && !isRefused(err) {
		log.Warn("remove instance without a container", "error", err)
		return
	}
	log.Info("removed instance without a container", "presence", a.Presence.String())
}

func (c *Cell) removeEvacuating(ctx context.Context, a *models.ActualLRP) {
	if !c.stillAbsent(ctx, a.InstanceGuid()) {
		return
	}
	_, err := c.bbs.RemoveEvacuatingActualLRP(ctx, &models.RemoveEvacuatingActualLRPRequest{ActualLrpKey: a.ActualLrpKey, ActualLrpInstanceKey: a.ActualLrpInstanceKey})
	if err != nil && !isNotFound(err) && !isRefused(err) {
		c.logger.Warn("remove evacuating instance without a container", "instance_guid", a.InstanceGuid(), "error", err)
	}
}

func (c *Cell) failOrphanTask(ctx context.Context, guid string) {
	if !c.stillAbsent(ctx, guid) {
		return
	}
	log := c.logger.With("task_guid", guid)
	if c.proc.completeTask(ctx, log, guid, true, reasonNoContainer, "") {
		log.Info("failed a running task without a container")
	}
}
