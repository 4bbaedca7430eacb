package db

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"

	"github.com/gavel-scheduler/gavel/proto/models"
)

// Convergence: the consistent read a convergence pass plans from, and the
// transitions that carry out its plan. Each transition is applied only while
// the record it was planned from is unchanged (the same modification tag for
// an actual LRP, an identical task) and while the condition it was planned
// on still holds — a cell still absent or present, a desired LRP still the
// one read or still gone. Those conditions are part of the guarded
// transaction, so a cell that comes back, or a desired LRP that is scaled,
// between the converger's read and its write is never acted on wrongly.
// An action refused that way returns a ResourceConflict error (see
// IsSkipped); the next pass plans again from what it then reads.

// Failure reasons convergence writes on tasks (diego-facts §1.3).
const (
	ReasonPendingExpired = "not started within time limit"
	ReasonCellLost       = "cell disappeared before completion"
)

// Converger is the prefix of the converger's own records.
func (k Keys) Converger() string { return k.Prefix + "/converger/" }

// ConvergerState is the key of the converger's memory between passes.
func (k Keys) ConvergerState() string { return k.Converger() + "state" }

// CellLossConfirmation is the key of an operator's confirmation of a cell
// loss the mass-failure guard holds.
func (k Keys) CellLossConfirmation() string { return k.Converger() + "confirmation" }

// skip refuses a convergence action whose record or condition moved on.
func skip(format string, args ...any) error {
	return models.NewError(models.TypeResourceConflict, format, args...)
}

// IsSkipped reports whether a convergence action was refused because what
// it was planned from changed (rather than failing).
func IsSkipped(err error) bool { return errors.Is(err, models.ErrResourceConflict) }

