package db

import (
	"context"
	"fmt"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"

	"github.com/gavel-scheduler/gavel/proto/models"
)

// presences in the order rows of one index are kept.
var presences = [...]models.ActualLRP_Presence{models.ActualLRP_ORDINARY, models.ActualLRP_EVACUATING, models.ActualLRP_SUSPECT}

// IndexRows are the rows of one index (at most one per presence) with the
// ModRevision each was read at (0 when absent).
type IndexRows struct {
	Rows [3]*models.ActualLRP
	Revs [3]int64
}

// Get returns the row of a presence, or nil.
func (r *IndexRows) Get(p models.ActualLRP_Presence) *models.ActualLRP { return r.Rows[p] }

// indexWrite is one change decided by an indexFunc: the new row of a
// presence, or nil to delete it.
type indexWrite struct {
	presence models.ActualLRP_Presence
	row      *models.ActualLRP
}

// indexFunc decides changes to the rows of one index.
type indexFunc func(r *IndexRows) ([]indexWrite, error)

func (s *Store) readIndex(ctx context.Context, processGuid string, index int32) (*IndexRows, error) {
	resp, err := s.client.Get(ctx, s.keys.ActualLRPIndex(processGuid, index), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("read actual LRP %s/%d: %w", processGuid, index, err)
	}
	return s.absorbIndex(resp.Kvs)
}

func (s *Store) absorbIndex(kvs []*mvccpb.KeyValue) (*IndexRows, error) {
	rows := &IndexRows{}
	for _, kv := range kvs {
		lrp, err := decode[models.ActualLRP](kv)
		if err != nil {
			return nil, err
		}
		if int(lrp.Presence) >= len(rows.Rows) {
			continue
		}
		rows.Rows[lrp.Presence] = lrp
		rows.Revs[lrp.Presence] = kv.ModRevision
		s.actuals.put(string(kv.Key), lrp, kv.ModRevision)
	}
	return rows, nil
}

// mutateIndex applies fn to the rows of one index in a transaction guarded by
// the ModRevision of every presence key, retrying on a lost race.
func (s *Store) mutateIndex(ctx context.Context, processGuid string, index int32, fn indexFunc) (*IndexRows, error) {
	rows, err := s.readIndex(ctx, processGuid, index)
	if err != nil {
		return nil, err
	}
	for range maxAttempts {
		writes, err := fn(rows)
		if err != nil {
			return rows, err
		}
		if len(writes) == 0 {
			return rows, nil
		}
		done, next, err := s.commitIndex(ctx, processGuid, index, rows, writes, nil)
		if err != nil {
			return nil, err
		}
		if done {
			return rows, nil
		}
		rows = next
	}
	return nil, conflictErr(s.keys.ActualLRPIndex(processGuid, index))
}

// commitIndex makes one attempt at writing an index's rows: a transaction
// guarded by the ModRevision of every presence key as rows read it, and by
// cond. It reports whether the writes went in; when they did not, next is
// the index as it is now.
func (s *Store) commitIndex(ctx context.Context, processGuid string, index int32, rows *IndexRows, writes []indexWrite, cond []clientv3.Cmp) (done bool, next *IndexRows, err error) {
	cmps := make([]clientv3.Cmp, 0, len(presences)+len(cond))
	for _, p := range presences {
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(s.keys.ActualLRP(processGuid, index, p)), "=", rows.Revs[p]))
	}
	cmps = append(cmps, cond...)
	ops := make([]clientv3.Op, 0, len(writes))
	for _, w := range writes {
		key := s.keys.ActualLRP(processGuid, index, w.presence)
		if w.row != nil {
			ops = append(ops, clientv3.OpPut(key, string(marshal(w.row))))
		} else {
			ops = append(ops, clientv3.OpDelete(key))
		}
	}
	out := s.batch.commit(ctx, cmps, ops,
		[]clientv3.Op{clientv3.OpGet(s.keys.ActualLRPIndex(processGuid, index), clientv3.WithPrefix())})
	if out.err != nil {
		for _, p := range presences {
			s.actuals.drop(s.keys.ActualLRP(processGuid, index, p))
		}
		return false, nil, fmt.Errorf("write actual LRP %s/%d: %w", processGuid, index, out.err)
	}
	if out.succeeded {
		for _, w := range writes {
			key := s.keys.ActualLRP(processGuid, index, w.presence)
			if w.row != nil {
				s.actuals.put(key, w.row, out.revision)
			} else {
				s.actuals.drop(key)
			}
		}
		return true, nil, nil
	}
	next, err = s.absorbIndex(out.responses[0].GetResponseRange().Kvs)
	return false, next, err
}

