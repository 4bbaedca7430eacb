package converger

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/gavel-scheduler/gavel/proto/models"
)

// AuctionRequester sends start requests to the elected auctioneer
// (auctioneer.Client).
type AuctionRequester interface {
	RequestLRPAuctions(ctx context.Context, reqs []*models.LRPStartRequest) error
	RequestTaskAuctions(ctx context.Context, reqs []*models.TaskStartRequest) error
}

// CellUpdater reaches the rep of a present cell to give an instance new
// internal routes and metric tags (rep.Client).
type CellUpdater interface {
	UpdateLRPInstance(ctx context.Context, cell *models.CellPresence, key *models.ActualLRPKey, ik *models.ActualLRPInstanceKey,
		routes []*models.ActualLRPInternalRoute, tags map[string]string) error
}

// ActionUpdateInstance names the rep updates of §6.1.13 and §6.1.14 in
// reports, metrics and printed plans.
const ActionUpdateInstance = "update_lrp_instance"

// Limits on a pass's rep updates: Diego's convergence_workers and
// communication_timeout.
const (
	updateWorkers = 20
	updateTimeout = 10 * time.Second
)

// Executor carries out plans through the BBS, the auctioneer and the reps.
type Executor struct {
	BBS models.BBSClient
	// Auctions may be nil: instances left UNCLAIMED are then auctioned by a
	// later pass once an auctioneer answers.
	Auctions AuctionRequester
	// Cells may be nil: instance updates then fail, and a later pass tries
	// again.
	Cells   CellUpdater
	Metrics *Metrics
	Logger  *slog.Logger
}

// ActionCounts are the results of one kind of action.
type ActionCounts struct {
	Applied, Skipped, Failed int
}

// Report is what a plan's execution did.
type Report struct {
	// Actions by request field name ("suspect", "expire_pending"...).
	Actions map[string]*ActionCounts
	// LRPAuctions and TaskAuctions are the instances and tasks sent to the
	// auctioneer.
	LRPAuctions, TaskAuctions int
	// AuctionError is why the auctioneer could not be asked, if it could
	// not (the repairs themselves are stored regardless).
	AuctionError error
}

func (r *Report) count(o *models.ConvergenceOutcome) {
	c := r.Actions[o.Action]
	if c == nil {
		c = &ActionCounts{}
		r.Actions[o.Action] = c
	}
	switch o.Result {
	case models.ConvergenceOutcome_APPLIED:
		c.Applied++
	case models.ConvergenceOutcome_SKIPPED:
		c.Skipped++
	default:
		c.Failed++
	}
}

