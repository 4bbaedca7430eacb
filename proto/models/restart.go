package models

import (
	"math"
	"time"
)

// Crash restart policy constants (Diego's numbers).
const (
	// DefaultImmediateRestarts is how many crash counts (0, 1, 2) restart at
	// once, without a backoff. The count is checked after the crash
	// increments it, so only the first two crashes in a row restart at once.
	DefaultImmediateRestarts = 3
	// CrashBackoffMinDuration is the wait after the first crash that is not
	// restarted at once; each further crash doubles it.
	CrashBackoffMinDuration = 30 * time.Second
	// DefaultMaxBackoffDuration caps the doubling wait.
	DefaultMaxBackoffDuration = 16 * time.Minute
	// DefaultMaxRestarts is the crash count at which an instance is given up
	// on: it stays CRASHED until its DesiredLRP changes or goes away.
	DefaultMaxRestarts = 200
	// CrashResetTimeout is how long an instance must have been RUNNING for
	// its next crash to count as the first one again.
	CrashResetTimeout = 5 * time.Minute
	// StaleUnclaimedActualLRPDuration is how long an UNCLAIMED row may wait
	// before convergence asks for another auction.
	StaleUnclaimedActualLRPDuration = 30 * time.Second
)

// RestartCalculator decides when a crashed instance is restarted. Use
// NewDefaultRestartCalculator; the zero value restarts nothing.
type RestartCalculator struct {
	// ImmediateRestarts: crash counts below this restart at once.
	ImmediateRestarts int32
	// MaxBackoffDuration caps the wait between restarts.
	MaxBackoffDuration time.Duration
	// MaxRestarts: crash counts at or above this are never restarted.
	MaxRestarts int32
}

// NewDefaultRestartCalculator returns the calculator with Diego's defaults.
func NewDefaultRestartCalculator() RestartCalculator {
	return RestartCalculator{
		ImmediateRestarts:  DefaultImmediateRestarts,
		MaxBackoffDuration: DefaultMaxBackoffDuration,
		MaxRestarts:        DefaultMaxRestarts,
	}
}

// maxBackoffCount is the largest doubling exponent worth applying:
// floor(log2(ceil(MaxBackoffDuration / CrashBackoffMinDuration))), 5 for
// the defaults (30 s · 2^5 = 16 min). Capping the exponent, not just the
// result, keeps the shift from overflowing at high crash counts.
func (c RestartCalculator) maxBackoffCount() int32 {
	steps := int64(math.Ceil(float64(c.MaxBackoffDuration) / float64(CrashBackoffMinDuration)))
	var n int32
	for steps > 1 {
		steps >>= 1
		n++
	}
	return n
}

// Backoff is how long after a crash convergence waits before restarting an
// instance with this crash count: zero below ImmediateRestarts, then
// 30 s doubling per crash up to MaxBackoffDuration. Counts at or above
// MaxRestarts still get a value, but ShouldRestart never restarts them.
func (c RestartCalculator) Backoff(crashCount int32) time.Duration {
	if crashCount < c.ImmediateRestarts {
		return 0
	}
	exp := min(int64(crashCount)-int64(c.ImmediateRestarts), int64(c.maxBackoffCount()))
	d := CrashBackoffMinDuration << exp
	if d < 0 || d > c.MaxBackoffDuration {
		return c.MaxBackoffDuration
	}
	return d
}

// ShouldRestart reports whether an instance that crashed at crashedAt (ns)
// with crashCount may be restarted at now (ns).
func (c RestartCalculator) ShouldRestart(now, crashedAt int64, crashCount int32) bool {
	if crashCount < c.ImmediateRestarts {
		return true
	}
	if crashCount >= c.MaxRestarts {
		return false
	}
	return now >= crashedAt+int64(c.Backoff(crashCount))
}

// NextCrashCount is the crash count to store when the instance in stored
// crashes at now (ns). An instance that had been RUNNING for longer than
// CrashResetTimeout was healthy, so its count starts over at 1.
func NextCrashCount(stored *ActualLRP, now int64) int32 {
	if stored.GetState() == ActualLRP_RUNNING && stored.GetSince() < now-int64(CrashResetTimeout) {
		return 1
	}
	n := stored.GetCrashCount()
	if n == math.MaxInt32 {
		return n // saturate: wrapping negative would mean "restart at once"
	}
	return n + 1
}

// ShouldRestartImmediately reports whether a crash that left a at its
// current crash count is restarted at once (the row goes straight back to
// UNCLAIMED and to the auction) rather than written as CRASHED.
func (a *ActualLRP) ShouldRestartImmediately(c RestartCalculator) bool {
	return c.ShouldRestart(0, 0, a.GetCrashCount())
}

// ShouldRestartCrash reports whether convergence should restart the CRASHED
// row a at now (ns). Rows in any other state are never restarted here.
func (a *ActualLRP) ShouldRestartCrash(now int64, c RestartCalculator) bool {
	if a.GetState() != ActualLRP_CRASHED {
		return false
	}
	return c.ShouldRestart(now, a.GetSince(), a.GetCrashCount())
}
