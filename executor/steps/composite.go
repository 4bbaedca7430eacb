package steps

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/gavel-scheduler/gavel/executor/logs"
)

// Serial runs its steps one after another and stops at the first failure.
type Serial []Step

// Run runs each step in order.
func (s Serial) Run(ctx context.Context) error {
	for _, st := range s {
		if ctx.Err() != nil {
			return cancelled(ctx)
		}
		if err := st.Run(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Parallel runs its steps at once and waits for all of them; it fails with
// every failure if any fails.
type Parallel []Step

// Run runs all steps and joins their failures.
func (p Parallel) Run(ctx context.Context) error {
	errs := make([]error, len(p))
	var wg sync.WaitGroup
	for i, st := range p {
		wg.Go(func() { errs[i] = st.Run(ctx) })
	}
	wg.Wait()
	if ctx.Err() != nil {
		return cancelled(ctx)
	}
	return join(nonNil(errs))
}

// Codependent runs its steps at once; the first failure cancels the rest.
// It returns the failures that were not caused by that cancellation.
type Codependent []Step

// Run runs all steps until they finish or one fails.
func (c Codependent) Run(ctx context.Context) error {
	inner, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make([]error, len(c))
	var wg sync.WaitGroup
	var once sync.Once
	var first int
	for i, st := range c {
		wg.Go(func() {
			if errs[i] = st.Run(inner); errs[i] != nil {
				once.Do(func() { first = i; cancel() })
			}
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return cancelled(ctx)
	}
	var failed []error
	for i, err := range errs {
		// A sibling we cancelled reports ErrCancelled: not a failure of
		// its own.
		if err != nil && (i == first || !errors.Is(err, ErrCancelled)) {
			failed = append(failed, err)
		}
	}
	return join(failed)
}

// Try runs its step and reports success whatever the step returned, unless
// the try itself was cancelled. The ignored failure is logged.
type Try struct {
	Step   Step
	Logs   *logs.Ring
	Source string
}

// Run runs the step and swallows its failure.
func (t Try) Run(ctx context.Context) error {
	err := t.Step.Run(ctx)
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return cancelled(ctx)
	}
	if t.Logs != nil {
		t.Logs.Append(t.Source, logs.Stdout, "Failed (ignored): "+err.Error())
	}
	return nil
}

// TimeoutError is a step that did not finish in time.
type TimeoutError struct{ Timeout time.Duration }

func (e *TimeoutError) Error() string { return fmt.Sprintf("exceeded %s timeout", e.Timeout) }

var errDeadline = errors.New("step deadline")

// Timeout fails its step once it has run for longer than After, cancelling
// it.
type Timeout struct {
	Step  Step
	After time.Duration
}

// Run runs the step under the deadline.
func (t Timeout) Run(ctx context.Context) error {
	inner, cancel := context.WithTimeoutCause(ctx, t.After, errDeadline)
	defer cancel()
	err := t.Step.Run(inner)
	if err != nil && ctx.Err() == nil && errors.Is(context.Cause(inner), errDeadline) {
		return &TimeoutError{Timeout: t.After}
	}
	return err
}

// EmitProgress writes a message to the container's log before its step
// and another after it: the success message, or the failure prefix with
// the failure. The step's result is returned unchanged.
type EmitProgress struct {
	Step           Step
	Logs           *logs.Ring
	Source         string
	StartMessage   string
	SuccessMessage string
	FailurePrefix  string
}

// Run runs the step between its messages.
func (e EmitProgress) Run(ctx context.Context) error {
	e.emit(e.StartMessage)
	err := e.Step.Run(ctx)
	switch {
	case err == nil:
		e.emit(e.SuccessMessage)
	case e.FailurePrefix != "" && !errors.Is(err, ErrCancelled):
		e.emit(e.FailurePrefix + ": " + err.Error())
	}
	return err
}

func (e EmitProgress) emit(msg string) {
	if msg != "" && e.Logs != nil {
		e.Logs.Append(e.Source, logs.Stdout, msg)
	}
}

func nonNil(errs []error) []error {
	var out []error
	for _, err := range errs {
		if err != nil {
			out = append(out, err)
		}
	}
	return out
}
