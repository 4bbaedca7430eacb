package db

import (
	"context"
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"

	"github.com/gavel-scheduler/gavel/proto/models"
)

// ActualLRPFilter selects actual LRPs; empty fields match everything.
type ActualLRPFilter struct {
	Domain      string
	CellID      string
	ProcessGuid string
	Index       *int32
}

func (f ActualLRPFilter) matches(a *models.ActualLRP) bool {
	if f.Domain != "" && a.GetActualLrpKey().GetDomain() != f.Domain {
		return false
	}
	if f.CellID != "" && a.GetActualLrpInstanceKey().GetCellId() != f.CellID {
		return false
	}
	if f.Index != nil && a.GetActualLrpKey().GetIndex() != *f.Index {
		return false
	}
	return true
}

// ActualLRPs lists the actual LRPs matching f, with the revision they were
// read at.
func (s *Store) ActualLRPs(ctx context.Context, f ActualLRPFilter) ([]*models.ActualLRP, int64, error) {
	prefix := s.keys.ActualLRPs()
	if f.ProcessGuid != "" {
		prefix = s.keys.ActualLRPsOf(f.ProcessGuid)
		if f.Index != nil {
			prefix = s.keys.ActualLRPIndex(f.ProcessGuid, *f.Index)
		}
	}
	resp, err := s.client.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, 0, fmt.Errorf("list actual LRPs: %w", err)
	}
	out := make([]*models.ActualLRP, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		lrp, err := decode[models.ActualLRP](kv)
		if err != nil {
			s.logger.Warn("skipping undecodable actual LRP", "key", string(kv.Key), "error", err)
			continue
		}
		if f.matches(lrp) {
			out = append(out, lrp)
		}
	}
	return out, resp.Header.Revision, nil
}

// ActualLRP returns one row.
func (s *Store) ActualLRP(ctx context.Context, processGuid string, index int32, presence models.ActualLRP_Presence) (*models.ActualLRP, error) {
	key := s.keys.ActualLRP(processGuid, index, presence)
	lrp, _, err := s.readActual(ctx, key)
	if err != nil {
		return nil, err
	}
	if lrp == nil {
		return nil, notFoundActual(processGuid, index, presence)
	}
	return lrp, nil
}

func notFoundActual(processGuid string, index int32, presence models.ActualLRP_Presence) error {
	if presence == models.ActualLRP_ORDINARY {
		return models.NewError(models.TypeResourceNotFound, "actual LRP %s/%d not found", processGuid, index)
	}
	return models.NewError(models.TypeResourceNotFound, "%s actual LRP %s/%d not found", presence, processGuid, index)
}

// readActual reads one row from etcd (not the cache) and caches it.
func (s *Store) readActual(ctx context.Context, key string) (*models.ActualLRP, int64, error) {
	resp, err := s.client.Get(ctx, key)
	if err != nil {
		return nil, 0, fmt.Errorf("read %s: %w", key, err)
	}
	return s.absorbActual(key, resp.Kvs)
}

// absorbActual decodes the result of reading one row and caches it.
func (s *Store) absorbActual(key string, kvs []*mvccpb.KeyValue) (*models.ActualLRP, int64, error) {
	if len(kvs) == 0 {
		s.actuals.drop(key)
		return nil, 0, nil
	}
	lrp, err := decode[models.ActualLRP](kvs[0])
	if err != nil {
		return nil, 0, err
	}
	s.actuals.put(key, lrp, kvs[0].ModRevision)
	return lrp, kvs[0].ModRevision, nil
}

// mutateFunc decides the next value of a row from its current value (nil
// when absent). It returns the new row (nil deletes it), extra operations to
// run in the same transaction, errNoChange when nothing needs writing, or a
// domain error refusing the change. It must not modify cur.
type mutateFunc func(cur *models.ActualLRP) (next *models.ActualLRP, extra []clientv3.Op, err error)

