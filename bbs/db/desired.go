package db

import (
	"context"
	"fmt"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"

	"github.com/gavel-scheduler/gavel/proto/models"
)

// DesiredLRPFilter selects desired LRPs; empty fields match everything.
type DesiredLRPFilter struct {
	Domain       string
	ProcessGuids []string
}

func (f DesiredLRPFilter) matches(s *models.DesiredLRPSchedulingInfo) bool {
	return f.Domain == "" || s.GetDesiredLrpKey().GetDomain() == f.Domain
}

func notFoundDesired(guid string) error {
	return models.NewError(models.TypeResourceNotFound, "desired LRP %q not found", guid)
}

// DesireLRP stores a new desired LRP and creates its UNCLAIMED instances.
// When the instances fit, the desired LRP and all of them are written in one
// transaction; a larger LRP writes its first instances with it and the rest
// in further transactions of at most 128 operations, each guarded by the
// desired LRP still being this one, so every instance is written whole or
// not at all. It returns the stored scheduling info and the created rows.
func (s *Store) DesireLRP(ctx context.Context, d *models.DesiredLRP) (*models.DesiredLRPSchedulingInfo, []*models.ActualLRP, error) {
	d = proto.Clone(d).(*models.DesiredLRP)
	d.ModificationTag = &models.ModificationTag{Epoch: newEpoch()}
	d.CreatedAt = s.nowNanos()
	sched, run := d.SchedulingInfo(), d.RunInfo()
	guid, domain := d.ProcessGuid, d.Domain
	schedKey := s.keys.SchedulingInfo(guid)

	indices := make([]int32, d.Instances)
	for i := range indices {
		indices[i] = int32(i)
	}
	first := min(len(indices), maxTxnOps-2)
	cmps := []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(schedKey), "=", 0)}
	ops := []clientv3.Op{
		clientv3.OpPut(schedKey, string(marshal(sched))),
		clientv3.OpPut(s.keys.RunInfo(guid), string(marshal(run))),
	}
	rows := make([]*models.ActualLRP, 0, first)
	for _, i := range indices[:first] {
		row := s.newUnclaimed(guid, domain, i)
		key := s.keys.ActualLRP(guid, i, models.ActualLRP_ORDINARY)
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(key), "=", 0))
		ops = append(ops, clientv3.OpPut(key, string(marshal(row))))
		rows = append(rows, row)
	}
	resp, err := s.client.Txn(ctx).If(cmps...).Then(ops...).Else(clientv3.OpGet(schedKey, clientv3.WithCountOnly())).Commit()
	if err != nil {
		return nil, nil, fmt.Errorf("desire LRP %s: %w", guid, err)
	}
	var created []*models.ActualLRP
	var createRev int64
	rest := indices[first:]
	switch {
	case resp.Succeeded:
		createRev = resp.Header.Revision
		for _, r := range rows {
			s.actuals.put(s.keys.ActualLRP(guid, r.ActualLrpKey.Index, models.ActualLRP_ORDINARY), r, createRev)
		}
		created = rows
	case resp.Responses[0].GetResponseRange().Count > 0:
		return nil, nil, models.NewError(models.TypeResourceExists, "desired LRP %q already exists", guid)
	default:
		// Some instance slots are still held by rows of an earlier LRP with
		// this guid (instances being stopped): write the LRP alone, then only
		// the free slots.
		resp, err = s.client.Txn(ctx).If(cmps[0]).Then(ops[:2]...).Commit()
		if err != nil {
			return nil, nil, fmt.Errorf("desire LRP %s: %w", guid, err)
		}
		if !resp.Succeeded {
			return nil, nil, models.NewError(models.TypeResourceExists, "desired LRP %q already exists", guid)
		}
		createRev = resp.Header.Revision
		rest = indices
	}
	if len(rest) > 0 {
		guard := []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(schedKey), "=", createRev)}
		more, err := s.createUnclaimed(ctx, guid, domain, rest, guard)
		created = append(created, more...)
		if err != nil {
			// The LRP is stored; convergence creates whatever is missing.
			return sched, created, fmt.Errorf("desire LRP %s: create instances: %w", guid, err)
		}
	}
	return sched, created, nil
}

