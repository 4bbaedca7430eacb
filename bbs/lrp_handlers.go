package bbs

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/gavel-scheduler/gavel/bbs/db"
	"github.com/gavel-scheduler/gavel/proto/models"
)

// retireAttempts is how often a retire re-reads a row that keeps changing.
const retireAttempts = 5

// ListDomains lists the fresh domains.
func (s *Server) ListDomains(ctx context.Context, _ *models.ListDomainsRequest) (*models.ListDomainsResponse, error) {
	ds, err := s.store.Domains(ctx)
	if err != nil {
		return nil, err
	}
	return &models.ListDomainsResponse{Domains: ds}, nil
}

// UpsertDomain marks a domain fresh.
func (s *Server) UpsertDomain(ctx context.Context, req *models.UpsertDomainRequest) (*models.UpsertDomainResponse, error) {
	if err := s.store.UpsertDomain(ctx, req.Domain, time.Duration(req.Ttl)*time.Second); err != nil {
		return nil, err
	}
	return &models.UpsertDomainResponse{}, nil
}

// DesireLRP stores a desired LRP with its instances and asks for their
// placement.
func (s *Server) DesireLRP(ctx context.Context, req *models.DesireLRPRequest) (*models.DesireLRPResponse, error) {
	sched, created, err := s.store.DesireLRP(ctx, req.DesiredLrp)
	if sched != nil {
		s.requestLRPAuctions(ctx, sched, indicesOf(created))
	}
	if err != nil {
		return nil, err
	}
	s.logger.Info("desired LRP created", "process_guid", req.DesiredLrp.ProcessGuid, "instances", req.DesiredLrp.Instances)
	return &models.DesireLRPResponse{}, nil
}

func indicesOf(rows []*models.ActualLRP) []int32 {
	out := make([]int32, len(rows))
	for i, r := range rows {
		out[i] = r.Index()
	}
	return out
}

// UpdateDesiredLRP changes a desired LRP's mutable fields and brings its
// instance count to the new value: new slots are created and auctioned,
// slots past the new count are retired. When the internal routes or metric
// tags changed, the cells of the running instances are told.
func (s *Server) UpdateDesiredLRP(ctx context.Context, req *models.UpdateDesiredLRPRequest) (*models.UpdateDesiredLRPResponse, error) {
	before, after, err := s.store.UpdateDesiredLRP(ctx, req.ProcessGuid, req.Update)
	if err != nil {
		return nil, err
	}
	err = s.reconcileCount(ctx, before, after)
	if models.InstanceInfoChanged(before, after) {
		s.updateInstances(ctx, after)
	}
	if err != nil {
		return nil, err
	}
	return &models.UpdateDesiredLRPResponse{}, nil
}

// updateWorkers bounds the UpdateLRPInstance calls one update makes at once.
const updateWorkers = 32

