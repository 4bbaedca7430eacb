package rep

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/gavel-scheduler/gavel/executor"
	"github.com/gavel-scheduler/gavel/executor/logs"
	"github.com/gavel-scheduler/gavel/proto/models"
)

// Executor is what the rep needs of the cell's executor; *executor.Executor
// satisfies it.
type Executor interface {
	AllocateContainers(ctx context.Context, reqs []executor.AllocationRequest) ([]executor.AllocationFailure, error)
	GetContainer(ctx context.Context, guid string) (executor.Container, error)
	ListContainers(ctx context.Context, filter executor.Tags) ([]executor.Container, error)
	RemainingResources(ctx context.Context) (executor.Resources, error)
	TotalResources(ctx context.Context) (executor.Resources, error)
	RunContainer(ctx context.Context, req executor.RunRequest) error
	StopContainer(ctx context.Context, guid string) error
	DeleteContainer(ctx context.Context, guid string) error
	ReadFile(ctx context.Context, guid, path string, limit int64) ([]byte, error)
	SubscribeToEvents(ctx context.Context) (*executor.Subscription, error)
	Logs(guid string) (*logs.Ring, error)
	Ping(ctx context.Context) error
}

// Container tags: what the rep writes on a container at allocation, so
// that the container alone says what it is (after a rep restart too).
const (
	TagLifecycle     = "lifecycle"
	TagDomain        = "domain"
	TagProcessGuid   = "process-guid"
	TagProcessIndex  = "process-index"
	TagInstanceGuid  = "instance-guid"
	TagTaskGuid      = "task-guid"
	TagRootFS        = "rootfs"
	TagPlacementTags = "placement-tags"
	TagVolumeDrivers = "volume-drivers"
	TagResultFile    = "result-file"
	// TagInternalRoutes and TagMetricTags hold, as JSON, the internal
	// routes ([{"hostname": ...}]) and resolved metric tags an instance
	// was run with; the rep reports them in every StartActualLRP.
	TagInternalRoutes = "internal-routes"
	TagMetricTags     = "metric-tags"

	LifecycleLRP  = "lrp"
	LifecycleTask = "task"
)

// ExecutorContainers is the Containers of a real cell: the executor's.
type ExecutorContainers struct {
	Executor Executor
}

// Total implements Containers.
func (c ExecutorContainers) Total() *models.CellCapacity {
	r, err := c.Executor.TotalResources(context.Background())
	if err != nil {
		return &models.CellCapacity{}
	}
	return capacity(r)
}

// Remaining implements Containers.
func (c ExecutorContainers) Remaining() *models.CellCapacity {
	r, err := c.Executor.RemainingResources(context.Background())
	if err != nil {
		return &models.CellCapacity{}
	}
	return capacity(r)
}

func capacity(r executor.Resources) *models.CellCapacity {
	return &models.CellCapacity{MemoryMb: int32(r.MemoryMB), DiskMb: int32(r.DiskMB), Containers: int32(r.Containers)}
}