// readDesired reads both halves of a desired LRP in one round trip.
func (s *Store) readDesired(ctx context.Context, guid string) (sched *models.DesiredLRPSchedulingInfo, run *models.DesiredLRPRunInfo, schedRev, runRev int64, err error) {
	resp, err := s.client.Txn(ctx).Then(clientv3.OpGet(s.keys.SchedulingInfo(guid)), clientv3.OpGet(s.keys.RunInfo(guid))).Commit()
	if err != nil {
		return nil, nil, 0, 0, fmt.Errorf("read desired LRP %s: %w", guid, err)
	}
	schedKvs := resp.Responses[0].GetResponseRange().Kvs
	if len(schedKvs) == 0 {
		return nil, nil, 0, 0, notFoundDesired(guid)
	}
	if sched, err = decode[models.DesiredLRPSchedulingInfo](schedKvs[0]); err != nil {
		return nil, nil, 0, 0, err
	}
	run = &models.DesiredLRPRunInfo{DesiredLrpKey: sched.DesiredLrpKey}
	if runKvs := resp.Responses[1].GetResponseRange().Kvs; len(runKvs) > 0 {
		if run, err = decode[models.DesiredLRPRunInfo](runKvs[0]); err != nil {
			return nil, nil, 0, 0, err
		}
		runRev = runKvs[0].ModRevision
	}
	return sched, run, schedKvs[0].ModRevision, runRev, nil
}

// UpdateDesiredLRP applies an update to a desired LRP's mutable fields. The
// scheduling info is always rewritten (its modification tag moves, so every
// update shows in the event stream); the run info only when it changed.
// Creating or stopping instances for a new instance count is the caller's
// job.
func (s *Store) UpdateDesiredLRP(ctx context.Context, guid string, update *models.DesiredLRPUpdate) (before, after *models.DesiredLRPSchedulingInfo, err error) {
	sched, run, schedRev, runRev, err := s.readDesired(ctx, guid)
	if err != nil {
		return nil, nil, err
	}
	for range maxAttempts {
		nextSched := proto.Clone(sched).(*models.DesiredLRPSchedulingInfo)
		nextRun := proto.Clone(run).(*models.DesiredLRPRunInfo)
		_, runChanged := update.Apply(nextSched, nextRun)
		if nextSched.ModificationTag == nil {
			nextSched.ModificationTag = &models.ModificationTag{Epoch: newEpoch()}
		}
		nextSched.ModificationTag.Index++
		ops := []clientv3.Op{clientv3.OpPut(s.keys.SchedulingInfo(guid), string(marshal(nextSched)))}
		if runChanged {
			ops = append(ops, clientv3.OpPut(s.keys.RunInfo(guid), string(marshal(nextRun))))
		}
		resp, err := s.client.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(s.keys.SchedulingInfo(guid)), "=", schedRev),
				clientv3.Compare(clientv3.ModRevision(s.keys.RunInfo(guid)), "=", runRev)).
			Then(ops...).Commit()
		if err != nil {
			return nil, nil, fmt.Errorf("update desired LRP %s: %w", guid, err)
		}
		if resp.Succeeded {
			return sched, nextSched, nil
		}
		if sched, run, schedRev, runRev, err = s.readDesired(ctx, guid); err != nil {
			return nil, nil, err
		}
	}
	return nil, nil, conflictErr(s.keys.SchedulingInfo(guid))
}

// RemoveDesiredLRP deletes a desired LRP (both halves). Its instances are
// left for the caller to stop.
func (s *Store) RemoveDesiredLRP(ctx context.Context, guid string) (*models.DesiredLRPSchedulingInfo, error) {
	for range maxAttempts {
		sched, _, schedRev, _, err := s.readDesired(ctx, guid)
		if err != nil {
			return nil, err
		}
		resp, err := s.client.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(s.keys.SchedulingInfo(guid)), "=", schedRev)).
			Then(clientv3.OpDelete(s.keys.SchedulingInfo(guid)), clientv3.OpDelete(s.keys.RunInfo(guid))).Commit()
		if err != nil {
			return nil, fmt.Errorf("remove desired LRP %s: %w", guid, err)
		}
		if resp.Succeeded {
			return sched, nil
		}
	}
	return nil, conflictErr(s.keys.SchedulingInfo(guid))
}

// DesiredLRP returns one full desired LRP.
func (s *Store) DesiredLRP(ctx context.Context, guid string) (*models.DesiredLRP, error) {
	sched, run, _, _, err := s.readDesired(ctx, guid)
	if err != nil {
		return nil, err
	}
	return models.NewDesiredLRP(sched, run), nil
}

