package auctioneer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/gavel-scheduler/gavel/proto/models"
)

// CellAddress is a live cell as discovery knows it.
type CellAddress struct {
	ID      string
	Address string
}

// CellLister lists the cells an auction may use (the auctioneer's gossip
// view; a static list in simulations).
type CellLister interface {
	Cells() []CellAddress
}

// RepClient reaches the reps.
type RepClient interface {
	State(ctx context.Context, addr string) (*models.CellState, error)
	Perform(ctx context.Context, addr string, req *models.PerformRequest) (*models.PerformResponse, error)
}

// Reporter tells the BBS what could not be placed.
type Reporter interface {
	FailLRP(ctx context.Context, key *models.ActualLRPKey, reason string) error
	RejectTask(ctx context.Context, taskGuid, reason string) error
}

// Defaults for EngineConfig.
const (
	DefaultCellStateTimeout     = 10 * time.Second
	DefaultCommunicationTimeout = 10 * time.Second
	DefaultMaxAttempts          = 3
	DefaultWorkers              = 256
	// fetchAttempts: when no cell at all answers, the fetch is repeated
	// this many times in all before the round fails its work.
	fetchAttempts = 4
)

// EngineConfig tunes the auction loop.
type EngineConfig struct {
	// CellStateTimeout bounds each cell's State call: a cell that does
	// not answer in time sits the round out.
	CellStateTimeout time.Duration
	// CommunicationTimeout bounds each Perform and report call.
	CommunicationTimeout time.Duration
	// MaxAttempts is how many rounds a piece of work may be sent to a
	// cell that refuses it before it is reported as failed.
	MaxAttempts int
	// Workers bounds concurrent calls to cells and to the BBS.
	Workers int
}

func (c EngineConfig) withDefaults() EngineConfig {
	if c.CellStateTimeout <= 0 {
		c.CellStateTimeout = DefaultCellStateTimeout
	}
	if c.CommunicationTimeout <= 0 {
		c.CommunicationTimeout = DefaultCommunicationTimeout
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.Workers <= 0 {
		c.Workers = DefaultWorkers
	}
	return c
}

// RoundResult is what one round did.
type RoundResult struct {
	Cells       int
	LRPs        int // instances accepted by a cell
	Tasks       int
	FailedLRPs  []LRPFailure
	FailedTasks []TaskFailure
	Retried     int // refused at commit and queued again
	Lost        int // sent to a cell whose Perform failed in transport
	Duration    time.Duration
}

// Engine runs auctions: work queues while a round runs and forms the next
// batch. It is safe for concurrent use.
type Engine struct {
	cfg      EngineConfig
	cells    CellLister
	reps     RepClient
	reporter Reporter
	metrics  *Metrics
	logger   *slog.Logger
	// OnRound, if set, sees every round's result (simulations, tests).
	OnRound func(RoundResult)

	mu    sync.Mutex // guards lrps, tasks
	lrps  []queued[LRP]
	tasks []queued[Task]
	work  chan struct{} // one slot: "there is work"
}

// queued is work waiting for a round, with the rounds it has been through.
type queued[T any] struct {
	item     T
	attempts int
}

// NewEngine returns an auction engine.
func NewEngine(cfg EngineConfig, cells CellLister, reps RepClient, reporter Reporter, metrics *Metrics, logger *slog.Logger) *Engine {
	if metrics == nil {
		metrics = NewMetrics(nil)
	}
	if logger == nil {
		logger = slog.Default()
	}
	return &Engine{cfg: cfg.withDefaults(), cells: cells, reps: reps, reporter: reporter, metrics: metrics,
		logger: logger, work: make(chan struct{}, 1)}
}

// AddLRPs queues instances for the next round.
func (e *Engine) AddLRPs(reqs []*models.LRPStartRequest) {
	e.mu.Lock()
	for _, r := range reqs {
		for _, l := range LRPsFromRequest(r) {
			e.lrps = append(e.lrps, queued[LRP]{item: l})
		}
	}
	e.mu.Unlock()
	e.signal()
}

// AddTasks queues tasks for the next round.
func (e *Engine) AddTasks(reqs []*models.TaskStartRequest) {
	e.mu.Lock()
	for _, r := range reqs {
		e.tasks = append(e.tasks, queued[Task]{item: TaskFromRequest(r)})
	}
	e.mu.Unlock()
	e.signal()
}

func (e *Engine) signal() {
	select {
	case e.work <- struct{}{}:
	default:
	}
}

// Pending is how much work waits for a round.
func (e *Engine) Pending() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.lrps) + len(e.tasks)
}