// Allocate implements Containers: one atomic executor reservation each,
// tagged with what the work is.
func (c ExecutorContainers) Allocate(ctx context.Context, allocs []Allocation) []error {
	reqs := make([]executor.AllocationRequest, len(allocs))
	for i, a := range allocs {
		reqs[i] = allocationRequest(a)
	}
	errs := make([]error, len(allocs))
	failures, err := c.Executor.AllocateContainers(ctx, reqs)
	if err != nil {
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	byGuid := make(map[string]error, len(failures))
	for _, f := range failures {
		byGuid[f.Guid] = f.Err
	}
	for i, a := range allocs {
		if err, failed := byGuid[a.Guid]; failed {
			errs[i] = allocationError(err)
		}
	}
	return errs
}

// allocationError words an executor refusal for the auctioneer.
func allocationError(err error) error {
	switch {
	case errors.Is(err, executor.ErrInsufficientResources):
		return ErrInsufficientResources
	case errors.Is(err, executor.ErrGuidNotAvailable):
		return ErrGuidTaken
	}
	return err
}

func allocationRequest(a Allocation) executor.AllocationRequest {
	r := a.resource()
	var con *models.PlacementConstraint
	tags := executor.Tags{}
	if a.LRP != nil {
		con = a.LRP.PlacementConstraint
		tags[TagLifecycle] = LifecycleLRP
		tags[TagDomain] = a.LRP.Domain
		tags[TagProcessGuid] = a.LRP.ProcessGuid
		tags[TagProcessIndex] = strconv.Itoa(int(a.LRP.Index))
		tags[TagInstanceGuid] = a.Guid
	} else {
		con = a.Task.PlacementConstraint
		tags[TagLifecycle] = LifecycleTask
		tags[TagDomain] = a.Task.Domain
		tags[TagTaskGuid] = a.Task.TaskGuid
	}
	tags[TagRootFS] = con.GetRootfs()
	if len(con.GetPlacementTags()) > 0 {
		tags[TagPlacementTags] = mustJSON(con.GetPlacementTags())
	}
	if len(con.GetVolumeDrivers()) > 0 {
		tags[TagVolumeDrivers] = mustJSON(con.GetVolumeDrivers())
	}
	return executor.AllocationRequest{Guid: a.Guid, Tags: tags,
		Resource: executor.Resource{MemoryMB: int(r.GetMemoryMb()), DiskMB: int(r.GetDiskMb()), MaxPids: int(r.GetMaxPids())}}
}

func mustJSON(v []string) string {
	b, _ := json.Marshal(v) // a []string always encodes
	return string(b)
}

// Work implements Containers: every container the rep made, as the
// auction sees it.
func (c ExecutorContainers) Work(ctx context.Context) ([]*models.CellLRP, []*models.CellTask, error) {
	all, err := c.Executor.ListContainers(ctx, nil)
	if err != nil {
		return nil, nil, err
	}
	var lrps []*models.CellLRP
	var tasks []*models.CellTask
	for _, ctr := range all {
		switch ctr.Tags[TagLifecycle] {
		case LifecycleLRP:
			key, ik, ok := lrpKeys(ctr, "")
			if !ok {
				continue
			}
			lrps = append(lrps, &models.CellLRP{ProcessGuid: key.ProcessGuid, Index: key.Index, Domain: key.Domain,
				InstanceGuid: ik.InstanceGuid, PlacementConstraint: constraintOf(ctr), Resource: resourceOf(ctr), State: workState(ctr)})
		case LifecycleTask:
			tasks = append(tasks, &models.CellTask{TaskGuid: ctr.Tags[TagTaskGuid], Domain: ctr.Tags[TagDomain],
				PlacementConstraint: constraintOf(ctr), Resource: resourceOf(ctr), State: workState(ctr),
				Failed: ctr.State == executor.StateCompleted && ctr.RunResult.Failed})
		}
	}
	return lrps, tasks, nil
}

// workState: reserved, initializing and created containers are starting.
func workState(c executor.Container) models.WorkState {
	switch c.State {
	case executor.StateRunning:
		return models.WorkState_WORK_STATE_RUNNING
	case executor.StateCompleted:
		return models.WorkState_WORK_STATE_COMPLETED
	}
	return models.WorkState_WORK_STATE_RESERVED
}

func constraintOf(c executor.Container) *models.PlacementConstraint {
	con := &models.PlacementConstraint{Rootfs: c.Tags[TagRootFS]}
	_ = json.Unmarshal([]byte(c.Tags[TagPlacementTags]), &con.PlacementTags)
	_ = json.Unmarshal([]byte(c.Tags[TagVolumeDrivers]), &con.VolumeDrivers)
	return con
}

func resourceOf(c executor.Container) *models.Resource {
	return &models.Resource{MemoryMb: int32(c.Resource.MemoryMB), DiskMb: int32(c.Resource.DiskMB), MaxPids: int32(c.Resource.MaxPids)}
}

// lrpKeys reads an LRP container's slot and instance from its tags.
func lrpKeys(c executor.Container, cellID string) (*models.ActualLRPKey, *models.ActualLRPInstanceKey, bool) {
	index, err := strconv.Atoi(c.Tags[TagProcessIndex])
	if err != nil || c.Tags[TagProcessGuid] == "" {
		return nil, nil, false
	}
	return &models.ActualLRPKey{ProcessGuid: c.Tags[TagProcessGuid], Index: int32(index), Domain: c.Tags[TagDomain]},
		&models.ActualLRPInstanceKey{InstanceGuid: c.Guid, CellId: cellID}, true
}

// StopLRP implements Containers.
func (c ExecutorContainers) StopLRP(ctx context.Context, instanceGuid string) error {
	return notFound(c.Executor.StopContainer(ctx, instanceGuid), "instance", instanceGuid)
}

// CancelTask implements Containers: the task's container is deleted; the
// BBS has already recorded the cancellation.
func (c ExecutorContainers) CancelTask(ctx context.Context, taskGuid string) error {
	return notFound(c.Executor.DeleteContainer(ctx, taskGuid), "task", taskGuid)
}

func notFound(err error, what, guid string) error {
	if errors.Is(err, executor.ErrContainerNotFound) {
		return models.NewError(models.TypeResourceNotFound, "no %s %q on this cell", what, guid)
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, guid, err)
	}
	return nil
}