// updateInstances asks the cell of every non-evacuating CLAIMED or RUNNING
// instance below the LRP's instance count (the ones above are being
// stopped) to report the LRP's internal routes and metric tags from now on.
// It changes no BBS state: each cell's next StartActualLRP does. It is
// best effort, as the stop calls are: what it cannot reach is logged, and
// convergence (diego-facts §6.1 rules 13 and 14) repairs the drift later.
func (s *Server) updateInstances(ctx context.Context, sched *models.DesiredLRPSchedulingInfo) {
	guid := sched.ProcessGuid()
	log := s.logger.With("process_guid", guid)
	if s.cells == nil {
		log.Warn("cannot update instances: this BBS has no rep client configured; convergence updates them")
		return
	}
	lrps, _, err := s.store.ActualLRPs(ctx, db.ActualLRPFilter{ProcessGuid: guid})
	if err != nil {
		log.Warn("update instances: list actual LRPs", "error", err)
		return
	}
	present, err := s.store.Cells(ctx)
	if err != nil {
		log.Warn("update instances: list cells", "error", err)
		return
	}
	cells := make(map[string]*models.CellPresence, len(present))
	for _, c := range present {
		cells[c.GetCellId()] = c
	}
	routes, rerr := sched.InternalRoutes()
	if rerr != nil {
		log.Warn("bad internal routes skipped", "error", rerr)
	}
	sem := make(chan struct{}, updateWorkers)
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, a := range lrps {
		st := a.GetState()
		if a.GetPresence() == models.ActualLRP_EVACUATING || (st != models.ActualLRP_CLAIMED && st != models.ActualLRP_RUNNING) ||
			a.Index() >= sched.GetInstances() {
			continue
		}
		ilog := log.With("index", a.Index(), "instance_guid", a.InstanceGuid(), "cell_id", a.CellID())
		cell := cells[a.CellID()]
		if cell == nil {
			ilog.Debug("instance's cell is not present; not updated")
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			cctx, cancel := context.WithTimeout(ctx, requestTimeout)
			defer cancel()
			tags := sched.InstanceMetricTags(a.Index(), a.InstanceGuid())
			if err := s.cells.UpdateLRPInstance(cctx, cell, a.ActualLrpKey, a.ActualLrpInstanceKey, routes, tags); err != nil {
				ilog.Warn("update instance", "error", err)
			}
		})
	}
}

func (s *Server) reconcileCount(ctx context.Context, before, after *models.DesiredLRPSchedulingInfo) error {
	guid := after.ProcessGuid()
	switch {
	case after.Instances > before.Instances:
		indices := make([]int32, 0, after.Instances-before.Instances)
		for i := before.Instances; i < after.Instances; i++ {
			indices = append(indices, i)
		}
		created, err := s.store.CreateUnclaimedActualLRPs(ctx, guid, after.GetDesiredLrpKey().GetDomain(), indices)
		s.requestLRPAuctions(ctx, after, indicesOf(created))
		if err != nil {
			return fmt.Errorf("scale %s up to %d: %w", guid, after.Instances, err)
		}
	case after.Instances < before.Instances:
		return s.stopFrom(ctx, guid, after.Instances)
	}
	return nil
}

