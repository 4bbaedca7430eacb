package rep

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"sync/atomic"

	"github.com/google/uuid"
	"google.golang.org/grpc"

	"github.com/gavel-scheduler/gavel/executor/logs"
	"github.com/gavel-scheduler/gavel/proto/models"
)

// CellInfo is what a cell announces about itself; fixed for the life of a
// rep.
type CellInfo struct {
	CellID     string
	RepAddress string
	Zone       string
	Index      int32
	// RootFSProviders: `preloaded` (and `preloaded+layer`) list the stacks
	// the cell has; any other scheme named runs any image of it.
	RootFSProviders       []*models.Provider
	PlacementTags         []string
	OptionalPlacementTags []string
	VolumeDrivers         []string
	// ProxyMemoryMB is added to every LRP with a memory limit, for the
	// per-container proxy (0 when the cell runs none).
	ProxyMemoryMB int32
}

// fixedSetSchemes name rootfs providers that offer listed stacks only.
var fixedSetSchemes = []string{"preloaded", "preloaded+layer"}

// supportsRootFS: the cell has a provider for the URL's scheme and, for a
// fixed-set provider, the named stack.
func (c *CellInfo) supportsRootFS(rootfs string) bool {
	u, err := url.Parse(rootfs)
	if err != nil || u.Scheme == "" {
		return false
	}
	for _, p := range c.RootFSProviders {
		if p.GetName() != u.Scheme {
			continue
		}
		return !slices.Contains(fixedSetSchemes, u.Scheme) || slices.Contains(p.GetProperties(), u.Opaque)
	}
	return false
}

// Server is the rep's gRPC API over the cell's containers.
type Server struct {
	models.UnimplementedRepServer

	info       CellInfo
	containers Containers
	evacuating atomic.Bool
	logger     *slog.Logger
	// onEvacuate, when set, starts the cell's evacuation (see Evacuate).
	onEvacuate func() bool
	// logs, when set, finds a container's log ring.
	logs func(guid string) (*logs.Ring, error)
	// updater, when set, gives instances new internal routes and metric
	// tags: the cell's reconciler, or Containers that are an LRPUpdater.
	updater LRPUpdater
	// newGuid names a new instance's container.
	newGuid func() string
}

// NewServer returns the API of one cell.
func NewServer(info CellInfo, containers Containers, logger *slog.Logger) *Server {
	if logger == nil {
		logger = slog.Default()
	}
	s := &Server{info: info, containers: containers, logger: logger, newGuid: uuid.NewString}
	if u, ok := containers.(LRPUpdater); ok {
		s.updater = u
	}
	return s
}

// SetCell connects the API to the cell's reconciler (evacuation, instance
// updates) and its executor (logs). Without it (simulated cells) Evacuate
// only flips the flag, Logs is refused, and UpdateLRPInstance reaches the
// Containers if they are an LRPUpdater.
func (s *Server) SetCell(cell *Cell, exec Executor) {
	s.onEvacuate = cell.Evacuate
	s.logs = exec.Logs
	s.updater = cell
}

// SetEvacuating marks the cell evacuating: it reports so in its state (the
// auctioneer then skips it) and refuses all new work.
func (s *Server) SetEvacuating(on bool) { s.evacuating.Store(on) }

// Evacuating reports whether the cell is evacuating.
func (s *Server) Evacuating() bool { return s.evacuating.Load() }

// State implements models.RepServer.
func (s *Server) State(ctx context.Context, _ *models.CellStateRequest) (*models.CellState, error) {
	lrps, tasks, err := s.containers.Work(ctx)
	if err != nil {
		return nil, fmt.Errorf("cell %s state: %w", s.info.CellID, err)
	}
	starting := 0
	for _, l := range lrps {
		if l.State == models.WorkState_WORK_STATE_RESERVED {
			starting++
		}
	}
	for _, t := range tasks {
		if t.State == models.WorkState_WORK_STATE_RESERVED {
			starting++
		}
	}
	return &models.CellState{
		CellId: s.info.CellID, RepAddress: s.info.RepAddress, Zone: s.info.Zone, CellIndex: s.info.Index,
		RootfsProviders: s.info.RootFSProviders, PlacementTags: s.info.PlacementTags,
		OptionalPlacementTags: s.info.OptionalPlacementTags, VolumeDrivers: s.info.VolumeDrivers,
		Total: s.containers.Total(), Available: s.containers.Remaining(),
		StartingContainerCount: int32(starting), Lrps: lrps, Tasks: tasks,
		Evacuating: s.evacuating.Load(), ProxyMemoryAllocationMb: s.info.ProxyMemoryMB,
	}, nil
}