// ConvergenceSnapshot reads everything a convergence pass decides on in one
// etcd transaction, so every record is from the same revision: a desired LRP
// created a moment ago is never seen without its instances, nor instances
// without their desired LRP.
func (s *Store) ConvergenceSnapshot(ctx context.Context) (*models.ConvergenceSnapshotResponse, error) {
	k := s.keys
	resp, err := s.client.Txn(ctx).Then(
		clientv3.OpGet(k.LRP(), clientv3.WithPrefix()),
		clientv3.OpGet(k.Tasks(), clientv3.WithPrefix()),
		clientv3.OpGet(k.Domains(), clientv3.WithPrefix()),
		clientv3.OpGet(k.Cells(), clientv3.WithPrefix()),
		clientv3.OpGet(k.ConvergerState()),
		clientv3.OpGet(k.CellLossConfirmation()),
	).Commit()
	if err != nil {
		return nil, fmt.Errorf("read convergence snapshot: %w", err)
	}
	kvs := func(i int) []*mvccpb.KeyValue { return resp.Responses[i].GetResponseRange().Kvs }
	out := &models.ConvergenceSnapshotResponse{Revision: resp.Header.Revision}

	lrps := kvs(0)
	actualPrefix := []byte(k.ActualLRPs())
	schedPrefix := []byte(k.SchedulingInfos())
	nActual := 0
	for _, kv := range lrps {
		if bytes.HasPrefix(kv.Key, actualPrefix) {
			nActual++
		}
	}
	out.ActualLrps = make([]*models.ActualLRP, 0, nActual)
	out.DesiredLrpSchedulingInfos = make([]*models.DesiredLRPSchedulingInfo, 0, len(lrps)-nActual)
	for _, kv := range lrps {
		switch {
		case bytes.HasPrefix(kv.Key, actualPrefix):
			if a, err := decode[models.ActualLRP](kv); err == nil {
				out.ActualLrps = append(out.ActualLrps, a)
			} else {
				s.logger.Warn("skipping undecodable actual LRP", "key", string(kv.Key), "error", err)
			}
		case bytes.HasPrefix(kv.Key, schedPrefix):
			if d, err := decode[models.DesiredLRPSchedulingInfo](kv); err == nil {
				out.DesiredLrpSchedulingInfos = append(out.DesiredLrpSchedulingInfos, d)
			} else {
				s.logger.Warn("skipping undecodable desired LRP", "key", string(kv.Key), "error", err)
			}
		}
	}
	out.Tasks = decodeAll[models.Task](s, kvs(1), "task")
	out.Domains = decodeAll[models.Domain](s, kvs(2), "domain")
	out.Cells = decodeAll[models.CellPresence](s, kvs(3), "cell presence")
	if st := kvs(4); len(st) > 0 {
		if out.ConvergerState, err = decode[models.ConvergerState](st[0]); err != nil {
			return nil, err
		}
	}
	if c := kvs(5); len(c) > 0 {
		if out.CellLossConfirmation, err = decode[models.CellLossConfirmation](c[0]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func decodeAll[T any, PT interface {
	*T
	proto.Message
}](s *Store, kvs []*mvccpb.KeyValue, what string) []PT {
	out := make([]PT, 0, len(kvs))
	for _, kv := range kvs {
		m, err := decode[T, PT](kv)
		if err != nil {
			s.logger.Warn("skipping undecodable "+what, "key", string(kv.Key), "error", err)
			continue
		}
		out = append(out, m)
	}
	return out
}

// cellAbsent and cellPresent are transaction conditions on a cell's
// presence key.
func (s *Store) cellAbsent(cellID string) clientv3.Cmp {
	return clientv3.Compare(clientv3.CreateRevision(s.keys.Cell(cellID)), "=", 0)
}

func (s *Store) cellPresent(cellID string) clientv3.Cmp {
	return clientv3.Compare(clientv3.CreateRevision(s.keys.Cell(cellID)), ">", 0)
}

// convergeIndex applies fn to the rows of one index in one transaction
// guarded by the ModRevision of every presence key and by cond. When the
// transaction fails although the rows did not change, cond no longer holds
// and the action is skipped.
func (s *Store) convergeIndex(ctx context.Context, processGuid string, index int32, cond []clientv3.Cmp, fn indexFunc) error {
	rows, err := s.readIndex(ctx, processGuid, index)
	if err != nil {
		return err
	}
	for range maxAttempts {
		writes, err := fn(rows)
		if err != nil || len(writes) == 0 {
			return err
		}
		done, next, err := s.commitIndex(ctx, processGuid, index, rows, writes, cond)
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		if next.Revs == rows.Revs {
			return skip("actual LRP %s/%d: the condition it was planned on no longer holds", processGuid, index)
		}
		rows = next
	}
	return conflictErr(s.keys.ActualLRPIndex(processGuid, index))
}

// planned returns the row of expected's presence if it is still the row
// expected was read as, or a skip error.
func planned(r *IndexRows, expected *models.ActualLRP) (*models.ActualLRP, error) {
	cur := r.Get(expected.GetPresence())
	if cur == nil {
		return nil, skip("%s actual LRP %s/%d is gone", expected.GetPresence(), expected.ProcessGuid(), expected.Index())
	}
	if !proto.Equal(cur.GetModificationTag(), expected.GetModificationTag()) {
		return nil, skip("%s actual LRP %s/%d changed", expected.GetPresence(), expected.ProcessGuid(), expected.Index())
	}
	return cur, nil
}

func claimedOrRunning(a *models.ActualLRP) bool {
	return a.GetState() == models.ActualLRP_CLAIMED || a.GetState() == models.ActualLRP_RUNNING
}

// SuspectActualLRP handles an ORDINARY instance on a lost cell: the row
// becomes SUSPECT (state, instance and routes kept, so it keeps serving if
// the cell is only cut off) and a new UNCLAIMED ORDINARY row, returned,
// takes the slot for a replacement. Applied only while the cell is absent.
func (s *Store) SuspectActualLRP(ctx context.Context, expected *models.ActualLRP) (replacement *models.ActualLRP, err error) {
	k := expected.GetActualLrpKey()
	err = s.convergeIndex(ctx, k.GetProcessGuid(), k.GetIndex(), []clientv3.Cmp{s.cellAbsent(expected.CellID())},
		func(r *IndexRows) ([]indexWrite, error) {
			ord, err := planned(r, expected)
			if err != nil {
				return nil, err
			}
			if !claimedOrRunning(ord) || ord.CellID() != expected.CellID() {
				return nil, skip("actual LRP %s/%d is %s, no longer on cell %s", k.ProcessGuid, k.Index, ord.State, expected.CellID())
			}
			if r.Get(models.ActualLRP_SUSPECT) != nil {
				return nil, skip("actual LRP %s/%d already has a SUSPECT row", k.ProcessGuid, k.Index)
			}
			suspect := s.bump(ord)
			suspect.Presence = models.ActualLRP_SUSPECT
			replacement = s.newUnclaimed(k.ProcessGuid, ord.GetActualLrpKey().GetDomain(), k.Index)
			return []indexWrite{
				{presence: models.ActualLRP_SUSPECT, row: suspect},
				{presence: models.ActualLRP_ORDINARY, row: replacement},
			}, nil
		})
	if err != nil {
		return nil, err
	}
	return replacement, nil
}

// UnclaimLostActualLRP handles an ORDINARY instance on a lost cell whose
// index already has a SUSPECT row (the replacement lost its cell too): the
// row goes back to UNCLAIMED. Applied only while the cell is absent.
func (s *Store) UnclaimLostActualLRP(ctx context.Context, expected *models.ActualLRP) error {
	k := expected.GetActualLrpKey()
	return s.convergeIndex(ctx, k.GetProcessGuid(), k.GetIndex(), []clientv3.Cmp{s.cellAbsent(expected.CellID())},
		func(r *IndexRows) ([]indexWrite, error) {
			ord, err := planned(r, expected)
			if err != nil {
				return nil, err
			}
			if !claimedOrRunning(ord) {
				return nil, skip("actual LRP %s/%d is %s", k.ProcessGuid, k.Index, ord.State)
			}
			if r.Get(models.ActualLRP_SUSPECT) == nil {
				return nil, skip("actual LRP %s/%d has no SUSPECT row any more", k.ProcessGuid, k.Index)
			}
			return []indexWrite{{presence: models.ActualLRP_ORDINARY, row: s.unclaimed(ord)}}, nil
		})
}

// RestartCrashedActualLRP puts a CRASHED instance due for a restart back to
// UNCLAIMED (its crash count kept), for the auction.
func (s *Store) RestartCrashedActualLRP(ctx context.Context, expected *models.ActualLRP) error {
	k := expected.GetActualLrpKey()
	return s.convergeIndex(ctx, k.GetProcessGuid(), k.GetIndex(), nil, func(r *IndexRows) ([]indexWrite, error) {
		ord, err := planned(r, expected)
		if err != nil {
			return nil, err
		}
		if ord.State != models.ActualLRP_CRASHED {
			return nil, skip("actual LRP %s/%d is %s, not CRASHED", k.ProcessGuid, k.Index, ord.State)
		}
		return []indexWrite{{presence: models.ActualLRP_ORDINARY, row: s.unclaimed(ord)}}, nil
	})
}

// PromoteSuspectActualLRP handles a SUSPECT instance whose cell is present
// again: the ORDINARY replacement row (any state) is deleted and the SUSPECT
// row becomes the ORDINARY one. It returns the replacement it deleted (nil if
// there was none), whose container, if any, should be stopped. Applied only
// while the cell is present.
func (s *Store) PromoteSuspectActualLRP(ctx context.Context, expected *models.ActualLRP) (replaced *models.ActualLRP, err error) {
	k := expected.GetActualLrpKey()
	err = s.convergeIndex(ctx, k.GetProcessGuid(), k.GetIndex(), []clientv3.Cmp{s.cellPresent(expected.CellID())},
		func(r *IndexRows) ([]indexWrite, error) {
			suspect, err := planned(r, expected)
			if err != nil {
				return nil, err
			}
			replaced = r.Get(models.ActualLRP_ORDINARY)
			promoted := s.bump(suspect)
			promoted.Presence = models.ActualLRP_ORDINARY
			return []indexWrite{
				{presence: models.ActualLRP_ORDINARY, row: promoted},
				{presence: models.ActualLRP_SUSPECT},
			}, nil
		})
	if err != nil {
		return nil, err
	}
	return replaced, nil
}

// RemoveExtraSuspectActualLRP deletes a SUSPECT row whose replacement is
// RUNNING: the instance it stood in for has been replaced.
func (s *Store) RemoveExtraSuspectActualLRP(ctx context.Context, expected *models.ActualLRP) error {
	k := expected.GetActualLrpKey()
	return s.convergeIndex(ctx, k.GetProcessGuid(), k.GetIndex(), nil, func(r *IndexRows) ([]indexWrite, error) {
		if _, err := planned(r, expected); err != nil {
			return nil, err
		}
		if ord := r.Get(models.ActualLRP_ORDINARY); ord == nil || ord.State != models.ActualLRP_RUNNING {
			return nil, skip("actual LRP %s/%d: the replacement is not RUNNING", k.ProcessGuid, k.Index)
		}
		return []indexWrite{{presence: models.ActualLRP_SUSPECT}}, nil
	})
}

// RemoveEvacuatingOnLostCell deletes an EVACUATING row whose cell is gone.
// Applied only while the cell is absent.
func (s *Store) RemoveEvacuatingOnLostCell(ctx context.Context, expected *models.ActualLRP) error {
	k := expected.GetActualLrpKey()
	return s.convergeIndex(ctx, k.GetProcessGuid(), k.GetIndex(), []clientv3.Cmp{s.cellAbsent(expected.CellID())},
		func(r *IndexRows) ([]indexWrite, error) {
			if _, err := planned(r, expected); err != nil {
				return nil, err
			}
			return []indexWrite{{presence: models.ActualLRP_EVACUATING}}, nil
		})
}

// RetirementCondition checks that the instance a is still not wanted by its
// desired LRP — there is none when desiredTag is nil, else the desired LRP
// still carries desiredTag and a's index is at or past its count — and
// returns that condition as transaction guards.
func (s *Store) RetirementCondition(ctx context.Context, a *models.ActualLRP, desiredTag *models.ModificationTag) ([]clientv3.Cmp, error) {
	guid := a.ProcessGuid()
	key := s.keys.SchedulingInfo(guid)
	resp, err := s.client.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("read desired LRP %s: %w", guid, err)
	}
	if desiredTag == nil {
		if len(resp.Kvs) > 0 {
			return nil, skip("actual LRP %s/%d is no longer an orphan: its process is desired again", guid, a.Index())
		}
		return []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(key), "=", 0)}, nil
	}
	if len(resp.Kvs) == 0 {
		return nil, skip("desired LRP %s is gone", guid)
	}
	sched, err := decode[models.DesiredLRPSchedulingInfo](resp.Kvs[0])
	if err != nil {
		return nil, err
	}
	if !proto.Equal(sched.GetModificationTag(), desiredTag) {
		return nil, skip("desired LRP %s changed", guid)
	}
	if a.Index() < sched.GetInstances() {
		return nil, skip("actual LRP %s/%d is wanted: the desired LRP has %d instances", guid, a.Index(), sched.GetInstances())
	}
	return []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", resp.Kvs[0].ModRevision)}, nil
}

