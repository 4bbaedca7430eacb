package executor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/gavel-scheduler/gavel/executor/checks"
	"github.com/gavel-scheduler/gavel/executor/garden"
	"github.com/gavel-scheduler/gavel/executor/logs"
	"github.com/gavel-scheduler/gavel/executor/steps"
)

// Log sources of the executor's own messages in a container's log.
const (
	DefaultLogSource = "APP"
	HealthLogSource  = "HEALTH"
)

// RunContainer starts a reserved container: it is created in Garden
// (INITIALIZING), runs its setup and action (CREATED), turns RUNNING when
// its checks pass (at once without checks) and COMPLETED when the action
// ends, a check fails or it is stopped. RunContainer returns once the
// container is INITIALIZING; the rest is reported by events.
func (e *Executor) RunContainer(ctx context.Context, req RunRequest) error {
	if e.closed() {
		return ErrClosed
	}
	if err := validateRunInfo(req.RunInfo); err != nil {
		return fmt.Errorf("run %s: %w", req.Guid, err)
	}
	lctx, cancel := context.WithCancelCause(e.ctx)
	done := make(chan struct{})
	n, err := e.store.startRun(req, cancel, done)
	if err != nil {
		cancel(nil)
		return err
	}
	if !e.spawn(func() { defer close(done); e.lifecycle(lctx, n, resumeState{}) }) {
		cancel(nil)
		close(done)
		return ErrClosed
	}
	return nil
}

func validateRunInfo(info RunInfo) error {
	if info.Action == nil {
		return fmt.Errorf("%w: action must be set", ErrInvalidRequest)
	}
	if err := info.Action.Validate(); err != nil {
		return fmt.Errorf("%w: action: %w", ErrInvalidRequest, err)
	}
	if info.Setup != nil {
		if err := info.Setup.Validate(); err != nil {
			return fmt.Errorf("%w: setup: %w", ErrInvalidRequest, err)
		}
	}
	if info.CheckDefinition != nil {
		if err := info.CheckDefinition.Validate(); err != nil {
			return fmt.Errorf("%w: check definition: %w", ErrInvalidRequest, err)
		}
	}
	if info.StartTimeout < 0 {
		return fmt.Errorf("%w: start timeout must not be negative", ErrInvalidRequest)
	}
	return nil
}

// resumeState tells a lifecycle started by restore where to pick up.
type resumeState struct {
	resumed   bool
	setupDone bool
}

// lifecycle drives one container to COMPLETED, unless the executor closes
// first (then the container is left as it is, for the next executor).
func (e *Executor) lifecycle(ctx context.Context, n *node, resume resumeState) {
	e.store.mu.Lock()
	guid := n.c.Guid
	e.store.mu.Unlock()
	log := e.log.With("container_guid", guid)
	result := e.drive(ctx, n, resume, log)
	if errors.Is(context.Cause(ctx), steps.ErrDetached) {
		log.Info("container left running for the next executor")
		return
	}
	after, ok := e.store.complete(guid, result)
	if !ok {
		return
	}
	log.Info("container completed", "failed", result.Failed, "failure_reason", result.FailureReason, "stopped", result.Stopped)
	e.store.mu.Lock()
	gc := n.gc
	e.store.mu.Unlock()
	if gc != nil {
		e.persist(gc, log, propState, string(StateCompleted), propResult, encodeJSON(after.RunResult))
	}
}

// drive runs the container and returns how it ended.
func (e *Executor) drive(ctx context.Context, n *node, resume resumeState, log *slog.Logger) RunResult {
	e.store.mu.Lock()
	c := n.c.clone()
	gc, ring := n.gc, n.logs
	e.store.mu.Unlock()
	ended := func(err error, prefix string) RunResult {
		if ctx.Err() != nil {
			return RunResult{Stopped: true}
		}
		return RunResult{Failed: true, FailureReason: prefix + err.Error()}
	}

	if !resume.resumed {
		spec, err := e.containerSpec(c)
		if err != nil {
			return RunResult{Failed: true, FailureReason: "invalid container spec: " + err.Error()}
		}
		gc, err = e.garden.Create(ctx, spec)
		if err != nil {
			r := ended(err, "failed to create container: ")
			r.Retryable = r.Failed
			return r
		}
		e.store.update(c.Guid, func(n *node) { n.gc = gc })
		log.Info("garden container created")
	}
	info, err := gc.Info(ctx)
	if err != nil {
		return ended(err, "failed to read container info: ")
	}
	netInfo := func(n *node) {
		n.c.ExternalIP, n.c.InternalIP = info.ExternalIP, info.ContainerIP
		n.c.Ports = n.c.Ports[:0]
		for _, m := range info.MappedPorts {
			n.c.Ports = append(n.c.Ports, PortMapping{ContainerPort: m.ContainerPort, HostPort: m.HostPort})
		}
	}
	if c.State == StateInitializing {
		if _, _, err := e.store.transition(c.Guid, StateCreated, netInfo); err != nil {
			return ended(err, "")
		}
		e.persist(gc, log, propState, string(StateCreated))
	} else {
		e.store.update(c.Guid, netInfo)
	}

	env := steps.Env{
		Container: gc, Fetcher: e.fetcher, Logs: ring, LogSource: orDefault(c.RunInfo.LogSource, DefaultLogSource),
		Reattach: resume.resumed, GracefulShutdown: e.cfg.GracefulShutdown, Logger: log,
	}
	if c.RunInfo.Setup != nil && !resume.setupDone {
		env.ProcessIDPrefix = c.Guid + "-setup-"
		setup, err := steps.Build(env, c.RunInfo.Setup)
		if err != nil {
			return ended(err, "setup: ")
		}
		if err := setup.Run(ctx); err != nil {
			return ended(err, "")
		}
		e.persist(gc, log, propSetupDone, "true")
	}
	env.ProcessIDPrefix = c.Guid + "-action-"
	action, err := steps.Build(env, c.RunInfo.Action)
	if err != nil {
		return ended(err, "action: ")
	}
	target := checks.Target{IP: info.ContainerIP, Container: gc, User: c.RunInfo.CheckUser}
	defaults := checks.Defaults{Interval: e.cfg.HealthyMonitoringInterval, Timeout: e.cfg.CheckTimeout}
	liveness, err := checks.FromDefinition(c.RunInfo.CheckDefinition, false, target, defaults)
	if err != nil {
		return ended(err, "checks: ")
	}
	readiness, err := checks.FromDefinition(c.RunInfo.CheckDefinition, true, target, defaults)
	if err != nil {
		return ended(err, "readiness checks: ")
	}
	startTimeout := c.RunInfo.StartTimeout
	if startTimeout == 0 {
		startTimeout = e.cfg.DefaultStartTimeout
	}
	r := run{
		e: e, guid: c.Guid, gc: gc, log: log, ring: ring, action: action,
		monitor:   checks.Monitor{Checks: liveness, StartInterval: e.cfg.UnhealthyMonitoringInterval, StartTimeout: startTimeout, Logger: log},
		readiness: readiness,
		running:   c.State == StateRunning,
	}
	return r.run(ctx)
}

