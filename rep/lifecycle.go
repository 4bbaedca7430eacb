package rep

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/gavel-scheduler/gavel/executor"
	"github.com/gavel-scheduler/gavel/proto/models"
)

// MaxResultSize bounds a task's result file (Diego's rep reads 50 KiB).
const MaxResultSize = 50 << 10

// Failure reasons the rep reports.
const (
	reasonFailedToRun       = "failed to run container"
	reasonFailedToFetch     = "failed to fetch result"
	reasonInvalidTransition = "invalid state transition"
	reasonNoContainer       = "task container does not exist"
)

// processor turns one container's state into BBS calls (Diego's container
// lifecycle tables): claim and run a reserved instance, start it in the BBS
// once it runs, crash or remove it when it completes; start, run and
// complete a task. Every call is safe to repeat: the processor runs on
// every event and every bulk sync, and a failed step is retried then.
type processor struct {
	cellID     string
	zone       string
	bbs        models.BBSClient
	exec       Executor
	evacuating func() bool
	// overrides are instance infos given by UpdateLRPInstance.
	overrides *overrides
	logger    *slog.Logger
}

// process handles the container guid as it is now.
func (p *processor) process(ctx context.Context, guid string) {
	c, err := p.exec.GetContainer(ctx, guid)
	if errors.Is(err, executor.ErrContainerNotFound) {
		return // deleted meanwhile: the bulk sync handles its BBS side
	}
	if err != nil {
		p.logger.Warn("get container", "container_guid", guid, "error", err)
		return
	}
	switch c.Tags[TagLifecycle] {
	case LifecycleLRP:
		if p.evacuating() {
			p.evacuateLRP(ctx, c)
		} else {
			p.processLRP(ctx, c)
		}
	case LifecycleTask:
		p.processTask(ctx, c)
	}
}

func (p *processor) processLRP(ctx context.Context, c executor.Container) {
	key, ik, ok := lrpKeys(c, p.cellID)
	if !ok {
		p.logger.Error("LRP container without its keys; deleting it", "container_guid", c.Guid)
		p.delete(ctx, c.Guid)
		return
	}
	log := p.logger.With("process_guid", key.ProcessGuid, "index", key.Index, "instance_guid", ik.InstanceGuid)
	switch c.State {
	case executor.StateReserved:
		if !p.claim(ctx, log, key, ik) {
			return
		}
		resp, err := p.bbs.GetDesiredLRP(ctx, &models.GetDesiredLRPRequest{ProcessGuid: key.ProcessGuid})
		if err != nil {
			if isNotFound(err) {
				log.Info("desired LRP gone; dropping the instance")
				p.removeActual(ctx, log, key, ik)
				p.delete(ctx, c.Guid)
			} else {
				log.Warn("get desired LRP", "error", err)
			}
			return
		}
		if resp.DesiredLrp.GetMonitor() != nil && resp.DesiredLrp.GetCheckDefinition() == nil {
			log.Warn("the legacy monitor action is not run: declare check_definition checks instead")
		}
		info, err := desiredInstanceInfo(resp.DesiredLrp, key.Index, c.Guid)
		if err != nil {
			log.Warn("bad internal routes skipped", "error", err)
		}
		req := executor.RunRequest{Guid: c.Guid, RunInfo: lrpRunInfo(resp.DesiredLrp, key.Index, c.Guid), Tags: info.containerTags()}
		if err := p.exec.RunContainer(ctx, req); err != nil {
			log.Error("run container", "error", err)
			p.removeActual(ctx, log, key, ik)
			p.delete(ctx, c.Guid)
		}
	case executor.StateInitializing, executor.StateCreated:
		p.claim(ctx, log, key, ik)
	case executor.StateRunning:
		info := p.overrides.info(c)
		_, err := p.bbs.StartActualLRP(ctx, &models.StartActualLRPRequest{
			ActualLrpKey: key, ActualLrpInstanceKey: ik, ActualLrpNetInfo: netInfo(c),
			ActualLrpInternalRoutes: info.routes, MetricTags: info.tags,
			Routable: &c.Routable, AvailabilityZone: p.zone,
		})
		if err != nil {
			if isRefused(err) {
				log.Info("BBS refused the start; stopping the container", "error", err)
				p.stop(ctx, c.Guid)
				return
			}
			log.Warn("start actual LRP", "error", err)
		}
	case executor.StateCompleted:
		var err error
		if c.RunResult.Stopped {
			_, err = p.bbs.RemoveActualLRP(ctx, &models.RemoveActualLRPRequest{ProcessGuid: key.ProcessGuid, Index: key.Index, ActualLrpInstanceKey: ik})
		} else {
			_, err = p.bbs.CrashActualLRP(ctx, &models.CrashActualLRPRequest{ActualLrpKey: key, ActualLrpInstanceKey: ik, ErrorMessage: c.RunResult.FailureReason})
		}
		if err != nil && !isRefused(err) && !isNotFound(err) {
			log.Warn("report completed instance", "stopped", c.RunResult.Stopped, "error", err)
			return
		}
		p.delete(ctx, c.Guid)
	}
}