// mutateActual applies fn to one row in a transaction guarded by the row's
// ModRevision, retrying on a lost race with the value the failed
// transaction read back. It starts from the cached row when there is one;
// a decision to write nothing is only taken on a row fresh from etcd.
func (s *Store) mutateActual(ctx context.Context, key string, fn mutateFunc) (before, after *models.ActualLRP, err error) {
	var cur *models.ActualLRP
	var rev int64
	c, fromCache := s.actuals.get(key)
	if fromCache {
		cur, rev = c.lrp, c.rev
	} else if cur, rev, err = s.readActual(ctx, key); err != nil {
		return nil, nil, err
	}
	for range maxAttempts {
		next, extra, err := fn(cur)
		if err != nil && fromCache {
			// A no-op or a refusal is not checked by any guard, so it must
			// not rest on a cached row another BBS may have changed since.
			fromCache = false
			if cur, rev, err = s.readActual(ctx, key); err != nil {
				return nil, nil, err
			}
			continue
		}
		if errors.Is(err, errNoChange) {
			return cur, cur, nil
		}
		if err != nil {
			return cur, nil, err
		}
		ops := make([]clientv3.Op, 0, 1+len(extra))
		if next != nil {
			ops = append(ops, clientv3.OpPut(key, string(marshal(next))))
		} else {
			if cur == nil {
				return nil, nil, nil
			}
			ops = append(ops, clientv3.OpDelete(key))
		}
		ops = append(ops, extra...)
		out := s.batch.commit(ctx,
			[]clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", rev)},
			ops, []clientv3.Op{clientv3.OpGet(key)})
		if out.err != nil {
			s.actuals.drop(key)
			return nil, nil, fmt.Errorf("write %s: %w", key, out.err)
		}
		if out.succeeded {
			if next != nil {
				s.actuals.put(key, next, out.revision)
			} else {
				s.actuals.drop(key)
			}
			s.dropExtra(extra)
			return cur, next, nil
		}
		cur, rev, err = s.absorbActual(key, out.responses[0].GetResponseRange().Kvs)
		if err != nil {
			return nil, nil, err
		}
	}
	return nil, nil, conflictErr(key)
}

// dropExtra forgets cached rows that extra operations may have changed.
func (s *Store) dropExtra(ops []clientv3.Op) {
	for _, op := range ops {
		s.actuals.drop(string(op.KeyBytes()))
	}
}

// bump returns a copy of lrp with its modification tag advanced and since set.
func (s *Store) bump(lrp *models.ActualLRP) *models.ActualLRP {
	next := proto.Clone(lrp).(*models.ActualLRP)
	if next.ModificationTag == nil {
		next.ModificationTag = &models.ModificationTag{Epoch: newEpoch()}
	}
	next.ModificationTag.Index++
	next.Since = s.nowNanos()
	return next
}

// newUnclaimed builds a fresh UNCLAIMED ORDINARY row.
func (s *Store) newUnclaimed(processGuid, domain string, index int32) *models.ActualLRP {
	return &models.ActualLRP{
		ActualLrpKey:    &models.ActualLRPKey{ProcessGuid: processGuid, Index: index, Domain: domain},
		State:           models.ActualLRP_UNCLAIMED,
		Since:           s.nowNanos(),
		ModificationTag: &models.ModificationTag{Epoch: newEpoch()},
		Presence:        models.ActualLRP_ORDINARY,
	}
}

// CreateUnclaimedActualLRPs creates UNCLAIMED rows for the given indices of
// a process, each only if its slot is empty. Rows are written in
// transactions of at most 128 operations; each row is written whole or not
// at all. It returns the rows it created.
func (s *Store) CreateUnclaimedActualLRPs(ctx context.Context, processGuid, domain string, indices []int32) ([]*models.ActualLRP, error) {
	return s.createUnclaimed(ctx, processGuid, domain, indices, nil)
}