// stopFrom retires every ORDINARY instance of guid with index ≥ from.
// EVACUATING rows are left to their evacuating cell; SUSPECT rows to
// convergence.
func (s *Server) stopFrom(ctx context.Context, guid string, from int32) error {
	lrps, _, err := s.store.ActualLRPs(ctx, db.ActualLRPFilter{ProcessGuid: guid})
	if err != nil {
		return err
	}
	var errs []error
	for _, a := range lrps {
		if a.Presence != models.ActualLRP_ORDINARY || a.Index() < from {
			continue
		}
		if err := s.retire(ctx, a); err != nil && !models.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// RemoveDesiredLRP deletes a desired LRP and retires all its instances.
func (s *Server) RemoveDesiredLRP(ctx context.Context, req *models.RemoveDesiredLRPRequest) (*models.RemoveDesiredLRPResponse, error) {
	if _, err := s.store.RemoveDesiredLRP(ctx, req.ProcessGuid); err != nil {
		return nil, err
	}
	if err := s.stopFrom(ctx, req.ProcessGuid, 0); err != nil {
		// The desired LRP is gone; leftovers are orphans that convergence
		// and the reps' sync remove. Report, but do not fail the call.
		s.logger.Warn("stop instances of removed LRP", "process_guid", req.ProcessGuid, "error", err)
	}
	s.logger.Info("desired LRP removed", "process_guid", req.ProcessGuid)
	return &models.RemoveDesiredLRPResponse{}, nil
}

// ListDesiredLRPs lists full desired LRPs.
func (s *Server) ListDesiredLRPs(ctx context.Context, req *models.ListDesiredLRPsRequest) (*models.ListDesiredLRPsResponse, error) {
	ds, rev, err := s.store.DesiredLRPs(ctx, db.DesiredLRPFilter{Domain: req.Domain, ProcessGuids: req.ProcessGuids})
	if err != nil {
		return nil, err
	}
	return &models.ListDesiredLRPsResponse{DesiredLrps: ds, Revision: rev}, nil
}

// GetDesiredLRP returns one desired LRP.
func (s *Server) GetDesiredLRP(ctx context.Context, req *models.GetDesiredLRPRequest) (*models.GetDesiredLRPResponse, error) {
	d, err := s.store.DesiredLRP(ctx, req.ProcessGuid)
	if err != nil {
		return nil, err
	}
	return &models.GetDesiredLRPResponse{DesiredLrp: d}, nil
}

// ListDesiredLRPSchedulingInfos lists scheduling infos.
func (s *Server) ListDesiredLRPSchedulingInfos(ctx context.Context, req *models.ListDesiredLRPsRequest) (*models.ListDesiredLRPSchedulingInfosResponse, error) {
	ss, rev, err := s.store.SchedulingInfos(ctx, db.DesiredLRPFilter{Domain: req.Domain, ProcessGuids: req.ProcessGuids})
	if err != nil {
		return nil, err
	}
	return &models.ListDesiredLRPSchedulingInfosResponse{DesiredLrpSchedulingInfos: ss, Revision: rev}, nil
}

// GetDesiredLRPSchedulingInfo returns one scheduling info.
func (s *Server) GetDesiredLRPSchedulingInfo(ctx context.Context, req *models.GetDesiredLRPRequest) (*models.GetDesiredLRPSchedulingInfoResponse, error) {
	sc, err := s.store.SchedulingInfo(ctx, req.ProcessGuid)
	if err != nil {
		return nil, err
	}
	return &models.GetDesiredLRPSchedulingInfoResponse{DesiredLrpSchedulingInfo: sc}, nil
}

// ListActualLRPs lists actual LRPs.
func (s *Server) ListActualLRPs(ctx context.Context, req *models.ListActualLRPsRequest) (*models.ListActualLRPsResponse, error) {
	lrps, rev, err := s.store.ActualLRPs(ctx, db.ActualLRPFilter{
		Domain: req.Domain, CellID: req.CellId, ProcessGuid: req.ProcessGuid, Index: req.Index,
	})
	if err != nil {
		return nil, err
	}
	return &models.ListActualLRPsResponse{ActualLrps: lrps, Revision: rev}, nil
}

// ClaimActualLRP records that a cell reserved a container for an instance.
func (s *Server) ClaimActualLRP(ctx context.Context, req *models.ClaimActualLRPRequest) (*models.ActualLRPLifecycleResponse, error) {
	_, after, err := s.store.ClaimActualLRP(ctx, req.ProcessGuid, req.Index, req.ActualLrpInstanceKey)
	if err != nil {
		return nil, err
	}
	return &models.ActualLRPLifecycleResponse{ActualLrp: after}, nil
}

// StartActualLRP records that an instance runs and passes its health check.
func (s *Server) StartActualLRP(ctx context.Context, req *models.StartActualLRPRequest) (*models.ActualLRPLifecycleResponse, error) {
	_, after, err := s.store.StartActualLRP(ctx, req)
	if err != nil {
		return nil, err
	}
	return &models.ActualLRPLifecycleResponse{ActualLrp: after}, nil
}

// CrashActualLRP records an instance's exit and restarts it per the crash
// policy.
func (s *Server) CrashActualLRP(ctx context.Context, req *models.CrashActualLRPRequest) (*models.ActualLRPLifecycleResponse, error) {
	_, after, auction, err := s.store.CrashActualLRP(ctx, req.ActualLrpKey, req.ActualLrpInstanceKey, req.ErrorMessage)
	if err != nil {
		return nil, err
	}
	if auction {
		s.auctionIndex(ctx, req.ActualLrpKey)
	}
	return &models.ActualLRPLifecycleResponse{ActualLrp: after}, nil
}

// auctionIndex asks for a placement of one freed slot.
func (s *Server) auctionIndex(ctx context.Context, k *models.ActualLRPKey) {
	sched, err := s.store.SchedulingInfo(ctx, k.ProcessGuid)
	if err != nil {
		s.logger.Warn("auction freed instance", "process_guid", k.ProcessGuid, "index", k.Index, "error", err)
		return
	}
	s.requestLRPAuctions(ctx, sched, []int32{k.Index})
}

// FailActualLRP records a placement failure.
func (s *Server) FailActualLRP(ctx context.Context, req *models.FailActualLRPRequest) (*models.ActualLRPLifecycleResponse, error) {
	_, after, err := s.store.FailActualLRP(ctx, req.ActualLrpKey, req.ErrorMessage)
	if err != nil {
		return nil, err
	}
	return &models.ActualLRPLifecycleResponse{ActualLrp: after}, nil
}

// RemoveActualLRP deletes an ORDINARY instance row.
func (s *Server) RemoveActualLRP(ctx context.Context, req *models.RemoveActualLRPRequest) (*models.ActualLRPLifecycleResponse, error) {
	if _, err := s.store.RemoveActualLRP(ctx, req.ProcessGuid, req.Index, req.ActualLrpInstanceKey); err != nil {
		return nil, err
	}
	return &models.ActualLRPLifecycleResponse{}, nil
}

// RetireActualLRP stops one instance: an unplaced or crashed row is deleted;
// a claimed or running one is stopped by its cell (or deleted when its cell
// is gone).
func (s *Server) RetireActualLRP(ctx context.Context, req *models.RetireActualLRPRequest) (*models.ActualLRPLifecycleResponse, error) {
	k := req.ActualLrpKey
	var err error
	for range retireAttempts {
		var row *models.ActualLRP
		if row, err = s.store.ActualLRP(ctx, k.ProcessGuid, k.Index, models.ActualLRP_ORDINARY); err != nil {
			return nil, err
		}
		if err = s.retire(ctx, row); err == nil || !errors.Is(err, models.ErrResourceConflict) {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	return &models.ActualLRPLifecycleResponse{}, nil
}

// retire stops or deletes one row as it was read.
func (s *Server) retire(ctx context.Context, row *models.ActualLRP) error {
	switch row.State {
	case models.ActualLRP_UNCLAIMED, models.ActualLRP_CRASHED:
		_, err := s.store.RemoveActualLRPIf(ctx, row)
		return err
	}
	cell, err := s.store.Cell(ctx, row.CellID())
	if models.IsNotFound(err) {
		_, err = s.store.RemoveActualLRPIf(ctx, row)
		return err
	}
	if err != nil {
		return err
	}
	if s.cells == nil {
		return models.NewError(models.TypeUnavailable,
			"cannot stop %s/%d on cell %s: this BBS has no rep client configured", row.ProcessGuid(), row.Index(), row.CellID())
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	if err := s.cells.StopLRPInstance(ctx, cell, row.ActualLrpKey, row.ActualLrpInstanceKey); err != nil {
		return models.NewError(models.TypeUnavailable, "stop %s/%d on cell %s: %v", row.ProcessGuid(), row.Index(), row.CellID(), err)
	}
	return nil
}

// EvacuateClaimedActualLRP: see db.Store.EvacuateClaimedActualLRP.
func (s *Server) EvacuateClaimedActualLRP(ctx context.Context, req *models.EvacuateClaimedActualLRPRequest) (*models.EvacuationResponse, error) {
	auction, err := s.store.EvacuateClaimedActualLRP(ctx, req.ActualLrpKey, req.ActualLrpInstanceKey)
	if err != nil {
		return nil, err
	}
	if auction {
		s.auctionIndex(ctx, req.ActualLrpKey)
	}
	return &models.EvacuationResponse{KeepContainer: false}, nil
}

// EvacuateRunningActualLRP: see db.Store.EvacuateRunningActualLRP.
func (s *Server) EvacuateRunningActualLRP(ctx context.Context, req *models.EvacuateRunningActualLRPRequest) (*models.EvacuationResponse, error) {
	keep, auction, err := s.store.EvacuateRunningActualLRP(ctx, req)
	if err != nil {
		return nil, err
	}
	if auction {
		s.auctionIndex(ctx, req.ActualLrpKey)
	}
	return &models.EvacuationResponse{KeepContainer: keep}, nil
}

// EvacuateStoppedActualLRP: see db.Store.EvacuateStoppedActualLRP.
func (s *Server) EvacuateStoppedActualLRP(ctx context.Context, req *models.EvacuateStoppedActualLRPRequest) (*models.EvacuationResponse, error) {
	if err := s.store.EvacuateStoppedActualLRP(ctx, req.ActualLrpKey, req.ActualLrpInstanceKey); err != nil {
		return nil, err
	}
	return &models.EvacuationResponse{}, nil
}

// EvacuateCrashedActualLRP: see db.Store.EvacuateCrashedActualLRP.
func (s *Server) EvacuateCrashedActualLRP(ctx context.Context, req *models.EvacuateCrashedActualLRPRequest) (*models.EvacuationResponse, error) {
	if err := s.store.EvacuateCrashedActualLRP(ctx, req.ActualLrpKey, req.ActualLrpInstanceKey, req.ErrorMessage); err != nil {
		return nil, err
	}
	return &models.EvacuationResponse{}, nil
}

// RemoveEvacuatingActualLRP: see db.Store.RemoveEvacuatingActualLRP.
func (s *Server) RemoveEvacuatingActualLRP(ctx context.Context, req *models.RemoveEvacuatingActualLRPRequest) (*models.EvacuationResponse, error) {
	if err := s.store.RemoveEvacuatingActualLRP(ctx, req.ActualLrpKey, req.ActualLrpInstanceKey); err != nil {
		return nil, err
	}
	return &models.EvacuationResponse{}, nil
}

// ListCells lists present cells.
func (s *Server) ListCells(ctx context.Context, _ *models.ListCellsRequest) (*models.ListCellsResponse, error) {
	cells, err := s.store.Cells(ctx)
	if err != nil {
		return nil, err
	}
	return &models.ListCellsResponse{Cells: cells}, nil
}

// GetCell returns one present cell.
func (s *Server) GetCell(ctx context.Context, req *models.GetCellRequest) (*models.GetCellResponse, error) {
	c, err := s.store.Cell(ctx, req.CellId)
	if err != nil {
		return nil, err
	}
	return &models.GetCellResponse{Cell: c}, nil
}

// SetCellPresence writes or refreshes a cell's presence.
func (s *Server) SetCellPresence(ctx context.Context, req *models.SetCellPresenceRequest) (*models.SetCellPresenceResponse, error) {
	id, err := s.store.SetCellPresence(ctx, req.Cell, time.Duration(req.TtlSeconds)*time.Second, req.LeaseId)
	if err != nil {
		return nil, err
	}
	return &models.SetCellPresenceResponse{LeaseId: id}, nil
}

// SubscribeLRPEvents streams LRP events from the requested position.
func (s *Server) SubscribeLRPEvents(req *models.SubscribeLRPEventsRequest, stream models.BBS_SubscribeLRPEventsServer) error {
	ctx, cancel := s.streamContext(stream.Context())
	defer cancel()
	return s.closedAsUnavailable(s.events.LRPEvents(ctx, req, stream.Send))
}

// SubscribeTaskEvents streams task events from the requested position.
func (s *Server) SubscribeTaskEvents(req *models.SubscribeTaskEventsRequest, stream models.BBS_SubscribeTaskEventsServer) error {
	ctx, cancel := s.streamContext(stream.Context())
	defer cancel()
	return s.closedAsUnavailable(s.events.TaskEvents(ctx, req, stream.Send))
}

// closedAsUnavailable tells a client whose stream was ended by shutdown to
// resume elsewhere, instead of reporting a cancellation it did not ask for.
func (s *Server) closedAsUnavailable(err error) error {
	if err != nil && s.closing.Err() != nil {
		return models.NewError(models.TypeUnavailable, "BBS shutting down: resume the stream from the last position")
	}
	return err
}