// removeStandIn deletes the EVACUATING or SUSPECT row held by ik, if any,
// and reports whether it found one.
func removeStandIn(r *IndexRows, ik *models.ActualLRPInstanceKey) ([]indexWrite, bool) {
	for _, p := range []models.ActualLRP_Presence{models.ActualLRP_EVACUATING, models.ActualLRP_SUSPECT} {
		if row := r.Get(p); row != nil && row.GetActualLrpInstanceKey().Equal(ik) {
			return []indexWrite{{presence: p}}, true
		}
	}
	return nil, false
}

// EvacuateClaimedActualLRP handles a not-yet-running instance on an
// evacuating cell: a stand-in row it holds is deleted; an ORDINARY row it
// holds goes back to UNCLAIMED (auction is true). The container is never
// kept.
func (s *Store) EvacuateClaimedActualLRP(ctx context.Context, k *models.ActualLRPKey, ik *models.ActualLRPInstanceKey) (auction bool, err error) {
	_, err = s.mutateIndex(ctx, k.ProcessGuid, k.Index, func(r *IndexRows) ([]indexWrite, error) {
		auction = false
		if w, ok := removeStandIn(r, ik); ok {
			return w, nil
		}
		ord := r.Get(models.ActualLRP_ORDINARY)
		if ord == nil || !ord.GetActualLrpInstanceKey().Equal(ik) {
			return nil, nil
		}
		auction = true
		return []indexWrite{{presence: models.ActualLRP_ORDINARY, row: s.unclaimed(ord)}}, nil
	})
	return auction, err
}

// EvacuateRunningActualLRP handles a RUNNING instance on an evacuating cell
// (diego-facts §5.6). It keeps the instance serving as an EVACUATING row
// while its ORDINARY slot is auctioned again, and tells the rep to drop the
// container once a replacement runs or the LRP is gone.
func (s *Store) EvacuateRunningActualLRP(ctx context.Context, req *models.EvacuateRunningActualLRPRequest) (keep, auction bool, err error) {
	k, ik := req.ActualLrpKey, req.ActualLrpInstanceKey
	sched, err := s.SchedulingInfo(ctx, k.ProcessGuid)
	desiredGone := models.IsNotFound(err)
	if err != nil && !desiredGone {
		return false, false, err
	}
	recreate := sched.GetUpdateStrategy() == models.UpdateStrategy_RECREATE
	var allRunning bool
	if recreate {
		if allRunning, err = s.allInstancesRunning(ctx, sched); err != nil {
			return false, false, err
		}
	}
	_, err = s.mutateIndex(ctx, k.ProcessGuid, k.Index, func(r *IndexRows) ([]indexWrite, error) {
		keep, auction = false, false
		ord := r.Get(models.ActualLRP_ORDINARY)
		evac := r.Get(models.ActualLRP_EVACUATING)
		dropEvac := func() []indexWrite {
			if evac != nil && evac.GetActualLrpInstanceKey().Equal(ik) {
				return []indexWrite{{presence: models.ActualLRP_EVACUATING}}
			}
			return nil
		}
		replaced := ord != nil && !ord.GetActualLrpInstanceKey().Equal(ik) &&
			(ord.State == models.ActualLRP_RUNNING || ord.State == models.ActualLRP_CRASHED)
		if desiredGone || ord == nil || replaced {
			return dropEvac(), nil
		}
		callerIsOrdinary := ord.GetActualLrpInstanceKey().Equal(ik)
		if recreate {
			// RECREATE keeps no EVACUATING rows: it gives up one instance at
			// a time, and only while every instance is running.
			if callerIsOrdinary && allRunning && (ord.State == models.ActualLRP_RUNNING || ord.State == models.ActualLRP_CLAIMED) {
				auction = true
				return []indexWrite{{presence: models.ActualLRP_ORDINARY, row: s.unclaimed(ord)}}, nil
			}
			keep = callerIsOrdinary
			return nil, nil
		}
		if !callerIsOrdinary {
			if evac != nil && !evac.GetActualLrpInstanceKey().Equal(ik) {
				return nil, nil
			}
			keep = true
			next := s.evacuatingRow(k, evac, req)
			if evac != nil && proto.Equal(withoutVolatile(evac), withoutVolatile(next)) {
				return nil, nil
			}
			return []indexWrite{{presence: models.ActualLRP_EVACUATING, row: next}}, nil
		}
		if ord.State != models.ActualLRP_RUNNING && ord.State != models.ActualLRP_CLAIMED {
			return nil, nil
		}
		keep, auction = true, true
		return []indexWrite{
			{presence: models.ActualLRP_EVACUATING, row: s.evacuatingRow(k, evac, req)},
			{presence: models.ActualLRP_ORDINARY, row: s.unclaimed(ord)},
		}, nil
	})
	return keep, auction, err
}

