package converger

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/gavel-scheduler/gavel/proto/models"
)

// AuctionRequester sends start requests to the elected auctioneer
// (auctioneer.Client).
type AuctionRequester interface {
	RequestLRPAuctions(ctx context.Context, reqs []*models.LRPStartRequest) error
	RequestTaskAuctions(ctx context.Context, reqs []*models.TaskStartRequest) error
}

// Executor carries out plans through the BBS and the auctioneer.
type Executor struct {
	BBS models.BBSClient
	// Auctions may be nil: instances left UNCLAIMED are then auctioned by a
	// later pass once an auctioneer answers.
	Auctions AuctionRequester
	Metrics  *Metrics
	Logger   *slog.Logger
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
// by rule, and sends every start request of the pass as one batch of LRPs
// and one of tasks. Storing the memory first fences a converger that is no
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
