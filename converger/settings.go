package converger

import (
	"time"

	"github.com/gavel-scheduler/gavel/proto/models"
)

// Defaults for Settings (Diego's numbers; the guard's are gavel's).
const (
	// DefaultGuardThreshold: more than this share of the cells vanishing
	// inside one guard window raises the mass-failure guard.
	DefaultGuardThreshold = 0.5
	// DefaultGuardWindow is one cell presence TTL: cells cut off together
	// lose their presences within one TTL of each other.
	DefaultGuardWindow = 15 * time.Second
	// DefaultExpirePendingTask is how long a task may wait to be placed.
	DefaultExpirePendingTask = 30 * time.Minute
	// DefaultKickTask is how long a completed task waits before its
	// callback is sent again, and how long a resolver may hold a task.
	DefaultKickTask = 30 * time.Second
	// DefaultExpireCompletedTask is how long a completed task is kept for
	// its client to collect.
	DefaultExpireCompletedTask = 120 * time.Second
)

// Settings are the knobs Calculate plans with.
type Settings struct {
	GuardThreshold      float64
	GuardWindow         time.Duration
	StaleUnclaimed      time.Duration
	ExpirePendingTask   time.Duration
	KickTask            time.Duration
	ExpireCompletedTask time.Duration
	// Restart is the crash restart policy (Diego's when zero).
	Restart models.RestartCalculator
}

// DefaultSettings returns Diego's convergence numbers and the default guard.
func DefaultSettings() Settings {
	return Settings{
		GuardThreshold:      DefaultGuardThreshold,
		GuardWindow:         DefaultGuardWindow,
		StaleUnclaimed:      models.StaleUnclaimedActualLRPDuration,
		ExpirePendingTask:   DefaultExpirePendingTask,
		KickTask:            DefaultKickTask,
		ExpireCompletedTask: DefaultExpireCompletedTask,
		Restart:             models.NewDefaultRestartCalculator(),
	}
}

// Proto is the settings as stored with the converger's state.
func (s Settings) Proto() *models.ConvergenceSettings {
	return &models.ConvergenceSettings{
		GuardThreshold:        s.GuardThreshold,
		GuardWindowNs:         int64(s.GuardWindow),
		StaleUnclaimedNs:      int64(s.StaleUnclaimed),
		ExpirePendingTaskNs:   int64(s.ExpirePendingTask),
		KickTaskNs:            int64(s.KickTask),
		ExpireCompletedTaskNs: int64(s.ExpireCompletedTask),
	}
}

// SettingsFrom returns stored settings, defaults for whatever is unset.
func SettingsFrom(p *models.ConvergenceSettings) Settings {
	s := DefaultSettings()
	if p == nil {
		return s
	}
	if p.GuardThreshold > 0 {
		s.GuardThreshold = p.GuardThreshold
	}
	for _, f := range []struct {
		ns  int64
		dst *time.Duration
	}{
		{p.GuardWindowNs, &s.GuardWindow},
		{p.StaleUnclaimedNs, &s.StaleUnclaimed},
		{p.ExpirePendingTaskNs, &s.ExpirePendingTask},
		{p.KickTaskNs, &s.KickTask},
		{p.ExpireCompletedTaskNs, &s.ExpireCompletedTask},
	} {
		if f.ns > 0 {
			*f.dst = time.Duration(f.ns)
		}
	}
	return s
}