// drain takes the queued work, the first request for each instance or
// task winning over later duplicates.
func (e *Engine) drain() ([]queued[LRP], []queued[Task]) {
	e.mu.Lock()
	lrps, tasks := e.lrps, e.tasks
	e.lrps, e.tasks = nil, nil
	e.mu.Unlock()
	seenLRP := make(map[lrpKey]bool, len(lrps))
	outL := lrps[:0]
	for _, q := range lrps {
		if k := q.item.key(); !seenLRP[k] {
			seenLRP[k] = true
			outL = append(outL, q)
		}
	}
	seenTask := make(map[string]bool, len(tasks))
	outT := tasks[:0]
	for _, q := range tasks {
		if !seenTask[q.item.TaskGuid] {
			seenTask[q.item.TaskGuid] = true
			outT = append(outT, q)
		}
	}
	return outL, outT
}

// Clear drops the queued work (when leadership is lost: the new leader
// gets it again from the BBS and convergence).
func (e *Engine) Clear() {
	e.mu.Lock()
	e.lrps, e.tasks = nil, nil
	e.mu.Unlock()
}

// Run runs rounds while there is work, until ctx ends.
func (e *Engine) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-e.work:
		}
		res := e.Round(ctx)
		if e.OnRound != nil {
			e.OnRound(res)
		}
	}
}

// Round runs one auction over everything queued: fetch every cell's
// state, place the batch, send each cell its work, and report what could
// not be placed.
func (e *Engine) Round(ctx context.Context) RoundResult {
	start := time.Now()
	states := e.fetchStates(ctx)
	// Drained after the fetch, so work that arrived meanwhile joins.
	lrps, tasks := e.drain()
	res := RoundResult{Cells: len(states)}
	if len(lrps)+len(tasks) == 0 {
		return res
	}
	e.metrics.BatchSize.Observe(float64(len(lrps) + len(tasks)))
	cells := make([]*Cell, 0, len(states))
	addrs := make(map[string]string, len(states))
	for _, s := range states {
		cells = append(cells, CellFromState(s.state))
		addrs[s.state.CellId] = s.addr
	}
	plan := Schedule(cells, items(lrps), items(tasks))
	res.FailedLRPs, res.FailedTasks = plan.FailedLRPs, plan.FailedTasks
	e.commit(ctx, plan, addrs, lrps, tasks, &res)
	e.report(ctx, res.FailedLRPs, res.FailedTasks)

	res.Duration = time.Since(start)
	e.metrics.AuctionDuration.Observe(res.Duration.Seconds())
	e.metrics.Placements.WithLabelValues("lrp").Add(float64(res.LRPs))
	e.metrics.Placements.WithLabelValues("task").Add(float64(res.Tasks))
	e.logger.Info("auction round", "cells", res.Cells, "lrps_placed", res.LRPs, "tasks_placed", res.Tasks,
		"lrps_failed", len(res.FailedLRPs), "tasks_failed", len(res.FailedTasks), "retried", res.Retried,
		"lost", res.Lost, "duration_ms", res.Duration.Milliseconds())
	return res
}

func items[T any](qs []queued[T]) []T {
	out := make([]T, len(qs))
	for i, q := range qs {
		out[i] = q.item
	}
	return out
}

type cellState struct {
	addr  string
	state *models.CellState
}