// Perform implements models.RepServer: it reserves what it can of the work
// and returns the rest with the reason.
func (s *Server) Perform(ctx context.Context, req *models.PerformRequest) (*models.PerformResponse, error) {
	resp := &models.PerformResponse{}
	switch {
	case req.CellId != "" && req.CellId != s.info.CellID:
		refuseAll(resp, req, fmt.Sprintf("work for cell %q reached cell %q", req.CellId, s.info.CellID))
		return resp, nil
	case s.evacuating.Load():
		refuseAll(resp, req, "cell is evacuating")
		return resp, nil
	}

	// Largest first, and only what fits in memory (with the proxy's
	// share): the allocation below checks disk and slots atomically.
	lrps := slices.Clone(req.Lrps)
	slices.SortStableFunc(lrps, func(a, b *models.LRPWork) int { return cmp.Compare(b.Resource.GetMemoryMb(), a.Resource.GetMemoryMb()) })
	free := s.containers.Remaining().MemoryMb
	var allocs []Allocation
	var asked []*models.LRPWork // the work as sent, by allocation (nil for tasks)
	for _, w := range lrps {
		r := s.withProxy(w.Resource)
		switch {
		case !s.info.supportsRootFS(w.PlacementConstraint.GetRootfs()):
			resp.FailedLrps = append(resp.FailedLrps, &models.FailedLRPWork{Work: w, Reason: "cell has no compatible rootfs"})
		case r.GetMemoryMb() > free:
			resp.FailedLrps = append(resp.FailedLrps, &models.FailedLRPWork{Work: w, Reason: ErrInsufficientResources.Error()})
		default:
			free -= r.GetMemoryMb()
			sized := &models.LRPWork{ProcessGuid: w.ProcessGuid, Index: w.Index, Domain: w.Domain, PlacementConstraint: w.PlacementConstraint, Resource: r}
			allocs = append(allocs, Allocation{Guid: s.newGuid(), LRP: sized})
			asked = append(asked, w)
		}
	}
	for _, w := range req.Tasks {
		if !s.info.supportsRootFS(w.PlacementConstraint.GetRootfs()) {
			resp.FailedTasks = append(resp.FailedTasks, &models.FailedTaskWork{Work: w, Reason: "cell has no compatible rootfs"})
			continue
		}
		allocs = append(allocs, Allocation{Guid: w.TaskGuid, Task: w})
		asked = append(asked, nil)
	}
	for i, err := range s.containers.Allocate(ctx, allocs) {
		if err == nil {
			continue
		}
		if asked[i] != nil {
			resp.FailedLrps = append(resp.FailedLrps, &models.FailedLRPWork{Work: asked[i], Reason: err.Error()})
		} else {
			resp.FailedTasks = append(resp.FailedTasks, &models.FailedTaskWork{Work: allocs[i].Task, Reason: err.Error()})
		}
	}
	if n := len(resp.FailedLrps) + len(resp.FailedTasks); n > 0 {
		s.logger.Info("refused work", "cell_id", s.info.CellID, "refused", n,
			"accepted", len(req.Lrps)+len(req.Tasks)-n)
	}
	return resp, nil
}

// withProxy is the resource an LRP's container takes on this cell.
func (s *Server) withProxy(r *models.Resource) *models.Resource {
	out := &models.Resource{MemoryMb: r.GetMemoryMb(), DiskMb: r.GetDiskMb(), MaxPids: r.GetMaxPids()}
	if s.info.ProxyMemoryMB > 0 && out.MemoryMb > 0 {
		out.MemoryMb += s.info.ProxyMemoryMB
	}
	return out
}

