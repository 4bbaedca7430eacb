package bbs

import (
	"context"
	"sync"

	"github.com/gavel-scheduler/gavel/bbs/db"
	"github.com/gavel-scheduler/gavel/proto/models"
)

// convergeWorkers bounds the actions of one Converge call in flight; enough
// for the store's group commit to fill its batches.
const convergeWorkers = 32

// ConvergenceSnapshot returns everything a convergence pass plans from, read
// at one revision.
func (s *Server) ConvergenceSnapshot(ctx context.Context, _ *models.ConvergenceSnapshotRequest) (*models.ConvergenceSnapshotResponse, error) {
	return s.store.ConvergenceSnapshot(ctx)
}

// SaveConvergerState stores the converger leader's memory between passes.
func (s *Server) SaveConvergerState(ctx context.Context, req *models.SaveConvergerStateRequest) (*models.SaveConvergerStateResponse, error) {
	if err := s.store.SaveConvergerState(ctx, req.State); err != nil {
		return nil, err
	}
	return &models.SaveConvergerStateResponse{}, nil
}

// ConfirmCellLoss records an operator's go-ahead for the converger to act on
// cells its mass-failure guard holds.
func (s *Server) ConfirmCellLoss(ctx context.Context, req *models.ConfirmCellLossRequest) (*models.ConfirmCellLossResponse, error) {
	conf, err := s.store.ConfirmCellLoss(ctx, req.CellIds)
	if err != nil {
		return nil, err
	}
	s.logger.Warn("cell loss confirmed by an operator", "cell_ids", conf.CellIds)
	return &models.ConfirmCellLossResponse{Confirmation: conf}, nil
}

// ConvergeLRPs carries out the LRP half of a convergence plan, rule by rule
// in the order of the request; the actions of one rule run concurrently.
func (s *Server) ConvergeLRPs(ctx context.Context, req *models.ConvergeLRPsRequest) (*models.ConvergeResponse, error) {
	var out []*models.ConvergenceOutcome
	rows := func(action string, list []*models.ActualLRP, fn func(a *models.ActualLRP) ([]int32, error)) {
		out = append(out, parallelOutcomes(len(list), func(i int) *models.ConvergenceOutcome {
			auction, err := fn(list[i])
			return lrpOutcome(action, list[i].GetActualLrpKey(), err, auction)
		})...)
	}
	index := func(a *models.ActualLRP) []int32 { return []int32{a.Index()} }

	rows("remove_evacuating", req.RemoveEvacuating, func(a *models.ActualLRP) ([]int32, error) {
		return nil, s.store.RemoveEvacuatingOnLostCell(ctx, a)
	})
	rows("suspect", req.Suspect, func(a *models.ActualLRP) ([]int32, error) {
		if _, err := s.store.SuspectActualLRP(ctx, a); err != nil {
			return nil, err
		}
		return index(a), nil
	})
	rows("unclaim_lost", req.UnclaimLost, func(a *models.ActualLRP) ([]int32, error) {
		if err := s.store.UnclaimLostActualLRP(ctx, a); err != nil {
			return nil, err
		}
		return index(a), nil
	})
	out = append(out, parallelOutcomes(len(req.CreateMissing), func(i int) *models.ConvergenceOutcome {
		m := req.CreateMissing[i]
		created, err := s.store.CreateMissingActualLRPs(ctx, m.ProcessGuid, m.DesiredModificationTag, m.Indices)
		key := &models.ActualLRPKey{ProcessGuid: m.ProcessGuid, Domain: m.Domain}
		if err != nil && len(created) == 0 {
			return lrpOutcome("create_missing", key, err, nil)
		}
		if err != nil {
			s.logger.Warn("create missing instances: some not created", "process_guid", m.ProcessGuid, "error", err)
		}
		return lrpOutcome("create_missing", key, nil, indicesOf(created))
	})...)
	out = append(out, parallelOutcomes(len(req.Retire), func(i int) *models.ConvergenceOutcome {
		r := req.Retire[i]
		return lrpOutcome("retire", r.ActualLrp.GetActualLrpKey(), s.convergeRetire(ctx, r), nil)
	})...)
	out = append(out, parallelOutcomes(len(req.RemoveOrphanedSuspect), func(i int) *models.ConvergenceOutcome {
		r := req.RemoveOrphanedSuspect[i]
		err := s.store.RemoveOrphanedSuspectActualLRP(ctx, r.ActualLrp, r.DesiredModificationTag)
		return lrpOutcome("remove_orphaned_suspect", r.ActualLrp.GetActualLrpKey(), err, nil)
	})...)
	rows("remove_extra_suspect", req.RemoveExtraSuspect, func(a *models.ActualLRP) ([]int32, error) {
		return nil, s.store.RemoveExtraSuspectActualLRP(ctx, a)
	})
	rows("promote_suspect", req.PromoteSuspect, func(a *models.ActualLRP) ([]int32, error) {
		replaced, err := s.store.PromoteSuspectActualLRP(ctx, a)
		if err == nil {
			s.stopReplaced(ctx, replaced)
		}
		return nil, err
	})
	rows("restart_crashed", req.RestartCrashed, func(a *models.ActualLRP) ([]int32, error) {
		if err := s.store.RestartCrashedActualLRP(ctx, a); err != nil {
			return nil, err
		}
		return index(a), nil
	})
	return &models.ConvergeResponse{Outcomes: out}, nil
}

