package checks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Monitor runs a container's health checks: first the startup phase, in
// which every check is probed each StartInterval until each has passed once
// (or StartTimeout elapses), then the liveness phase, in which each check is
// probed at its own Interval until one fails.
type Monitor struct {
	Checks        []Check
	StartInterval time.Duration
	// StartTimeout bounds the startup phase; 0 means no bound.
	StartTimeout time.Duration
	Logger       *slog.Logger
}

// NeverHealthyError is a container whose checks did not all pass within the
// start timeout.
type NeverHealthyError struct {
	After time.Duration
	Last  error
}

func (e *NeverHealthyError) Error() string {
	return fmt.Sprintf("Instance never healthy after %s: %v", e.After, e.Last)
}

func (e *NeverHealthyError) Unwrap() error { return e.Last }

// UnhealthyError is a liveness check failing after the container was
// healthy.
type UnhealthyError struct{ Err error }

func (e *UnhealthyError) Error() string { return "health check failed: " + e.Err.Error() }

func (e *UnhealthyError) Unwrap() error { return e.Err }

var errStartTimeout = errors.New("start timeout")

// Run waits for the checks to pass, calls healthy, then watches them. It
// returns a *NeverHealthyError, an *UnhealthyError, or ctx's error once ctx
// ends.
func (m Monitor) Run(ctx context.Context, healthy func()) error {
	if err := m.WaitHealthy(ctx); err != nil {
		return err
	}
	healthy()
	return m.Watch(ctx)
}

// WaitHealthy is the startup phase.
func (m Monitor) WaitHealthy(ctx context.Context) error {
	start := time.Now()
	phase := ctx
	if m.StartTimeout > 0 {
		var cancel context.CancelFunc
		phase, cancel = context.WithTimeoutCause(ctx, m.StartTimeout, errStartTimeout)
		defer cancel()
	}
	pending := append([]Check(nil), m.Checks...)
	var last error
	ticker := time.NewTicker(max(m.StartInterval, time.Millisecond))
	defer ticker.Stop()
	for {
		still := pending[:0]
		for _, c := range pending {
			err := c.Probe.Probe(phase)
			if err == nil {
				m.logger().Debug("check passed", "check", c.Name, "elapsed", time.Since(start))
				continue
			}
			if phase.Err() == nil || last == nil {
				last = err
			}
			still = append(still, c)
		}
		pending = still
		if len(pending) == 0 {
			return nil
		}
		select {
		case <-ticker.C:
		case <-phase.Done():
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(context.Cause(phase), errStartTimeout) {
			return &NeverHealthyError{After: m.StartTimeout, Last: last}
		}
	}
}

// Watch is the liveness phase: one prober per check, the first failure ends
// them all.
func (m Monitor) Watch(ctx context.Context) error {
	if len(m.Checks) == 0 {
		<-ctx.Done()
		return ctx.Err()
	}
	inner, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	for _, c := range m.Checks {
		wg.Go(func() {
			ticker := time.NewTicker(max(c.Interval, time.Millisecond))
			defer ticker.Stop()
			for {
				select {
				case <-inner.Done():
					return
				case <-ticker.C:
				}
				err := c.Probe.Probe(inner)
				if err != nil && inner.Err() == nil {
					once.Do(func() {
						m.logger().Info("check failed", "check", c.Name, "error", err)
						first = &UnhealthyError{Err: err}
						cancel()
					})
					return
				}
			}
		})
	}
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}

// WatchReadiness probes readiness checks at their intervals and calls
// changed(ready) whenever the combined result (all pass) changes, starting
// from not ready. It returns when ctx ends.
func WatchReadiness(ctx context.Context, list []Check, interval time.Duration, changed func(ready bool)) {
	ready := false
	ticker := time.NewTicker(max(interval, time.Millisecond))
	defer ticker.Stop()
	for {
		ok := true
		for _, c := range list {
			if c.Probe.Probe(ctx) != nil {
				ok = false
				break
			}
		}
		if ctx.Err() != nil {
			return
		}
		if ok != ready {
			ready = ok
			changed(ready)
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

func (m Monitor) logger() *slog.Logger {
	if m.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return m.Logger
}