// fetchStates asks every listed cell for its state in parallel. A cell
// that errs, times out, is evacuating or answers with another id sits the
// round out. When none answers, the fetch is tried again.
func (e *Engine) fetchStates(ctx context.Context) []cellState {
	start := time.Now()
	defer func() { e.metrics.FetchStatesDuration.Observe(time.Since(start).Seconds()) }()
	var states []cellState
	for attempt := 1; attempt <= fetchAttempts; attempt++ {
		listed := e.cells.Cells()
		if len(listed) == 0 {
			break
		}
		states = e.fetchOnce(ctx, listed)
		if len(states) > 0 || ctx.Err() != nil {
			break
		}
		e.logger.Warn("no cell answered the state fetch", "cells", len(listed), "attempt", attempt)
	}
	e.metrics.Cells.Set(float64(len(states)))
	return states
}

func (e *Engine) fetchOnce(ctx context.Context, listed []CellAddress) []cellState {
	results := make([]*models.CellState, len(listed))
	parallel(e.cfg.Workers, len(listed), func(i int) {
		c := listed[i]
		cctx, cancel := context.WithTimeout(ctx, e.cfg.CellStateTimeout)
		defer cancel()
		st, err := e.reps.State(cctx, c.Address)
		switch {
		case err != nil:
			e.metrics.FailedCellStates.Inc()
			e.logger.Warn("cell state fetch failed", "cell_id", c.ID, "address", c.Address, "error", err)
		case st.CellId != c.ID:
			e.metrics.FailedCellStates.Inc()
			e.logger.Warn("cell answered with another id", "cell_id", c.ID, "address", c.Address, "answered", st.CellId)
		case st.Evacuating:
		default:
			results[i] = st
		}
	})
	out := make([]cellState, 0, len(listed))
	for i, st := range results {
		if st != nil {
			out = append(out, cellState{addr: listed[i].Address, state: st})
		}
	}
	return out
}

// commit sends each cell the work it won. Work a cell refuses goes back in
// the queue until it has had MaxAttempts rounds; then it is reported with
// the cell's reason. Work whose Perform failed in transport is neither
// placed nor failed (the cell may have taken it): convergence finds out.
func (e *Engine) commit(ctx context.Context, plan Plan, addrs map[string]string, lrps []queued[LRP], tasks []queued[Task], res *RoundResult) {
	lrpAttempts := make(map[lrpKey]int, len(lrps))
	for _, q := range lrps {
		lrpAttempts[q.item.key()] = q.attempts
	}
	taskAttempts := make(map[string]int, len(tasks))
	for _, q := range tasks {
		taskAttempts[q.item.TaskGuid] = q.attempts
	}
	reqs := map[string]*models.PerformRequest{}
	byCell := func(id string) *models.PerformRequest {
		r := reqs[id]
		if r == nil {
			r = &models.PerformRequest{CellId: id}
			reqs[id] = r
		}
		return r
	}
	for _, p := range plan.LRPs {
		r := byCell(p.CellID)
		r.Lrps = append(r.Lrps, p.LRP.work())
	}
	for _, p := range plan.Tasks {
		r := byCell(p.CellID)
		r.Tasks = append(r.Tasks, p.Task.work())
	}
	ids := make([]string, 0, len(reqs))
	for id := range reqs {
		ids = append(ids, id)
	}
	type outcome struct {
		resp *models.PerformResponse
		err  error
	}
	outcomes := make([]outcome, len(ids))
	parallel(e.cfg.Workers, len(ids), func(i int) {
		cctx, cancel := context.WithTimeout(ctx, e.cfg.CommunicationTimeout)
		defer cancel()
		resp, err := e.reps.Perform(cctx, addrs[ids[i]], reqs[ids[i]])
		outcomes[i] = outcome{resp, err}
	})

	var retryL []queued[LRP]
	var retryT []queued[Task]
	for i, o := range outcomes {
		req := reqs[ids[i]]
		if o.err != nil {
			e.metrics.CommitErrors.Inc()
			res.Lost += len(req.Lrps) + len(req.Tasks)
			e.logger.Error("perform failed; leaving the work to convergence", "cell_id", ids[i],
				"lrps", len(req.Lrps), "tasks", len(req.Tasks), "error", o.err)
			continue
		}
		res.LRPs += len(req.Lrps) - len(o.resp.FailedLrps)
		res.Tasks += len(req.Tasks) - len(o.resp.FailedTasks)
		for _, f := range o.resp.FailedLrps {
			l := lrpFromWork(f.Work)
			n := lrpAttempts[l.key()] + 1
			if n < e.cfg.MaxAttempts {
				retryL = append(retryL, queued[LRP]{item: l, attempts: n})
				continue
			}
			res.FailedLRPs = append(res.FailedLRPs, LRPFailure{LRP: l, Category: ReasonRefused, Reason: refusal(ids[i], f.Reason)})
		}
		for _, f := range o.resp.FailedTasks {
			t := taskFromWork(f.Work)
			n := taskAttempts[t.TaskGuid] + 1
			if n < e.cfg.MaxAttempts {
				retryT = append(retryT, queued[Task]{item: t, attempts: n})
				continue
			}
			res.FailedTasks = append(res.FailedTasks, TaskFailure{Task: t, Category: ReasonRefused, Reason: refusal(ids[i], f.Reason)})
		}
	}
	if len(retryL)+len(retryT) > 0 {
		res.Retried = len(retryL) + len(retryT)
		e.metrics.Retries.WithLabelValues("lrp").Add(float64(len(retryL)))
		e.metrics.Retries.WithLabelValues("task").Add(float64(len(retryT)))
		e.mu.Lock()
		e.lrps = append(e.lrps, retryL...)
		e.tasks = append(e.tasks, retryT...)
		e.mu.Unlock()
		e.signal()
	}
}

