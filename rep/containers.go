package rep

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/gavel-scheduler/gavel/proto/models"
)

// Allocation asks for one container: an LRP instance (LRP set) or a task
// (Task set), under the guid that will name its container.
type Allocation struct {
	Guid string
	LRP  *models.LRPWork
	Task *models.TaskWork
}

func (a Allocation) resource() *models.Resource {
	if a.LRP != nil {
		return a.LRP.GetResource()
	}
	return a.Task.GetResource()
}

// ErrInsufficientResources is why an allocation that does not fit fails.
var ErrInsufficientResources = errors.New("insufficient resources available")

// ErrGuidTaken is why an allocation under a guid already in use fails.
var ErrGuidTaken = errors.New("container guid already in use")

// Containers is the cell's container layer as the rep sees it. Each
// allocation is atomic: it takes its memory, disk and one container slot,
// or fails and takes nothing.
type Containers interface {
	Total() *models.CellCapacity
	Remaining() *models.CellCapacity
	// Allocate reserves every allocation it can; the errors, by position,
	// say why the others failed (nil where it succeeded).
	Allocate(ctx context.Context, allocs []Allocation) []error
	// Work lists what the cell holds.
	Work(ctx context.Context) (lrps []*models.CellLRP, tasks []*models.CellTask, err error)
	// StopLRP stops the instance's container (ErrNotFound-like errors are
	// models errors of type ResourceNotFound).
	StopLRP(ctx context.Context, instanceGuid string) error
	// CancelTask stops and removes the task's container.
	CancelTask(ctx context.Context, taskGuid string) error
}

// LRPUpdater gives a running instance new internal routes and metric tags
// (UpdateLRPInstance). A real cell's reconciler (Cell) is one, connected
// with Server.SetCell; MemoryContainers, which run nothing, are one too.
type LRPUpdater interface {
	UpdateLRP(ctx context.Context, req *models.UpdateLRPInstanceRequest) error
}

// MemoryContainers models a cell's capacity in memory. Allocations are
// reported RUNNING at once; nothing runs. It is safe for concurrent use.
type MemoryContainers struct {
	total models.CellCapacity

	mu        sync.Mutex // guards remaining, lrps, tasks, updates
	remaining models.CellCapacity
	lrps      map[string]*models.CellLRP  // by instance guid
	tasks     map[string]*models.CellTask // by task guid
	// updates are the last UpdateLRP of each instance, by instance guid.
	updates map[string]*models.UpdateLRPInstanceRequest
}

// NewMemoryContainers returns an empty cell of the given capacity.
func NewMemoryContainers(total *models.CellCapacity) *MemoryContainers {
	return &MemoryContainers{
		total:     models.CellCapacity{MemoryMb: total.GetMemoryMb(), DiskMb: total.GetDiskMb(), Containers: total.GetContainers()},
		remaining: models.CellCapacity{MemoryMb: total.GetMemoryMb(), DiskMb: total.GetDiskMb(), Containers: total.GetContainers()},
		lrps:      map[string]*models.CellLRP{},
		tasks:     map[string]*models.CellTask{},
		updates:   map[string]*models.UpdateLRPInstanceRequest{},
	}
}

func copyCapacity(c *models.CellCapacity) *models.CellCapacity {
	return &models.CellCapacity{MemoryMb: c.MemoryMb, DiskMb: c.DiskMb, Containers: c.Containers}
}

// Total implements Containers.
func (m *MemoryContainers) Total() *models.CellCapacity { return copyCapacity(&m.total) }

// Remaining implements Containers.
func (m *MemoryContainers) Remaining() *models.CellCapacity {
	m.mu.Lock()
	defer m.mu.Unlock()
	return copyCapacity(&m.remaining)
}

