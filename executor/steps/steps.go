// Package steps owns the executor's action steps: one small type per kind
// of action (download, upload, run, timeout, try, serial, parallel,
// codependent, emit-progress), each a Step that runs until it is done or its
// context is cancelled, and Build, which turns a validated models.Action tree
// into a Step tree against one Garden container.
//
// A step's error text is the failure reason the executor reports ("exit
// status 1", "exceeded 5s timeout", "download app: checksum mismatch ...");
// a cancelled step returns an error that matches ErrCancelled.
package steps

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"sync"

	"github.com/gavel-scheduler/gavel/executor/garden"
)

// Step is one unit of work in a container.
type Step interface {
	// Run performs the step. Cancelling ctx stops it as soon as it can
	// (killing processes it started); it then returns ErrCancelled.
	Run(ctx context.Context) error
}

// Func adapts a function to a Step.
type Func func(ctx context.Context) error

// Run calls f.
func (f Func) Run(ctx context.Context) error { return f(ctx) }

// Container is the part of a Garden container the steps use;
// garden.Container satisfies it.
type Container interface {
	Run(ctx context.Context, spec garden.ProcessSpec, pio garden.ProcessIO) (garden.Process, error)
	Attach(ctx context.Context, processID string, pio garden.ProcessIO) (garden.Process, error)
	StreamIn(ctx context.Context, spec garden.StreamInSpec) error
	StreamOut(ctx context.Context, spec garden.StreamOutSpec) (io.ReadCloser, error)
	Info(ctx context.Context) (garden.ContainerInfo, error)
}

type startedKey struct{}

// WithStarted returns a context under which the first run step to start
// (or re-attach to) its process calls fn, once, before waiting for it:
// the executor reports a container without health checks RUNNING then,
// not before its process exists.
func WithStarted(ctx context.Context, fn func()) context.Context {
	var once sync.Once
	return context.WithValue(ctx, startedKey{}, func() { once.Do(fn) })
}

// processStarted calls the context's WithStarted function, if any.
func processStarted(ctx context.Context) {
	if fn, ok := ctx.Value(startedKey{}).(func()); ok {
		fn()
	}
}

// ErrCancelled is what a step returns when its context was cancelled
// before it finished.
var ErrCancelled = errors.New("cancelled")

// ErrDetached, as the cause of a context's cancellation, tells Detachable
// run steps to leave their processes running: the executor is going away
// and a successor will re-attach to them.
var ErrDetached = errors.New("executor detached")

// cancelled returns ErrCancelled, annotated with the context's cause when
// it is more than plain cancellation.
func cancelled(ctx context.Context) error {
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return fmt.Errorf("%w: %w", ErrCancelled, cause)
	}
	return ErrCancelled
}

// ExitError is a process that exited with a non-zero status.
type ExitError struct {
	Status int
	// OOM is set when the container recorded an out-of-memory kill.
	OOM bool
}

func (e *ExitError) Error() string {
	if e.OOM {
		return fmt.Sprintf("exit status %d (out of memory)", e.Status)
	}
	return fmt.Sprintf("exit status %d", e.Status)
}

// multiError joins several failures into one reason, "a; b".
type multiError []error

func (m multiError) Error() string {
	parts := make([]string, len(m))
	for i, err := range m {
		parts[i] = err.Error()
	}
	return strings.Join(parts, "; ")
}

func (m multiError) Unwrap() []error { return m }

// join returns nil, the one error, or a multiError.
func join(errs []error) error {
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	return multiError(errs)
}

// stripURL drops the *url.Error wrapper, whose text repeats the full URL
// (signed URLs carry credentials in their query).
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}