// createUnclaimed writes UNCLAIMED rows in batches; guard, when set, is added
// to every batch's conditions (the desired LRP still being the one these rows
// belong to).
func (s *Store) createUnclaimed(ctx context.Context, processGuid, domain string, indices []int32, guard []clientv3.Cmp) ([]*models.ActualLRP, error) {
	var created []*models.ActualLRP
	batch := maxTxnOps - len(guard)
	for start := 0; start < len(indices); start += batch {
		end := min(start+batch, len(indices))
		rows := make([]*models.ActualLRP, 0, end-start)
		for _, i := range indices[start:end] {
			rows = append(rows, s.newUnclaimed(processGuid, domain, i))
		}
		made, err := s.putIfAbsent(ctx, rows, guard)
		if err != nil {
			return created, err
		}
		created = append(created, made...)
	}
	return created, nil
}

// putIfAbsent writes rows whose keys are absent, in one transaction. When a
// key turned out to exist, the transaction is retried without it.
func (s *Store) putIfAbsent(ctx context.Context, rows []*models.ActualLRP, guard []clientv3.Cmp) ([]*models.ActualLRP, error) {
	for len(rows) > 0 {
		cmps := append([]clientv3.Cmp(nil), guard...)
		ops := make([]clientv3.Op, 0, len(rows))
		gets := make([]clientv3.Op, 0, len(rows))
		for _, r := range rows {
			key := s.keys.ActualLRP(r.ActualLrpKey.ProcessGuid, r.ActualLrpKey.Index, r.Presence)
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(key), "=", 0))
			ops = append(ops, clientv3.OpPut(key, string(marshal(r))))
			gets = append(gets, clientv3.OpGet(key, clientv3.WithCountOnly()))
		}
		resp, err := s.client.Txn(ctx).If(cmps...).Then(ops...).Else(gets...).Commit()
		if err != nil {
			return nil, fmt.Errorf("create actual LRPs: %w", err)
		}
		if resp.Succeeded {
			for i, r := range rows {
				s.actuals.put(string(ops[i].KeyBytes()), r, resp.Header.Revision)
			}
			return rows, nil
		}
		// Either the guard failed or some slots are taken: keep the free ones.
		free := rows[:0:0]
		for i, r := range rows {
			if resp.Responses[i].GetResponseRange().Count == 0 {
				free = append(free, r)
			}
		}
		if len(free) == len(rows) {
			// Every slot is free, so the guard failed.
			return nil, models.NewError(models.TypeResourceConflict, "desired LRP changed while creating its instances")
		}
		rows = free
	}
	return nil, nil
}

// ClaimActualLRP moves an instance to CLAIMED by the given cell instance.
// Claiming a row already claimed by the same instance is a no-op. A request
// matching the index's SUSPECT row is accepted and changes nothing.
func (s *Store) ClaimActualLRP(ctx context.Context, processGuid string, index int32, ik *models.ActualLRPInstanceKey) (before, after *models.ActualLRP, err error) {
	key := s.keys.ActualLRP(processGuid, index, models.ActualLRP_ORDINARY)
	before, after, err = s.mutateActual(ctx, key, func(cur *models.ActualLRP) (*models.ActualLRP, []clientv3.Op, error) {
		if cur == nil {
			return nil, nil, notFoundActual(processGuid, index, models.ActualLRP_ORDINARY)
		}
		if cur.State == models.ActualLRP_CLAIMED && cur.GetActualLrpInstanceKey().Equal(ik) {
			return nil, nil, errNoChange
		}
		if !cur.AllowsTransitionTo(ik, models.ActualLRP_CLAIMED) {
			return nil, nil, models.NewError(models.TypeActualLRPCannotBeClaimed,
				"cannot claim actual LRP %s/%d for instance %s on cell %s: it is %s (instance %q on cell %q)",
				processGuid, index, ik.GetInstanceGuid(), ik.GetCellId(), cur.State, cur.InstanceGuid(), cur.CellID())
		}
		next := s.bump(cur)
		next.State = models.ActualLRP_CLAIMED
		next.ActualLrpInstanceKey = proto.Clone(ik).(*models.ActualLRPInstanceKey)
		next.ActualLrpNetInfo = nil
		next.PlacementError = ""
		return next, nil, nil
	})
	if err != nil {
		return s.suspectFallback(ctx, processGuid, index, ik, err)
	}
	return before, after, nil
}