// claim claims the instance; a refusal (the slot went to another cell, or
// is gone) deletes the container.
func (p *processor) claim(ctx context.Context, log *slog.Logger, key *models.ActualLRPKey, ik *models.ActualLRPInstanceKey) bool {
	_, err := p.bbs.ClaimActualLRP(ctx, &models.ClaimActualLRPRequest{ProcessGuid: key.ProcessGuid, Index: key.Index, ActualLrpInstanceKey: ik})
	if err == nil {
		return true
	}
	if isRefused(err) || isNotFound(err) {
		log.Info("claim refused; deleting the container", "error", err)
		p.delete(ctx, ik.InstanceGuid)
	} else {
		log.Warn("claim actual LRP", "error", err)
	}
	return false
}

func (p *processor) removeActual(ctx context.Context, log *slog.Logger, key *models.ActualLRPKey, ik *models.ActualLRPInstanceKey) {
	_, err := p.bbs.RemoveActualLRP(ctx, &models.RemoveActualLRPRequest{ProcessGuid: key.ProcessGuid, Index: key.Index, ActualLrpInstanceKey: ik})
	if err != nil && !isNotFound(err) && !isRefused(err) {
		log.Warn("remove actual LRP", "error", err)
	}
}

// evacuateLRP hands an instance over while the cell evacuates: a running
// one keeps serving (as EVACUATING) until its replacement runs elsewhere.
func (p *processor) evacuateLRP(ctx context.Context, c executor.Container) {
	key, ik, ok := lrpKeys(c, p.cellID)
	if !ok {
		p.delete(ctx, c.Guid)
		return
	}
	log := p.logger.With("process_guid", key.ProcessGuid, "index", key.Index, "instance_guid", ik.InstanceGuid, "evacuating", true)
	var resp *models.EvacuationResponse
	var err error
	switch c.State {
	case executor.StateReserved, executor.StateInitializing, executor.StateCreated:
		resp, err = p.bbs.EvacuateClaimedActualLRP(ctx, &models.EvacuateClaimedActualLRPRequest{ActualLrpKey: key, ActualLrpInstanceKey: ik})
		if err == nil {
			resp.KeepContainer = false // a container that never ran is not worth keeping
		}
	case executor.StateRunning:
		info := p.overrides.info(c)
		resp, err = p.bbs.EvacuateRunningActualLRP(ctx, &models.EvacuateRunningActualLRPRequest{
			ActualLrpKey: key, ActualLrpInstanceKey: ik, ActualLrpNetInfo: netInfo(c),
			ActualLrpInternalRoutes: info.routes, MetricTags: info.tags,
			Routable: &c.Routable, AvailabilityZone: p.zone,
		})
	case executor.StateCompleted:
		if c.RunResult.Stopped {
			resp, err = p.bbs.EvacuateStoppedActualLRP(ctx, &models.EvacuateStoppedActualLRPRequest{ActualLrpKey: key, ActualLrpInstanceKey: ik})
		} else {
			resp, err = p.bbs.EvacuateCrashedActualLRP(ctx, &models.EvacuateCrashedActualLRPRequest{ActualLrpKey: key, ActualLrpInstanceKey: ik, ErrorMessage: c.RunResult.FailureReason})
		}
		if err == nil {
			resp.KeepContainer = false
		}
	}
	if err != nil {
		if !isRefused(err) && !isNotFound(err) {
			log.Warn("evacuate instance", "state", c.State, "error", err)
			return
		}
		resp = &models.EvacuationResponse{}
	}
	if !resp.KeepContainer {
		log.Info("instance handed over; removing its container", "state", c.State)
		p.delete(ctx, c.Guid)
	}
}

func (p *processor) processTask(ctx context.Context, c executor.Container) {
	guid := c.Guid
	log := p.logger.With("task_guid", guid)
	switch c.State {
	case executor.StateReserved:
		resp, err := p.bbs.StartTask(ctx, &models.StartTaskRequest{TaskGuid: guid, CellId: p.cellID})
		if err != nil {
			if isRefused(err) || isNotFound(err) {
				log.Info("BBS refused the task start; deleting the container", "error", err)
				p.delete(ctx, guid)
			} else {
				log.Warn("start task", "error", err)
			}
			return
		}
		if !resp.ShouldStart {
			return // already started here: its container is on its way
		}
		task, err := p.bbs.GetTask(ctx, &models.TaskGuidRequest{TaskGuid: guid})
		if err != nil {
			log.Warn("get task", "error", err)
			return
		}
		def := task.Task.GetTaskDefinition()
		tags := executor.Tags{}
		if def.GetResultFile() != "" {
			tags[TagResultFile] = def.GetResultFile()
		}
		if err := p.exec.RunContainer(ctx, executor.RunRequest{Guid: guid, RunInfo: taskRunInfo(def), Tags: tags}); err != nil {
			log.Error("run task container", "error", err)
			p.completeTask(ctx, log, guid, true, reasonFailedToRun, "")
			p.delete(ctx, guid)
		}
	case executor.StateCompleted:
		r := c.RunResult
		if r.Failed && r.Retryable {
			_, err := p.bbs.RejectTask(ctx, &models.RejectTaskRequest{TaskGuid: guid, RejectionReason: r.FailureReason})
			if err != nil && !isRefused(err) && !isNotFound(err) {
				log.Warn("reject task", "error", err)
				return
			}
			p.delete(ctx, guid)
			return
		}
		failed, reason, result := r.Failed, r.FailureReason, ""
		if path := c.Tags[TagResultFile]; !failed && path != "" {
			b, err := p.exec.ReadFile(ctx, guid, path, MaxResultSize)
			if err != nil {
				log.Warn("read result file", "path", path, "error", err)
				failed, reason = true, reasonFailedToFetch
			} else {
				result = string(b)
			}
		}
		if !p.completeTask(ctx, log, guid, failed, reason, result) {
			return
		}
		p.delete(ctx, guid)
	}
}