// Allocate implements Containers.
func (m *MemoryContainers) Allocate(_ context.Context, allocs []Allocation) []error {
	errs := make([]error, len(allocs))
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, a := range allocs {
		r := a.resource()
		if _, taken := m.lrps[a.Guid]; taken {
			errs[i] = ErrGuidTaken
			continue
		}
		if _, taken := m.tasks[a.Guid]; taken {
			errs[i] = ErrGuidTaken
			continue
		}
		if r.GetMemoryMb() > m.remaining.MemoryMb || r.GetDiskMb() > m.remaining.DiskMb || m.remaining.Containers < 1 {
			errs[i] = ErrInsufficientResources
			continue
		}
		m.remaining.MemoryMb -= r.GetMemoryMb()
		m.remaining.DiskMb -= r.GetDiskMb()
		m.remaining.Containers--
		if a.LRP != nil {
			m.lrps[a.Guid] = &models.CellLRP{ProcessGuid: a.LRP.ProcessGuid, Index: a.LRP.Index, Domain: a.LRP.Domain,
				InstanceGuid: a.Guid, PlacementConstraint: a.LRP.PlacementConstraint, Resource: a.LRP.Resource,
				State: models.WorkState_WORK_STATE_RUNNING}
		} else {
			m.tasks[a.Guid] = &models.CellTask{TaskGuid: a.Task.TaskGuid, Domain: a.Task.Domain,
				PlacementConstraint: a.Task.PlacementConstraint, Resource: a.Task.Resource,
				State: models.WorkState_WORK_STATE_RUNNING}
		}
	}
	return errs
}

// Work implements Containers. The records are shared with the cell and
// must not be modified.
func (m *MemoryContainers) Work(context.Context) ([]*models.CellLRP, []*models.CellTask, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	lrps := make([]*models.CellLRP, 0, len(m.lrps))
	for _, l := range m.lrps {
		lrps = append(lrps, l)
	}
	tasks := make([]*models.CellTask, 0, len(m.tasks))
	for _, t := range m.tasks {
		tasks = append(tasks, t)
	}
	slices.SortFunc(lrps, func(a, b *models.CellLRP) int { return strings.Compare(a.InstanceGuid, b.InstanceGuid) })
	slices.SortFunc(tasks, func(a, b *models.CellTask) int { return strings.Compare(a.TaskGuid, b.TaskGuid) })
	return lrps, tasks, nil
}

// StopLRP implements Containers: the instance's resources are freed.
func (m *MemoryContainers) StopLRP(_ context.Context, instanceGuid string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	l, ok := m.lrps[instanceGuid]
	if !ok {
		return models.NewError(models.TypeResourceNotFound, "no instance %q on this cell", instanceGuid)
	}
	delete(m.lrps, instanceGuid)
	delete(m.updates, instanceGuid)
	m.release(l.Resource)
	return nil
}

// UpdateLRP implements LRPUpdater: the update is recorded for
// LastUpdate (nothing runs, so nothing else changes).
func (m *MemoryContainers) UpdateLRP(_ context.Context, req *models.UpdateLRPInstanceRequest) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	guid := req.GetActualLrpInstanceKey().GetInstanceGuid()
	l, ok := m.lrps[guid]
	if !ok {
		return models.NewError(models.TypeResourceNotFound, "no instance %q on this cell", guid)
	}
	if k := req.GetActualLrpKey(); l.ProcessGuid != k.GetProcessGuid() || l.Index != k.GetIndex() {
		return models.NewError(models.TypeInvalidRequest, "instance %q on this cell is not %s/%d", guid, k.GetProcessGuid(), k.GetIndex())
	}
	m.updates[guid] = proto.Clone(req).(*models.UpdateLRPInstanceRequest)
	return nil
}

// LastUpdate returns the last update an instance was given, or nil.
func (m *MemoryContainers) LastUpdate(instanceGuid string) *models.UpdateLRPInstanceRequest {
	m.mu.Lock()
	defer m.mu.Unlock()
	if u := m.updates[instanceGuid]; u != nil {
		return proto.Clone(u).(*models.UpdateLRPInstanceRequest)
	}
	return nil
}

// CancelTask implements Containers: the task's resources are freed.
func (m *MemoryContainers) CancelTask(_ context.Context, taskGuid string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.tasks[taskGuid]
	if !ok {
		return models.NewError(models.TypeResourceNotFound, "no task %q on this cell", taskGuid)
	}
	delete(m.tasks, taskGuid)
	m.release(t.Resource)
	return nil
}

func (m *MemoryContainers) release(r *models.Resource) {
	m.remaining.MemoryMb += r.GetMemoryMb()
	m.remaining.DiskMb += r.GetDiskMb()
	m.remaining.Containers++
}
