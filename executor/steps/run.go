package steps

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/gavel-scheduler/gavel/executor/garden"
	"github.com/gavel-scheduler/gavel/executor/logs"
)

// DefaultGracefulShutdown is how long a cancelled Run waits between SIGTERM
// and SIGKILL when Run.GracefulShutdown is zero.
const DefaultGracefulShutdown = 10 * time.Second

// Run runs one process in the container and waits for it. A non-zero exit
// is an *ExitError. Cancelling it sends SIGTERM, then SIGKILL after
// GracefulShutdown, and waits for the process to go.
type Run struct {
	Container Container
	Spec      garden.ProcessSpec
	// Stdout and Stderr receive the process's output; nil discards it.
	Stdout, Stderr *logs.Writer
	// Reattach makes Run first attach to a live (or exited) process with
	// Spec.ID, as left by a previous executor, and start it only if
	// Garden does not know it.
	Reattach bool
	// Detachable leaves the process running when the context is
	// cancelled with ErrDetached as its cause (the executor is shutting
	// down and a successor will re-attach).
	Detachable       bool
	GracefulShutdown time.Duration
	Logger           *slog.Logger
}

type exit struct {
	status int
	err    error
}

// Run starts (or re-attaches to) the process and waits for its exit.
func (r Run) Run(ctx context.Context) error {
	if ctx.Err() != nil {
		return cancelled(ctx)
	}
	defer r.flush()
	proc, err := r.start(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return cancelled(ctx)
		}
		return fmt.Errorf("run %s: %w", r.Spec.Path, err)
	}
	processStarted(ctx)
	// The waiter is owned by this call: Run does not return before the
	// process has exited (after SIGKILL at the latest), so neither does
	// the goroutine.
	exited := make(chan exit, 1)
	go func() {
		status, err := proc.Wait()
		exited <- exit{status, err}
	}()

	select {
	case e := <-exited:
		return r.result(ctx, e)
	case <-ctx.Done():
	}
	if r.Detachable && errors.Is(context.Cause(ctx), ErrDetached) {
		// The waiter goroutine ends with the process (or with the
		// Garden connection); nobody is left to read its result.
		return cancelled(ctx)
	}
	r.logger().Debug("stopping process", "process_id", proc.ID())
	if err := proc.Signal(garden.SignalTerminate); err != nil {
		r.logger().Warn("signal process", "process_id", proc.ID(), "signal", "TERM", "error", err)
	}
	grace := r.GracefulShutdown
	if grace <= 0 {
		grace = DefaultGracefulShutdown
	}
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-exited:
		return cancelled(ctx)
	case <-timer.C:
	}
	if err := proc.Signal(garden.SignalKill); err != nil {
		r.logger().Warn("signal process", "process_id", proc.ID(), "signal", "KILL", "error", err)
	}
	<-exited
	return cancelled(ctx)
}

func (r Run) start(ctx context.Context) (garden.Process, error) {
	pio := garden.ProcessIO{}
	if r.Stdout != nil {
		pio.Stdout = r.Stdout
	}
	if r.Stderr != nil {
		pio.Stderr = r.Stderr
	}
	if r.Reattach && r.Spec.ID != "" {
		proc, err := r.Container.Attach(ctx, r.Spec.ID, pio)
		var notFound garden.ProcessNotFoundError
		if err == nil || !errors.As(err, &notFound) {
			return proc, err
		}
	}
	return r.Container.Run(ctx, r.Spec, pio)
}

// result turns a wait result into the step's error.
func (r Run) result(ctx context.Context, e exit) error {
	if e.err != nil {
		return fmt.Errorf("run %s: wait: %w", r.Spec.Path, e.err)
	}
	if e.status == 0 {
		return nil
	}
	exitErr := &ExitError{Status: e.status}
	// The info call must not fail just because the step was cancelled
	// meanwhile: the process has exited and its reason is still wanted.
	infoCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if info, err := r.Container.Info(infoCtx); err == nil {
		exitErr.OOM = slices.Contains(info.Events, garden.EventOutOfMemory)
	} else {
		r.logger().Warn("container info after exit", "error", err)
	}
	return exitErr
}

func (r Run) flush() {
	if r.Stdout != nil {
		r.Stdout.Flush()
	}
	if r.Stderr != nil {
		r.Stderr.Flush()
	}
}

func (r Run) logger() *slog.Logger {
	if r.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.Logger
}