// run is the main phase of a container: its action, and its checks
// beside it.
type run struct {
	e         *Executor
	guid      string
	gc        garden.Container
	log       *slog.Logger
	ring      *logs.Ring
	action    steps.Step
	monitor   checks.Monitor
	readiness []checks.Check
	// running is set when the container is RUNNING already (restored).
	running bool
}

var errUnhealthy = errors.New("health check failed")

func (r run) run(ctx context.Context) RunResult {
	inner, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// Every goroutine below is owned by this call: wg is waited for
	// before it returns.
	var wg sync.WaitGroup
	defer wg.Wait()
	actionDone := make(chan error, 1)
	startAction := func(ctx context.Context) { wg.Go(func() { actionDone <- r.action.Run(ctx) }) }

	healthy := func() {
		if !r.running {
			if _, _, err := r.e.store.transition(r.guid, StateRunning, nil); err != nil {
				return
			}
			r.e.persist(r.gc, r.log, propState, string(StateRunning))
			r.log.Info("container running")
		}
		if len(r.monitor.Checks) > 0 {
			r.ring.Append(HealthLogSource, logs.Stdout, "Container became healthy")
		}
		if len(r.readiness) == 0 {
			r.e.store.setRoutable(r.guid, true)
			return
		}
		wg.Go(func() {
			checks.WatchReadiness(inner, r.readiness, r.e.cfg.UnhealthyMonitoringInterval, func(ready bool) {
				r.e.store.setRoutable(r.guid, ready)
			})
		})
	}
	monitorDone := make(chan error, 1)
	switch {
	case r.running:
		startAction(inner)
		healthy()
		if len(r.monitor.Checks) > 0 {
			wg.Go(func() { monitorDone <- r.monitor.Watch(inner) })
		}
	case len(r.monitor.Checks) == 0:
		// Nothing to check: RUNNING once the action's process is up.
		startAction(steps.WithStarted(inner, healthy))
	default:
		// The checks may pass before the action's process exists (an exec
		// check, a port some other process holds): RUNNING waits for both.
		started := make(chan struct{})
		startAction(steps.WithStarted(inner, func() { close(started) }))
		wg.Go(func() {
			monitorDone <- r.monitor.Run(inner, func() {
				select {
				case <-started:
					healthy()
				case <-inner.Done():
				}
			})
		})
	}

	var actionErr, monitorErr error
	select {
	case actionErr = <-actionDone:
		cancel(nil)
	case monitorErr = <-monitorDone:
		cancel(errUnhealthy)
		<-actionDone
	}
	switch {
	case ctx.Err() != nil:
		return RunResult{Stopped: true}
	case monitorErr != nil:
		r.ring.Append(HealthLogSource, logs.Stderr, monitorErr.Error())
		return RunResult{Failed: true, FailureReason: monitorErr.Error()}
	case actionErr != nil:
		return RunResult{Failed: true, FailureReason: actionErr.Error()}
	}
	return RunResult{}
}

// persist writes properties (name, value pairs) to the Garden container so
// that a restarted executor sees them. Failures are logged: the container
// runs on, only its restore would be less precise.
func (e *Executor) persist(gc garden.Container, log *slog.Logger, kv ...string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := 0; i+1 < len(kv); i += 2 {
		if err := gc.SetProperty(ctx, kv[i], kv[i+1]); err != nil {
			log.Warn("could not record container property", "property", kv[i], "error", err)
		}
	}
}

func orDefault(s, def string) string {
	if s != "" {
		return s
	}
	return def
}