func refusal(cellID, reason string) string {
	return fmt.Sprintf("cell %s refused the work: %s", cellID, reason)
}

func lrpFromWork(w *models.LRPWork) LRP {
	return LRP{ProcessGuid: w.ProcessGuid, Index: w.Index, Domain: w.Domain, Constraint: constraint(w.PlacementConstraint),
		MemoryMB: w.Resource.GetMemoryMb(), DiskMB: w.Resource.GetDiskMb(), MaxPids: w.Resource.GetMaxPids()}
}

func taskFromWork(w *models.TaskWork) Task {
	return Task{TaskGuid: w.TaskGuid, Domain: w.Domain, Constraint: constraint(w.PlacementConstraint),
		MemoryMB: w.Resource.GetMemoryMb(), DiskMB: w.Resource.GetDiskMb(), MaxPids: w.Resource.GetMaxPids()}
}

// report tells the BBS why work was not placed: FailActualLRP keeps the
// instance UNCLAIMED with its placement error (convergence re-auctions it),
// RejectTask sends the task back to PENDING or fails it after its retries.
func (e *Engine) report(ctx context.Context, lrps []LRPFailure, tasks []TaskFailure) {
	for _, f := range lrps {
		e.metrics.Failures.WithLabelValues("lrp", string(f.Category)).Inc()
	}
	for _, f := range tasks {
		e.metrics.Failures.WithLabelValues("task", string(f.Category)).Inc()
	}
	if e.reporter == nil {
		return
	}
	parallel(min(e.cfg.Workers, 32), len(lrps)+len(tasks), func(i int) {
		cctx, cancel := context.WithTimeout(ctx, e.cfg.CommunicationTimeout)
		defer cancel()
		var err error
		if i < len(lrps) {
			f := lrps[i]
			err = e.reporter.FailLRP(cctx, &models.ActualLRPKey{ProcessGuid: f.LRP.ProcessGuid, Index: f.LRP.Index, Domain: f.LRP.Domain}, f.Reason)
		} else {
			f := tasks[i-len(lrps)]
			err = e.reporter.RejectTask(cctx, f.Task.TaskGuid, f.Reason)
		}
		// A row that moved on (claimed elsewhere, deleted) is not news.
		if err != nil && !errors.Is(err, models.ErrResourceNotFound) && !errors.Is(err, models.ErrActualLRPCannotBeFailed) &&
			!errors.Is(err, models.ErrInvalidStateTransition) {
			e.logger.Warn("report placement failure", "error", err)
		}
	})
}

// parallel runs fn(0..n-1) on at most workers goroutines and waits.
func parallel(workers, n int, fn func(i int)) {
	if n == 0 {
		return
	}
	workers = min(workers, n)
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				fn(i)
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}
