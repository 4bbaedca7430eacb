package converger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"google.golang.org/grpc"

	"github.com/gavel-scheduler/gavel/proto/models"
)

// MaxSnapshotBytes bounds the snapshot message a converger accepts: 100k
// actual LRPs are ~35 MB, far over gRPC's 4 MiB default.
const MaxSnapshotBytes = 1 << 30

// Converger plans and runs convergence passes.
type Converger struct {
	BBS      models.BBSClient
	Executor *Executor
	Settings Settings
	// Name is stored with the converger's memory, naming who saved it.
	Name string
	// PassTimeout bounds one pass (none when zero).
	PassTimeout time.Duration
	// Now is the clock (time.Now when nil); tests move it.
	Now     func() time.Time
	Metrics *Metrics
	Logger  *slog.Logger
}

func (c *Converger) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Converger) logger() *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return slog.Default()
}

// Snapshot reads what the next pass would plan from.
func (c *Converger) Snapshot(ctx context.Context) (Snapshot, error) {
	resp, err := c.BBS.ConvergenceSnapshot(ctx, &models.ConvergenceSnapshotRequest{}, grpc.MaxCallRecvMsgSize(MaxSnapshotBytes))
	if err != nil {
		return Snapshot{}, fmt.Errorf("convergence snapshot: %w", models.FromStatus(err))
	}
	return NewSnapshot(resp, c.now()), nil
}

// Plan reads a snapshot and plans a pass over it without acting.
func (c *Converger) Plan(ctx context.Context) (*Plan, error) {
	s, err := c.Snapshot(ctx)
	if err != nil {
		return nil, err
	}
	p := Calculate(s, c.Settings)
	p.State.Leader = c.Name
	return p, nil
}

// Pass runs one convergence pass: snapshot, plan, repairs, auctions.
func (c *Converger) Pass(ctx context.Context) (*Plan, *Report, error) {
	start := time.Now()
	if c.PassTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.PassTimeout)
		defer cancel()
	}
	p, r, err := c.pass(ctx)
	if c.Metrics != nil {
		c.Metrics.PassDuration.Observe(time.Since(start).Seconds())
		result := "ok"
		if err != nil {
			result = "error"
		}
		c.Metrics.Passes.WithLabelValues(result).Inc()
	}
	return p, r, err
}

func (c *Converger) pass(ctx context.Context) (*Plan, *Report, error) {
	p, err := c.Plan(ctx)
	if err != nil {
		return nil, nil, err
	}
	if c.Metrics != nil {
		c.Metrics.observePlan(p)
	}
	logger := c.logger()
	if p.Cells.GuardRaised {
		logger.Error("mass-failure guard raised: replacing nothing for the held cells until they return or an operator runs `gavel converge --confirm-cell-loss`",
			"held_cells", p.Cells.Held, "wave_share", p.Cells.WaveShare, "threshold", p.Settings.GuardThreshold,
			"cells_present", p.Cells.Present, "held_instances", p.Counts.HeldInstances, "held_tasks", p.Counts.HeldTasks)
	}
	if len(p.Cells.Confirmed) > 0 {
		logger.Warn("acting on cells whose loss an operator confirmed", "cell_ids", p.Cells.Confirmed)
	}
	if len(p.Suspect)+len(p.UnclaimLost)+len(p.FailOnLostCell)+len(p.RemoveEvacuating) > 0 {
		logger.Info("replacing the work of lost cells", "cell_ids", p.Cells.Lost,
			"suspect", len(p.Suspect), "unclaim", len(p.UnclaimLost), "tasks", len(p.FailOnLostCell))
	}
	r, err := c.Executor.Execute(ctx, p)
	if err != nil {
		return p, r, err
	}
	if r.AuctionError != nil {
		logger.Warn("auction requests not sent; a later pass sends them again", "error", r.AuctionError)
	}
	logger.Info("convergence pass", "revision", p.Revision, "actual_lrps", p.Counts.Unclaimed+p.Counts.Claimed+p.Counts.Running+p.Counts.Crashed,
		"missing", p.Counts.Missing, "extra", p.Counts.Extra, "crashed", p.Counts.Crashed,
		"suspect_running", p.Counts.SuspectRunning, "suspect_claimed", p.Counts.SuspectClaimed,
		"cells_present", p.Cells.Present, "cells_lost", len(p.Cells.Lost), "cells_held", len(p.Cells.Held),
		"lrp_auctions", r.LRPAuctions, "task_auctions", r.TaskAuctions, "actions", actionSummary(r))
	return p, r, nil
}

func actionSummary(r *Report) map[string]string {
	out := make(map[string]string, len(r.Actions))
	for k, c := range r.Actions {
		out[k] = fmt.Sprintf("%d applied, %d skipped, %d failed", c.Applied, c.Skipped, c.Failed)
	}
	return out
}

// Loop tunes Run.
type Loop struct {
	// Interval between passes (30 s).
	Interval time.Duration
	// LossDelay is how long a pass waits after a cell-loss signal, so cells
	// cut off together (their presences lapse within one refresh interval
	// of each other) are seen together by the guard.
	LossDelay time.Duration
}

// Run runs a pass at once, then every Interval, after LossDelay when a
// signal arrives on losses, and at once on nudges (a cell that came back, an
// operator's confirmation). A failed pass is logged; Run returns when ctx
// ends.
func (c *Converger) Run(ctx context.Context, loop Loop, losses, nudges <-chan struct{}) error {
	if loop.Interval <= 0 {
		return errors.New("converger: interval must be positive")
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	var delay <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-losses:
			if delay == nil {
				delay = time.After(loop.LossDelay)
			}
			continue
		case <-nudges:
		case <-delay:
		case <-timer.C:
		}
		delay = nil
		if _, _, err := c.Pass(ctx); err != nil && ctx.Err() == nil {
			c.logger().Warn("convergence pass failed", "error", err)
		}
		timer.Reset(loop.Interval)
	}
}