// RetireUnplacedActualLRP deletes an UNCLAIMED or CRASHED instance no desired
// LRP wants (see RetirementCondition), while both are as read.
func (s *Store) RetireUnplacedActualLRP(ctx context.Context, expected *models.ActualLRP, desiredTag *models.ModificationTag) error {
	return s.removeUnwanted(ctx, expected, desiredTag, func(cur *models.ActualLRP) error {
		if cur.State != models.ActualLRP_UNCLAIMED && cur.State != models.ActualLRP_CRASHED {
			return skip("actual LRP %s/%d is %s", cur.ProcessGuid(), cur.Index(), cur.State)
		}
		return nil
	})
}

// RemoveOrphanedSuspectActualLRP deletes a SUSPECT row no desired instance
// needs (see RetirementCondition), while both are as read.
func (s *Store) RemoveOrphanedSuspectActualLRP(ctx context.Context, expected *models.ActualLRP, desiredTag *models.ModificationTag) error {
	return s.removeUnwanted(ctx, expected, desiredTag, func(*models.ActualLRP) error { return nil })
}

func (s *Store) removeUnwanted(ctx context.Context, expected *models.ActualLRP, desiredTag *models.ModificationTag, check func(*models.ActualLRP) error) error {
	cond, err := s.RetirementCondition(ctx, expected, desiredTag)
	if err != nil {
		return err
	}
	k := expected.GetActualLrpKey()
	return s.convergeIndex(ctx, k.GetProcessGuid(), k.GetIndex(), cond, func(r *IndexRows) ([]indexWrite, error) {
		cur, err := planned(r, expected)
		if err != nil {
			return nil, err
		}
		if err := check(cur); err != nil {
			return nil, err
		}
		return []indexWrite{{presence: expected.GetPresence()}}, nil
	})
}