// suspectFallback turns a refusal of a request on the ORDINARY row into an
// accepted no-op when the request comes from the instance held by the
// index's SUSPECT row: that instance lives on a cell that went missing and
// came back, and convergence, not the rep, decides its fate.
func (s *Store) suspectFallback(ctx context.Context, processGuid string, index int32, ik *models.ActualLRPInstanceKey, refusal error) (before, after *models.ActualLRP, err error) {
	var de *models.Error
	if !errors.As(refusal, &de) || ik.Empty() {
		return nil, nil, refusal
	}
	suspect, _, rerr := s.readActual(ctx, s.keys.ActualLRP(processGuid, index, models.ActualLRP_SUSPECT))
	if rerr != nil || suspect == nil || !suspect.GetActualLrpInstanceKey().Equal(ik) {
		return nil, nil, refusal
	}
	return suspect, suspect, nil
}

// StartActualLRP records an instance as RUNNING with its network info. It
// doubles as the rep's heartbeat: when nothing changed nothing is written.
// It creates the row when the index has none, and removes the index's
// EVACUATING and SUSPECT rows in the same transaction, since the instance
// they stood in for is now up.
func (s *Store) StartActualLRP(ctx context.Context, req *models.StartActualLRPRequest) (before, after *models.ActualLRP, err error) {
	k := req.ActualLrpKey
	ik := req.ActualLrpInstanceKey
	key := s.keys.ActualLRP(k.ProcessGuid, k.Index, models.ActualLRP_ORDINARY)
	cleanup := []clientv3.Op{
		clientv3.OpDelete(s.keys.ActualLRP(k.ProcessGuid, k.Index, models.ActualLRP_EVACUATING)),
		clientv3.OpDelete(s.keys.ActualLRP(k.ProcessGuid, k.Index, models.ActualLRP_SUSPECT)),
	}
	before, after, err = s.mutateActual(ctx, key, func(cur *models.ActualLRP) (*models.ActualLRP, []clientv3.Op, error) {
		if cur == nil {
			cur = s.newUnclaimed(k.ProcessGuid, k.Domain, k.Index)
		} else if cur.State == models.ActualLRP_RUNNING && cur.GetActualLrpInstanceKey().Equal(ik) && sameRunningInfo(cur, req) {
			return nil, nil, errNoChange
		}
		if !cur.AllowsTransitionTo(ik, models.ActualLRP_RUNNING) {
			return nil, nil, models.NewError(models.TypeActualLRPCannotBeStarted,
				"cannot start actual LRP %s/%d for instance %s on cell %s: it is %s (instance %q on cell %q)",
				k.ProcessGuid, k.Index, ik.GetInstanceGuid(), ik.GetCellId(), cur.State, cur.InstanceGuid(), cur.CellID())
		}
		next := s.bump(cur)
		next.State = models.ActualLRP_RUNNING
		next.ActualLrpInstanceKey = proto.Clone(ik).(*models.ActualLRPInstanceKey)
		next.ActualLrpNetInfo = proto.Clone(req.ActualLrpNetInfo).(*models.ActualLRPNetInfo)
		next.ActualLrpInternalRoutes = req.ActualLrpInternalRoutes
		next.MetricTags = req.MetricTags
		next.Routable = req.Routable
		next.AvailabilityZone = req.AvailabilityZone
		next.PlacementError = ""
		return next, cleanup, nil
	})
	if err != nil {
		return s.suspectFallback(ctx, k.ProcessGuid, k.Index, ik, err)
	}
	return before, after, nil
}