// convergeRetire retires an extra or orphaned ORDINARY instance: an
// unplaced or crashed row is deleted; a claimed or running one goes the
// RetireActualLRP way (its cell stops it, or the row is deleted when its
// cell is gone), once the desired LRP is confirmed not to want it.
func (s *Server) convergeRetire(ctx context.Context, r *models.ActualLRPRetirement) error {
	row := r.ActualLrp
	switch row.State {
	case models.ActualLRP_UNCLAIMED, models.ActualLRP_CRASHED:
		return s.store.RetireUnplacedActualLRP(ctx, row, r.DesiredModificationTag)
	}
	if _, err := s.store.RetirementCondition(ctx, row, r.DesiredModificationTag); err != nil {
		return err
	}
	return s.retire(ctx, row)
}

// stopReplaced asks the cell of a replacement deleted by a promotion to stop
// its container. Best effort: the rep's own sync finds a container whose row
// names another instance and stops it anyway.
func (s *Server) stopReplaced(ctx context.Context, replaced *models.ActualLRP) {
	if replaced == nil || s.cells == nil {
		return
	}
	if replaced.State != models.ActualLRP_CLAIMED && replaced.State != models.ActualLRP_RUNNING {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), requestTimeout)
	defer cancel()
	cell, err := s.store.Cell(ctx, replaced.CellID())
	if err != nil {
		return
	}
	if err := s.cells.StopLRPInstance(ctx, cell, replaced.ActualLrpKey, replaced.ActualLrpInstanceKey); err != nil {
		s.logger.Warn("stop replacement of a promoted suspect", "process_guid", replaced.ProcessGuid(),
			"index", replaced.Index(), "cell_id", replaced.CellID(), "error", err)
	}
}

// ConvergeTasks carries out the task half of a convergence plan, rule by
// rule in the order of the request.
func (s *Server) ConvergeTasks(ctx context.Context, req *models.ConvergeTasksRequest) (*models.ConvergeResponse, error) {
	var out []*models.ConvergenceOutcome
	tasks := func(action string, list []*models.Task, fn func(t *models.Task) error) {
		out = append(out, parallelOutcomes(len(list), func(i int) *models.ConvergenceOutcome {
			return taskOutcome(action, list[i].GetTaskGuid(), fn(list[i]))
		})...)
	}
	completing := func(fn func(context.Context, *models.Task) (*models.Task, error)) func(*models.Task) error {
		return func(t *models.Task) error {
			after, err := fn(ctx, t)
			if err == nil {
				s.completed(after)
			}
			return err
		}
	}
	tasks("expire_pending", req.ExpirePending, completing(s.store.ExpirePendingTask))
	tasks("fail_on_lost_cell", req.FailOnLostCell, completing(s.store.FailTaskOnLostCell))
	tasks("demote_resolving", req.DemoteResolving, completing(s.store.DemoteResolvingTask))
	tasks("delete_completed", req.DeleteCompleted, func(t *models.Task) error { return s.store.DeleteCompletedTask(ctx, t) })
	out = append(out, parallelOutcomes(len(req.KickCallbacks), func(i int) *models.ConvergenceOutcome {
		guid := req.KickCallbacks[i]
		return taskOutcome("kick_callbacks", guid, s.kickCallback(ctx, guid))
	})...)
	return &models.ConvergeResponse{Outcomes: out}, nil
}

// kickCallback hands a COMPLETED task with a callback URL to the callback
// worker again; the worker's own RESOLVING transition keeps two BBSs from
// both delivering it.
func (s *Server) kickCallback(ctx context.Context, guid string) error {
	t, err := s.store.Task(ctx, guid)
	if err != nil {
		return err
	}
	if t.State != models.Task_COMPLETED {
		return models.NewError(models.TypeResourceConflict, "task %s is %s, not COMPLETED", guid, t.State)
	}
	if t.GetTaskDefinition().GetCompletionCallbackUrl() == "" {
		return models.NewError(models.TypeResourceConflict, "task %s has no completion callback", guid)
	}
	if s.callbacks == nil {
		return models.NewError(models.TypeUnavailable, "this BBS runs no task callback worker")
	}
	s.callbacks.Submit(t)
	return nil
}

// parallelOutcomes runs n actions on up to convergeWorkers goroutines and
// returns their outcomes in order.
func parallelOutcomes(n int, fn func(i int) *models.ConvergenceOutcome) []*models.ConvergenceOutcome {
	out := make([]*models.ConvergenceOutcome, n)
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(n, convergeWorkers) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				out[i] = fn(i)
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return out
}

func lrpOutcome(action string, key *models.ActualLRPKey, err error, auction []int32) *models.ConvergenceOutcome {
	o := &models.ConvergenceOutcome{Action: action, ActualLrpKey: key}
	setResult(o, err)
	if err == nil {
		o.AuctionIndices = auction
	}
	return o
}

func taskOutcome(action, guid string, err error) *models.ConvergenceOutcome {
	o := &models.ConvergenceOutcome{Action: action, TaskGuid: guid}
	setResult(o, err)
	return o
}

// setResult classifies an action's error: none is applied; a record that
// changed, vanished or no longer meets the rule is skipped; anything else
// failed.
func setResult(o *models.ConvergenceOutcome, err error) {
	switch {
	case err == nil:
		o.Result = models.ConvergenceOutcome_APPLIED
	case db.IsSkipped(err) || models.IsNotFound(err):
		o.Result = models.ConvergenceOutcome_SKIPPED
		o.Reason = err.Error()
	default:
		o.Result = models.ConvergenceOutcome_FAILED
		o.Reason = err.Error()
	}
}