// CreateMissingActualLRPs creates UNCLAIMED rows in the empty slots among
// indices of a desired LRP, only while the desired LRP carries desiredTag
// and only for indices below its count. It returns the rows created.
func (s *Store) CreateMissingActualLRPs(ctx context.Context, processGuid string, desiredTag *models.ModificationTag, indices []int32) ([]*models.ActualLRP, error) {
	key := s.keys.SchedulingInfo(processGuid)
	resp, err := s.client.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("read desired LRP %s: %w", processGuid, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, skip("desired LRP %s is gone", processGuid)
	}
	sched, err := decode[models.DesiredLRPSchedulingInfo](resp.Kvs[0])
	if err != nil {
		return nil, err
	}
	if !proto.Equal(sched.GetModificationTag(), desiredTag) {
		return nil, skip("desired LRP %s changed", processGuid)
	}
	wanted := make([]int32, 0, len(indices))
	for _, i := range indices {
		if i >= 0 && i < sched.GetInstances() {
			wanted = append(wanted, i)
		}
	}
	guard := []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", resp.Kvs[0].ModRevision)}
	created, err := s.createUnclaimed(ctx, processGuid, sched.GetDesiredLrpKey().GetDomain(), wanted, guard)
	if err != nil && len(created) == 0 {
		return nil, err
	}
	return created, err
}