func refuseAll(resp *models.PerformResponse, req *models.PerformRequest, reason string) {
	for _, w := range req.Lrps {
		resp.FailedLrps = append(resp.FailedLrps, &models.FailedLRPWork{Work: w, Reason: reason})
	}
	for _, w := range req.Tasks {
		resp.FailedTasks = append(resp.FailedTasks, &models.FailedTaskWork{Work: w, Reason: reason})
	}
}

// StopLRPInstance implements models.RepServer.
func (s *Server) StopLRPInstance(ctx context.Context, req *models.StopLRPInstanceRequest) (*models.StopLRPInstanceResponse, error) {
	if id := req.ActualLrpInstanceKey.CellId; id != s.info.CellID {
		return nil, models.NewError(models.TypeInvalidRequest, "instance of cell %q sent to cell %q", id, s.info.CellID)
	}
	if err := s.containers.StopLRP(ctx, req.ActualLrpInstanceKey.InstanceGuid); err != nil {
		return nil, err
	}
	return &models.StopLRPInstanceResponse{}, nil
}

// UpdateLRPInstance implements models.RepServer: the instance reports the
// new internal routes and metric tags from now on, starting at once.
func (s *Server) UpdateLRPInstance(ctx context.Context, req *models.UpdateLRPInstanceRequest) (*models.UpdateLRPInstanceResponse, error) {
	if id := req.ActualLrpInstanceKey.CellId; id != s.info.CellID {
		return nil, models.NewError(models.TypeInvalidRequest, "instance of cell %q sent to cell %q", id, s.info.CellID)
	}
	if s.updater == nil {
		return nil, models.NewError(models.TypeUnavailable, "cell %s cannot update instances", s.info.CellID)
	}
	if err := s.updater.UpdateLRP(ctx, req); err != nil {
		return nil, err
	}
	return &models.UpdateLRPInstanceResponse{}, nil
}

// CancelTask implements models.RepServer.
func (s *Server) CancelTask(ctx context.Context, req *models.CancelTaskRequest) (*models.CancelTaskResponse, error) {
	if err := s.containers.CancelTask(ctx, req.TaskGuid); err != nil {
		return nil, err
	}
	return &models.CancelTaskResponse{}, nil
}

// Evacuate implements models.RepServer: the cell stops taking work at once
// and hands its instances over.
func (s *Server) Evacuate(context.Context, *models.EvacuateRequest) (*models.EvacuateResponse, error) {
	already := s.evacuating.Swap(true)
	if s.onEvacuate != nil {
		already = s.onEvacuate() || already
	}
	return &models.EvacuateResponse{AlreadyEvacuating: already}, nil
}

// Logs implements models.RepServer: the container's captured lines, the
// last Tail of them (all when 0), then new ones while Follow holds.
func (s *Server) Logs(req *models.LogsRequest, stream grpc.ServerStreamingServer[models.LogLine]) error {
	if s.logs == nil {
		return models.NewError(models.TypeResourceNotFound, "cell %s keeps no container logs", s.info.CellID)
	}
	ring, err := s.logs(req.Guid)
	if err != nil {
		return models.NewError(models.TypeResourceNotFound, "no container %q on cell %s", req.Guid, s.info.CellID)
	}
	var from uint64
	if next := ring.Next(); req.Tail > 0 && next > uint64(req.Tail) {
		from = next - uint64(req.Tail)
	}
	send := func(l logs.Line) error {
		return stream.Send(&models.LogLine{Guid: req.Guid, Seq: l.Seq, Timestamp: l.Time.UnixNano(),
			Source: l.Source, Stream: l.Stream.String(), Text: l.Text})
	}
	if !req.Follow {
		lines, _ := ring.Read(from, 0)
		for _, l := range lines {
			if err := send(l); err != nil {
				return err
			}
		}
		return nil
	}
	err = ring.Follow(stream.Context(), from, send)
	if errors.Is(err, logs.ErrClosed) || errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}