// completeTask records the task's end; it reports false when the BBS
// could not be reached, so the container is kept for the next try.
func (p *processor) completeTask(ctx context.Context, log *slog.Logger, guid string, failed bool, reason, result string) bool {
	_, err := p.bbs.CompleteTask(ctx, &models.CompleteTaskRequest{TaskGuid: guid, CellId: p.cellID, Failed: failed, FailureReason: reason, Result: result})
	switch {
	case err == nil, isNotFound(err):
		return true
	case status.Code(err) == codes.FailedPrecondition:
		// Completed already (cancelled), or the guard refused: record
		// it as failed if it is still ours to complete.
		_, err = p.bbs.CompleteTask(ctx, &models.CompleteTaskRequest{TaskGuid: guid, CellId: p.cellID, Failed: true, FailureReason: reasonInvalidTransition})
		if err != nil && !isRefused(err) && !isNotFound(err) {
			log.Warn("complete task", "error", err)
			return false
		}
		return true
	default:
		log.Warn("complete task", "error", err)
		return false
	}
}

func (p *processor) delete(ctx context.Context, guid string) {
	if err := p.exec.DeleteContainer(ctx, guid); err != nil && !errors.Is(err, executor.ErrContainerNotFound) {
		p.logger.Warn("delete container", "container_guid", guid, "error", err)
		return
	}
	p.overrides.drop(guid)
}

func (p *processor) stop(ctx context.Context, guid string) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := p.exec.StopContainer(ctx, guid); err != nil && !errors.Is(err, executor.ErrContainerNotFound) {
		p.logger.Warn("stop container", "container_guid", guid, "error", err)
	}
}

// isRefused: the BBS refused the transition (the record moved on).
func isRefused(err error) bool { return status.Code(err) == codes.FailedPrecondition }

func isNotFound(err error) bool { return status.Code(err) == codes.NotFound }

// netInfo is how the instance is reached: the cell's address and the host
// ports mapped to its container ports, and the container's own address.
func netInfo(c executor.Container) *models.ActualLRPNetInfo {
	ni := &models.ActualLRPNetInfo{Address: c.ExternalIP, InstanceAddress: c.InternalIP,
		PreferredAddress: models.ActualLRPNetInfo_HOST}
	for _, p := range c.Ports {
		ni.Ports = append(ni.Ports, &models.PortMapping{ContainerPort: p.ContainerPort, HostPort: p.HostPort})
	}
	return ni
}

// lrpRunInfo is what an instance's container runs.
func lrpRunInfo(d *models.DesiredLRP, index int32, instanceGuid string) executor.RunInfo {
	env := append([]*models.EnvironmentVariable{
		{Name: "INSTANCE_INDEX", Value: strconv.Itoa(int(index))},
		{Name: "INSTANCE_GUID", Value: instanceGuid},
		{Name: "CF_INSTANCE_INDEX", Value: strconv.Itoa(int(index))},
		{Name: "CF_INSTANCE_GUID", Value: instanceGuid},
	}, d.GetEnv()...)
	return executor.RunInfo{
		RootFSPath: d.GetRootfs(), ImageUsername: d.GetImageUsername(), ImagePassword: d.GetImagePassword(),
		Privileged: d.GetPrivileged(), CPUWeight: d.GetCpuWeight(), Env: env, Ports: d.GetPorts(),
		Setup: d.GetSetup(), Action: d.GetAction(), CheckDefinition: d.GetCheckDefinition(),
		StartTimeout: time.Duration(d.GetStartTimeoutMs()) * time.Millisecond,
		EgressRules:  d.GetEgressRules(), LogSource: d.GetLogSource(),
	}
}

// taskRunInfo is what a task's container runs.
func taskRunInfo(def *models.TaskDefinition) executor.RunInfo {
	return executor.RunInfo{
		RootFSPath: def.GetRootfs(), ImageUsername: def.GetImageUsername(), ImagePassword: def.GetImagePassword(),
		Privileged: def.GetPrivileged(), CPUWeight: def.GetCpuWeight(), Env: def.GetEnv(),
		Action: def.GetAction(), EgressRules: def.GetEgressRules(), LogSource: def.GetLogSource(),
	}
}