// sameRunningInfo reports whether a start request would change nothing on a
// row already RUNNING for the same instance.
func sameRunningInfo(cur *models.ActualLRP, req *models.StartActualLRPRequest) bool {
	if !proto.Equal(cur.ActualLrpNetInfo, req.ActualLrpNetInfo) {
		return false
	}
	if cur.AvailabilityZone != req.AvailabilityZone {
		return false
	}
	if (cur.Routable == nil) != (req.Routable == nil) || (cur.Routable != nil && *cur.Routable != *req.Routable) {
		return false
	}
	return models.EqualInternalRoutes(cur.ActualLrpInternalRoutes, req.ActualLrpInternalRoutes) &&
		models.EqualMetricTags(cur.MetricTags, req.MetricTags)
}

// CrashActualLRP records that an instance exited. The crash count follows the
// restart policy: a row that had been running for more than five minutes
// starts again at 1. Under the immediate-restart threshold the row goes
// straight back to UNCLAIMED and auction is true; otherwise it is CRASHED and
// waits for convergence. A crash reported by the instance of the index's
// SUSPECT row just removes that row.
func (s *Store) CrashActualLRP(ctx context.Context, k *models.ActualLRPKey, ik *models.ActualLRPInstanceKey, reason string) (before, after *models.ActualLRP, auction bool, err error) {
	key := s.keys.ActualLRP(k.ProcessGuid, k.Index, models.ActualLRP_ORDINARY)
	before, after, err = s.mutateActual(ctx, key, func(cur *models.ActualLRP) (*models.ActualLRP, []clientv3.Op, error) {
		if cur == nil {
			return nil, nil, notFoundActual(k.ProcessGuid, k.Index, models.ActualLRP_ORDINARY)
		}
		if !cur.AllowsTransitionTo(ik, models.ActualLRP_CRASHED) {
			return nil, nil, models.NewError(models.TypeActualLRPCannotBeCrashed,
				"cannot crash actual LRP %s/%d for instance %s on cell %s: it is %s (instance %q on cell %q)",
				k.ProcessGuid, k.Index, ik.GetInstanceGuid(), ik.GetCellId(), cur.State, cur.InstanceGuid(), cur.CellID())
		}
		return s.crashed(cur, reason), nil, nil
	})
	if err != nil {
		return s.crashSuspect(ctx, k, ik, err)
	}
	return before, after, after.State == models.ActualLRP_UNCLAIMED, nil
}

// crashed computes the row after a crash of cur.
func (s *Store) crashed(cur *models.ActualLRP, reason string) *models.ActualLRP {
	now := s.nowNanos()
	next := s.bump(cur)
	next.CrashCount = models.NextCrashCount(cur, now)
	next.CrashReason = models.Truncate(reason, models.MaxReasonLength)
	next.ActualLrpInstanceKey = nil
	next.ActualLrpNetInfo = nil
	next.Routable = nil
	next.ActualLrpInternalRoutes = nil
	next.AvailabilityZone = ""
	if s.restart.ShouldRestart(0, 0, next.CrashCount) {
		next.State = models.ActualLRP_UNCLAIMED
	} else {
		next.State = models.ActualLRP_CRASHED
	}
	return next
}

func (s *Store) crashSuspect(ctx context.Context, k *models.ActualLRPKey, ik *models.ActualLRPInstanceKey, refusal error) (before, after *models.ActualLRP, auction bool, err error) {
	suspectKey := s.keys.ActualLRP(k.ProcessGuid, k.Index, models.ActualLRP_SUSPECT)
	before, _, err = s.mutateActual(ctx, suspectKey, func(cur *models.ActualLRP) (*models.ActualLRP, []clientv3.Op, error) {
		if cur == nil || !cur.GetActualLrpInstanceKey().Equal(ik) {
			return nil, nil, refusal
		}
		return nil, nil, nil
	})
	return before, nil, false, err
}