// convergeTask applies fn to a task in one transaction guarded by its
// ModRevision and cond, only while the task is exactly expected. A task that
// changed, or a cond that no longer holds, skips the action.
func (s *Store) convergeTask(ctx context.Context, expected *models.Task, cond []clientv3.Cmp, fn func(cur *models.Task) (*models.Task, error)) (after *models.Task, err error) {
	guid := expected.GetTaskGuid()
	key := s.keys.Task(guid)
	resp, err := s.client.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("read task %s: %w", guid, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, skip("task %s is gone", guid)
	}
	cur, err := decode[models.Task](resp.Kvs[0])
	if err != nil {
		return nil, err
	}
	if !proto.Equal(cur, expected) {
		return nil, skip("task %s changed", guid)
	}
	next, err := fn(cur)
	if err != nil {
		return nil, err
	}
	op := clientv3.OpDelete(key)
	if next != nil {
		next.UpdatedAt = s.nowNanos()
		op = clientv3.OpPut(key, string(marshal(next)))
	}
	cmps := append([]clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", resp.Kvs[0].ModRevision)}, cond...)
	out := s.batch.commit(ctx, cmps, []clientv3.Op{op}, nil)
	if out.err != nil {
		return nil, fmt.Errorf("write task %s: %w", guid, out.err)
	}
	if !out.succeeded {
		return nil, skip("task %s changed, or the condition it was planned on no longer holds", guid)
	}
	return next, nil
}

// ExpirePendingTask completes a task that stayed PENDING too long as failed
// ("not started within time limit").
func (s *Store) ExpirePendingTask(ctx context.Context, expected *models.Task) (*models.Task, error) {
	return s.convergeTask(ctx, expected, nil, func(cur *models.Task) (*models.Task, error) {
		if cur.State != models.Task_PENDING {
			return nil, skip("task %s is %s", cur.TaskGuid, cur.State)
		}
		return s.completed(cur, true, ReasonPendingExpired, ""), nil
	})
}

// FailTaskOnLostCell completes a task RUNNING on a lost cell as failed
// ("cell disappeared before completion"), only while the cell is absent.
func (s *Store) FailTaskOnLostCell(ctx context.Context, expected *models.Task) (*models.Task, error) {
	return s.convergeTask(ctx, expected, []clientv3.Cmp{s.cellAbsent(expected.GetCellId())}, func(cur *models.Task) (*models.Task, error) {
		if cur.State != models.Task_RUNNING {
			return nil, skip("task %s is %s", cur.TaskGuid, cur.State)
		}
		return s.completed(cur, true, ReasonCellLost, ""), nil
	})
}

// DemoteResolvingTask puts a task whose resolver is presumed dead back to
// COMPLETED, so its callback is sent again.
func (s *Store) DemoteResolvingTask(ctx context.Context, expected *models.Task) (*models.Task, error) {
	return s.convergeTask(ctx, expected, nil, func(cur *models.Task) (*models.Task, error) {
		if cur.State != models.Task_RESOLVING {
			return nil, skip("task %s is %s", cur.TaskGuid, cur.State)
		}
		next := clone(cur)
		next.State = models.Task_COMPLETED
		return next, nil
	})
}

// DeleteCompletedTask deletes a task that completed long enough ago that
// nobody is coming for its result.
func (s *Store) DeleteCompletedTask(ctx context.Context, expected *models.Task) error {
	_, err := s.convergeTask(ctx, expected, nil, func(cur *models.Task) (*models.Task, error) {
		if cur.State != models.Task_COMPLETED {
			return nil, skip("task %s is %s", cur.TaskGuid, cur.State)
		}
		return nil, nil
	})
	return err
}

// SaveConvergerState stores the converger's memory. The state's generation
// must follow the stored one's, so a converger that lost the election (or
// raced another) cannot write over a newer memory: its save is refused as a
// conflict and its pass ends.
func (s *Store) SaveConvergerState(ctx context.Context, st *models.ConvergerState) error {
	key := s.keys.ConvergerState()
	resp, err := s.client.Get(ctx, key)
	if err != nil {
		return fmt.Errorf("read converger state: %w", err)
	}
	var want uint64 = 1
	guard := clientv3.Compare(clientv3.CreateRevision(key), "=", 0)
	if len(resp.Kvs) > 0 {
		cur, err := decode[models.ConvergerState](resp.Kvs[0])
		if err != nil {
			return err
		}
		want = cur.GetGeneration() + 1
		guard = clientv3.Compare(clientv3.ModRevision(key), "=", resp.Kvs[0].ModRevision)
	}
	if st.GetGeneration() != want {
		return models.NewError(models.TypeResourceConflict,
			"converger state generation %d does not follow the stored one (%d): another converger saved in between", st.GetGeneration(), want-1)
	}
	txn, err := s.client.Txn(ctx).If(guard).Then(clientv3.OpPut(key, string(marshal(st)))).Commit()
	if err != nil {
		return fmt.Errorf("save converger state: %w", err)
	}
	if !txn.Succeeded {
		return models.NewError(models.TypeResourceConflict, "converger state changed while saving it")
	}
	return nil
}

// ConfirmCellLoss records an operator's go-ahead for the converger to act
// on cells its mass-failure guard holds: the given ones, or all of them
// when none are given. It refuses when the guard holds none of them.
func (s *Store) ConfirmCellLoss(ctx context.Context, cellIDs []string) (*models.CellLossConfirmation, error) {
	key := s.keys.ConvergerState()
	for range maxAttempts {
		resp, err := s.client.Get(ctx, key)
		if err != nil {
			return nil, fmt.Errorf("read converger state: %w", err)
		}
		held := map[string]bool{}
		var heldList []string
		if len(resp.Kvs) > 0 {
			st, err := decode[models.ConvergerState](resp.Kvs[0])
			if err != nil {
				return nil, err
			}
			for _, c := range st.GetCells() {
				if c.GetHeld() {
					held[c.GetCellId()] = true
					heldList = append(heldList, c.GetCellId())
				}
			}
		}
		if len(heldList) == 0 {
			return nil, models.NewError(models.TypeInvalidStateTransition, "the converger holds no lost cells: there is nothing to confirm")
		}
		ids := heldList
		if len(cellIDs) > 0 {
			for _, id := range cellIDs {
				if !held[id] {
					return nil, models.NewError(models.TypeInvalidStateTransition,
						"cell %q is not held by the converger (held: %v)", id, heldList)
				}
			}
			ids = cellIDs
		}
		conf := &models.CellLossConfirmation{CellIds: ids, ConfirmedAt: s.nowNanos()}
		txn, err := s.client.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", resp.Kvs[0].ModRevision)).
			Then(clientv3.OpPut(s.keys.CellLossConfirmation(), string(marshal(conf)))).Commit()
		if err != nil {
			return nil, fmt.Errorf("confirm cell loss: %w", err)
		}
		if txn.Succeeded {
			return conf, nil
		}
	}
	return nil, conflictErr(key)
}