// evacuatingRow builds the EVACUATING row for the caller's running instance.
func (s *Store) evacuatingRow(k *models.ActualLRPKey, prev *models.ActualLRP, req *models.EvacuateRunningActualLRPRequest) *models.ActualLRP {
	var next *models.ActualLRP
	if prev != nil {
		next = s.bump(prev)
	} else {
		next = &models.ActualLRP{ModificationTag: &models.ModificationTag{Epoch: newEpoch()}, Since: s.nowNanos()}
	}
	next.ActualLrpKey = proto.Clone(k).(*models.ActualLRPKey)
	next.ActualLrpInstanceKey = proto.Clone(req.ActualLrpInstanceKey).(*models.ActualLRPInstanceKey)
	next.ActualLrpNetInfo = proto.Clone(req.ActualLrpNetInfo).(*models.ActualLRPNetInfo)
	next.ActualLrpInternalRoutes = req.ActualLrpInternalRoutes
	next.MetricTags = req.MetricTags
	next.Routable = req.Routable
	next.AvailabilityZone = req.AvailabilityZone
	next.State = models.ActualLRP_RUNNING
	next.Presence = models.ActualLRP_EVACUATING
	return next
}

// withoutVolatile strips the fields every write changes, to tell whether a
// write would change anything else.
func withoutVolatile(a *models.ActualLRP) *models.ActualLRP {
	c := proto.Clone(a).(*models.ActualLRP)
	c.ModificationTag = nil
	c.Since = 0
	return c
}

func (s *Store) allInstancesRunning(ctx context.Context, sched *models.DesiredLRPSchedulingInfo) (bool, error) {
	guid := sched.GetDesiredLrpKey().GetProcessGuid()
	lrps, _, err := s.ActualLRPs(ctx, ActualLRPFilter{ProcessGuid: guid})
	if err != nil {
		return false, err
	}
	running := 0
	for _, a := range lrps {
		if a.Presence == models.ActualLRP_ORDINARY && a.State == models.ActualLRP_RUNNING {
			running++
		}
	}
	return running >= int(sched.Instances), nil
}

// EvacuateStoppedActualLRP handles an instance that stopped on an
// evacuating cell: its stand-in row, else its ORDINARY row, is deleted.
func (s *Store) EvacuateStoppedActualLRP(ctx context.Context, k *models.ActualLRPKey, ik *models.ActualLRPInstanceKey) error {
	_, err := s.mutateIndex(ctx, k.ProcessGuid, k.Index, func(r *IndexRows) ([]indexWrite, error) {
		if w, ok := removeStandIn(r, ik); ok {
			return w, nil
		}
		if ord := r.Get(models.ActualLRP_ORDINARY); ord != nil && ord.GetActualLrpInstanceKey().Equal(ik) {
			return []indexWrite{{presence: models.ActualLRP_ORDINARY}}, nil
		}
		return nil, nil
	})
	return err
}

// EvacuateCrashedActualLRP handles an instance that crashed on an evacuating
// cell: its stand-in row is deleted, else its ORDINARY row records the crash
// (without asking for an auction: the cell is leaving, convergence
// restarts it elsewhere).
func (s *Store) EvacuateCrashedActualLRP(ctx context.Context, k *models.ActualLRPKey, ik *models.ActualLRPInstanceKey, reason string) error {
	_, err := s.mutateIndex(ctx, k.ProcessGuid, k.Index, func(r *IndexRows) ([]indexWrite, error) {
		if w, ok := removeStandIn(r, ik); ok {
			return w, nil
		}
		ord := r.Get(models.ActualLRP_ORDINARY)
		if ord == nil || !ord.AllowsTransitionTo(ik, models.ActualLRP_CRASHED) {
			return nil, nil
		}
		next := s.crashed(ord, reason)
		next.State = models.ActualLRP_CRASHED
		return []indexWrite{{presence: models.ActualLRP_ORDINARY, row: next}}, nil
	})
	return err
}

// RemoveEvacuatingActualLRP deletes the EVACUATING row of an index while it
// holds ik. A missing row is not an error: the goal state holds.
func (s *Store) RemoveEvacuatingActualLRP(ctx context.Context, k *models.ActualLRPKey, ik *models.ActualLRPInstanceKey) error {
	_, err := s.mutateIndex(ctx, k.ProcessGuid, k.Index, func(r *IndexRows) ([]indexWrite, error) {
		if evac := r.Get(models.ActualLRP_EVACUATING); evac != nil && evac.GetActualLrpInstanceKey().Equal(ik) {
			return []indexWrite{{presence: models.ActualLRP_EVACUATING}}, nil
		}
		return nil, nil
	})
	return err
}