// FailActualLRP records why an UNCLAIMED instance could not be placed.
func (s *Store) FailActualLRP(ctx context.Context, k *models.ActualLRPKey, placementError string) (before, after *models.ActualLRP, err error) {
	key := s.keys.ActualLRP(k.ProcessGuid, k.Index, models.ActualLRP_ORDINARY)
	return s.mutateActual(ctx, key, func(cur *models.ActualLRP) (*models.ActualLRP, []clientv3.Op, error) {
		if cur == nil {
			return nil, nil, notFoundActual(k.ProcessGuid, k.Index, models.ActualLRP_ORDINARY)
		}
		if cur.State != models.ActualLRP_UNCLAIMED {
			return nil, nil, models.NewError(models.TypeActualLRPCannotBeFailed,
				"cannot record a placement failure on actual LRP %s/%d: it is %s, not UNCLAIMED", k.ProcessGuid, k.Index, cur.State)
		}
		next := s.bump(cur)
		next.PlacementError = models.Truncate(placementError, models.MaxReasonLength)
		return next, nil, nil
	})
}

// RemoveActualLRP deletes an ORDINARY row; with a non-empty ik only while the
// row still holds that instance.
func (s *Store) RemoveActualLRP(ctx context.Context, processGuid string, index int32, ik *models.ActualLRPInstanceKey) (before *models.ActualLRP, err error) {
	key := s.keys.ActualLRP(processGuid, index, models.ActualLRP_ORDINARY)
	before, _, err = s.mutateActual(ctx, key, func(cur *models.ActualLRP) (*models.ActualLRP, []clientv3.Op, error) {
		if cur == nil {
			return nil, nil, notFoundActual(processGuid, index, models.ActualLRP_ORDINARY)
		}
		if !ik.Empty() && !cur.GetActualLrpInstanceKey().Equal(ik) {
			return nil, nil, models.NewError(models.TypeActualLRPCannotBeRemoved,
				"cannot remove actual LRP %s/%d for instance %s: it holds instance %q on cell %q",
				processGuid, index, ik.GetInstanceGuid(), cur.InstanceGuid(), cur.CellID())
		}
		return nil, nil, nil
	})
	return before, err
}

// RemoveActualLRPIf deletes a row of any presence only while it is still
// the row the caller read (same modification tag), so a retire never
// removes an instance that changed after the caller decided.
func (s *Store) RemoveActualLRPIf(ctx context.Context, expected *models.ActualLRP) (before *models.ActualLRP, err error) {
	k := expected.ActualLrpKey
	key := s.keys.ActualLRP(k.ProcessGuid, k.Index, expected.Presence)
	before, _, err = s.mutateActual(ctx, key, func(cur *models.ActualLRP) (*models.ActualLRP, []clientv3.Op, error) {
		if cur == nil {
			return nil, nil, notFoundActual(k.ProcessGuid, k.Index, expected.Presence)
		}
		if !proto.Equal(cur.ModificationTag, expected.ModificationTag) {
			return nil, nil, models.NewError(models.TypeResourceConflict, "actual LRP %s/%d changed", k.ProcessGuid, k.Index)
		}
		return nil, nil, nil
	})
	return before, err
}

// UnclaimActualLRP puts an ORDINARY row back to UNCLAIMED, clearing its
// instance, so it can be auctioned again.
func (s *Store) UnclaimActualLRP(ctx context.Context, k *models.ActualLRPKey) (before, after *models.ActualLRP, err error) {
	key := s.keys.ActualLRP(k.ProcessGuid, k.Index, models.ActualLRP_ORDINARY)
	return s.mutateActual(ctx, key, func(cur *models.ActualLRP) (*models.ActualLRP, []clientv3.Op, error) {
		if cur == nil {
			return nil, nil, notFoundActual(k.ProcessGuid, k.Index, models.ActualLRP_ORDINARY)
		}
		if cur.State == models.ActualLRP_UNCLAIMED {
			return nil, nil, errNoChange
		}
		return s.unclaimed(cur), nil, nil
	})
}

func (s *Store) unclaimed(cur *models.ActualLRP) *models.ActualLRP {
	next := s.bump(cur)
	next.State = models.ActualLRP_UNCLAIMED
	next.ActualLrpInstanceKey = nil
	next.ActualLrpNetInfo = nil
	next.Routable = nil
	next.ActualLrpInternalRoutes = nil
	next.AvailabilityZone = ""
	next.PlacementError = ""
	return next
}