// SchedulingInfo returns one desired LRP's scheduling info.
func (s *Store) SchedulingInfo(ctx context.Context, guid string) (*models.DesiredLRPSchedulingInfo, error) {
	resp, err := s.client.Get(ctx, s.keys.SchedulingInfo(guid))
	if err != nil {
		return nil, fmt.Errorf("read desired LRP %s: %w", guid, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, notFoundDesired(guid)
	}
	return decode[models.DesiredLRPSchedulingInfo](resp.Kvs[0])
}

// SchedulingInfos lists scheduling infos matching f, with the revision they
// were read at.
func (s *Store) SchedulingInfos(ctx context.Context, f DesiredLRPFilter) ([]*models.DesiredLRPSchedulingInfo, int64, error) {
	kvs, rev, err := s.rangeOrKeys(ctx, s.keys.SchedulingInfos(), f.ProcessGuids, s.keys.SchedulingInfo, 0)
	if err != nil {
		return nil, 0, fmt.Errorf("list desired LRPs: %w", err)
	}
	out := make([]*models.DesiredLRPSchedulingInfo, 0, len(kvs))
	for _, kv := range kvs {
		sched, err := decode[models.DesiredLRPSchedulingInfo](kv)
		if err != nil {
			s.logger.Warn("skipping undecodable desired LRP", "key", string(kv.Key), "error", err)
			continue
		}
		if f.matches(sched) {
			out = append(out, sched)
		}
	}
	return out, rev, nil
}

// DesiredLRPs lists full desired LRPs matching f. Both halves are read at the
// same revision, so a desired LRP is never paired with another version's run
// info.
func (s *Store) DesiredLRPs(ctx context.Context, f DesiredLRPFilter) ([]*models.DesiredLRP, int64, error) {
	scheds, rev, err := s.SchedulingInfos(ctx, f)
	if err != nil {
		return nil, 0, err
	}
	guids := make([]string, len(scheds))
	for i, sc := range scheds {
		guids[i] = sc.GetDesiredLrpKey().GetProcessGuid()
	}
	var runKvs []*mvccpb.KeyValue
	if len(f.ProcessGuids) == 0 && f.Domain == "" {
		runKvs, _, err = s.rangeOrKeys(ctx, s.keys.RunInfos(), nil, s.keys.RunInfo, rev)
	} else {
		runKvs, _, err = s.rangeOrKeys(ctx, s.keys.RunInfos(), guids, s.keys.RunInfo, rev)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("list desired LRPs: %w", err)
	}
	runs := make(map[string]*models.DesiredLRPRunInfo, len(runKvs))
	for _, kv := range runKvs {
		run, err := decode[models.DesiredLRPRunInfo](kv)
		if err != nil {
			s.logger.Warn("skipping undecodable run info", "key", string(kv.Key), "error", err)
			continue
		}
		runs[run.GetDesiredLrpKey().GetProcessGuid()] = run
	}
	out := make([]*models.DesiredLRP, 0, len(scheds))
	for _, sc := range scheds {
		run := runs[sc.GetDesiredLrpKey().GetProcessGuid()]
		if run == nil {
			run = &models.DesiredLRPRunInfo{DesiredLrpKey: sc.DesiredLrpKey}
		}
		out = append(out, models.NewDesiredLRP(sc, run))
	}
	return out, rev, nil
}

// rangeOrKeys reads a whole prefix, or only the keys of the given ids (in
// transactions of at most 128 reads), at revision rev (latest when 0).
func (s *Store) rangeOrKeys(ctx context.Context, prefix string, ids []string, keyOf func(string) string, rev int64) ([]*mvccpb.KeyValue, int64, error) {
	if len(ids) == 0 {
		opts := []clientv3.OpOption{clientv3.WithPrefix()}
		if rev > 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := s.client.Get(ctx, prefix, opts...)
		if err != nil {
			return nil, 0, err
		}
		return resp.Kvs, resp.Header.Revision, nil
	}
	var kvs []*mvccpb.KeyValue
	for start := 0; start < len(ids); start += maxTxnOps {
		end := min(start+maxTxnOps, len(ids))
		ops := make([]clientv3.Op, 0, end-start)
		for _, id := range ids[start:end] {
			var opts []clientv3.OpOption
			if rev > 0 {
				opts = append(opts, clientv3.WithRev(rev))
			}
			ops = append(ops, clientv3.OpGet(keyOf(id), opts...))
		}
		resp, err := s.client.Txn(ctx).Then(ops...).Commit()
		if err != nil {
			return nil, 0, err
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		for _, r := range resp.Responses {
			kvs = append(kvs, r.GetResponseRange().Kvs...)
		}
	}
	return kvs, rev, nil
}