// Execute stores the plan's memory of the cells, applies the repairs rule
// by rule, asks the reps to update instances whose internal routes or
// metric tags drifted, and sends every start request of the pass as one
// batch of LRPs and one of tasks. Storing the memory first fences a converger that is no
// longer the only one: if another saved since this plan's snapshot, the save
// is refused and nothing is done.
func (e *Executor) Execute(ctx context.Context, p *Plan) (*Report, error) {
	logger := e.Logger
	if logger == nil {
		logger = slog.Default()
	}
	if _, err := e.BBS.SaveConvergerState(ctx, &models.SaveConvergerStateRequest{State: p.State}); err != nil {
		return nil, fmt.Errorf("save converger state: %w", models.FromStatus(err))
	}
	r := &Report{Actions: make(map[string]*ActionCounts)}
	auction := make([]*models.ActualLRPKey, 0, len(p.StaleUnclaimed))
	for _, a := range p.StaleUnclaimed {
		auction = append(auction, a.GetActualLrpKey())
	}
	outcome := func(o *models.ConvergenceOutcome) {
		r.count(o)
		if e.Metrics != nil {
			e.Metrics.observeOutcome(o)
		}
		if o.Result == models.ConvergenceOutcome_FAILED {
			logger.Warn("convergence action failed", "action", o.Action, "process_guid", o.GetActualLrpKey().GetProcessGuid(),
				"index", o.GetActualLrpKey().GetIndex(), "task_guid", o.TaskGuid, "reason", o.Reason)
		}
		for _, i := range o.AuctionIndices {
			auction = append(auction, &models.ActualLRPKey{ProcessGuid: o.GetActualLrpKey().GetProcessGuid(), Index: i})
		}
	}
	for _, req := range p.LRPRequests() {
		resp, err := e.BBS.ConvergeLRPs(ctx, req)
		if err != nil {
			return r, fmt.Errorf("converge LRPs: %w", models.FromStatus(err))
		}
		for _, o := range resp.Outcomes {
			outcome(o)
		}
	}
	for _, req := range p.TaskRequests() {
		resp, err := e.BBS.ConvergeTasks(ctx, req)
		if err != nil {
			return r, fmt.Errorf("converge tasks: %w", models.FromStatus(err))
		}
		for _, o := range resp.Outcomes {
			outcome(o)
		}
	}

	if r, ok := e.Cells.(interface{ Retain(addrs map[string]bool) }); ok {
		// Connections to reps of cells that left are closed (rep.Client).
		addrs := make(map[string]bool, len(p.cells))
		for _, c := range p.cells {
			addrs[c.GetRepAddress()] = true
		}
		r.Retain(addrs)
	}
	for _, o := range e.updateInstances(ctx, p.UpdateInstances) {
		outcome(o)
	}

	lrps := p.startRequests(auction)
	tasks := make([]*models.TaskStartRequest, len(p.AuctionTasks))
	for i, t := range p.AuctionTasks {
		tasks[i] = t.TaskStartRequest()
	}
	for _, l := range lrps {
		r.LRPAuctions += len(l.Indices)
	}
	r.TaskAuctions = len(tasks)
	if len(lrps)+len(tasks) > 0 && e.Auctions == nil {
		r.AuctionError = fmt.Errorf("no auctioneer configured")
	}
	if len(lrps) > 0 && e.Auctions != nil {
		if err := e.Auctions.RequestLRPAuctions(ctx, lrps); err != nil {
			r.AuctionError = fmt.Errorf("request LRP auctions: %w", err)
		}
	}
	if len(tasks) > 0 && e.Auctions != nil {
		if err := e.Auctions.RequestTaskAuctions(ctx, tasks); err != nil {
			r.AuctionError = fmt.Errorf("request task auctions: %w", err)
		} else if e.Metrics != nil {
			e.Metrics.TasksKicked.WithLabelValues("auction").Add(float64(len(tasks)))
		}
	}
	return r, nil
}

// updateInstances asks the reps to update the drifted instances, at most
// updateWorkers at once, and reports one outcome per instance in plan
// order. An update changes no BBS state: the cell's StartActualLRP does.
func (e *Executor) updateInstances(ctx context.Context, updates []InstanceUpdate) []*models.ConvergenceOutcome {
	out := make([]*models.ConvergenceOutcome, len(updates))
	sem := make(chan struct{}, updateWorkers)
	var wg sync.WaitGroup
	for i, u := range updates {
		o := &models.ConvergenceOutcome{Action: ActionUpdateInstance, ActualLrpKey: u.Actual.GetActualLrpKey(), Result: models.ConvergenceOutcome_APPLIED}
		out[i] = o
		if e.Cells == nil {
			o.Result, o.Reason = models.ConvergenceOutcome_FAILED, "no rep client configured"
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(ctx, updateTimeout)
			defer cancel()
			if err := e.Cells.UpdateLRPInstance(ctx, u.Cell, u.Actual.GetActualLrpKey(), u.Actual.GetActualLrpInstanceKey(), u.InternalRoutes, u.MetricTags); err != nil {
				o.Result, o.Reason = models.ConvergenceOutcome_FAILED, err.Error()
			}
		})
	}
	wg.Wait()
	return out
}
