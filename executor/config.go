package executor

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Config configures an Executor. Zero values take the defaults documented
// on each field (Diego's, unless noted).
type Config struct {
	// MemoryMB and DiskMB are the capacity offered to work; 0 means
	// "auto": what Garden reports.
	MemoryMB int
	DiskMB   int
	// MaxContainers is the number of container slots; default 250.
	MaxContainers int
	// Owner marks the Garden containers of this executor (property
	// executor.owner), so that several executors can share a Garden and
	// restore finds only its own; default "executor".
	Owner string

	// ReservedExpiration is how long a reservation may wait for
	// RunContainer before it completes as "expired container"; default 1m.
	ReservedExpiration time.Duration
	// PruneInterval is how often expired reservations are looked for;
	// default 30s.
	PruneInterval time.Duration

	// DefaultStartTimeout bounds the startup checks of a container whose
	// RunInfo sets no StartTimeout; default 60s.
	DefaultStartTimeout time.Duration
	// UnhealthyMonitoringInterval is the probe interval of the startup
	// phase; default 500ms (Diego's job default is 2s; instances route
	// sooner this way at the cost of a few probes).
	UnhealthyMonitoringInterval time.Duration
	// HealthyMonitoringInterval is the liveness interval of checks that
	// set none; default 30s.
	HealthyMonitoringInterval time.Duration
	// CheckTimeout bounds one probe of a check that sets none; default 1s.
	CheckTimeout time.Duration
	// GracefulShutdown is the wait between SIGTERM and SIGKILL when a
	// container's processes are stopped; default 10s.
	GracefulShutdown time.Duration

	// DownloadCacheDir holds the download cache; required.
	DownloadCacheDir string
	// DownloadCacheMaxBytes bounds it; default 1 GiB.
	DownloadCacheMaxBytes int64
	// MaxConcurrentDownloads bounds downloads in flight; default 5.
	MaxConcurrentDownloads int

	// LogLines and LogBytes bound each container's log ring; defaults
	// 10000 lines and 1 MiB.
	LogLines int
	LogBytes int
	// EventBuffer is each subscriber's buffer; default 1024.
	EventBuffer int

	// Logger is the executor's logger; nil discards.
	Logger *slog.Logger
}

// withDefaults fills unset fields.
func (c Config) withDefaults() Config {
	def := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	defInt := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defInt(&c.MaxContainers, 250)
	if c.Owner == "" {
		c.Owner = "executor"
	}
	def(&c.ReservedExpiration, time.Minute)
	def(&c.PruneInterval, 30*time.Second)
	def(&c.DefaultStartTimeout, 60*time.Second)
	def(&c.UnhealthyMonitoringInterval, 500*time.Millisecond)
	def(&c.HealthyMonitoringInterval, 30*time.Second)
	def(&c.CheckTimeout, time.Second)
	def(&c.GracefulShutdown, 10*time.Second)
	if c.DownloadCacheMaxBytes == 0 {
		c.DownloadCacheMaxBytes = 1 << 30
	}
	defInt(&c.MaxConcurrentDownloads, 5)
	defInt(&c.LogLines, 10000)
	defInt(&c.LogBytes, 1<<20)
	defInt(&c.EventBuffer, 1024)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate refuses a configuration the executor cannot run with, naming
// the key.
func (c Config) Validate() error {
	var errs []error
	neg := func(key string, v int64) {
		if v < 0 {
			errs = append(errs, fmt.Errorf("%s must not be negative, got %d", key, v))
		}
	}
	neg("memory_mb", int64(c.MemoryMB))
	neg("disk_mb", int64(c.DiskMB))
	neg("max_containers", int64(c.MaxContainers))
	neg("download_cache_max_bytes", c.DownloadCacheMaxBytes)
	neg("max_concurrent_downloads", int64(c.MaxConcurrentDownloads))
	neg("log_lines", int64(c.LogLines))
	neg("log_bytes", int64(c.LogBytes))
	neg("event_buffer", int64(c.EventBuffer))
	for _, d := range []struct {
		key string
		v   time.Duration
	}{
		{"reserved_expiration", c.ReservedExpiration}, {"prune_interval", c.PruneInterval},
		{"default_start_timeout", c.DefaultStartTimeout}, {"unhealthy_monitoring_interval", c.UnhealthyMonitoringInterval},
		{"healthy_monitoring_interval", c.HealthyMonitoringInterval}, {"check_timeout", c.CheckTimeout},
		{"graceful_shutdown", c.GracefulShutdown},
	} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s must not be negative, got %s", d.key, d.v))
		}
	}
	if c.DownloadCacheDir == "" {
		errs = append(errs, errors.New("download_cache_dir must be set"))
	}
	for _, r := range c.Owner {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			errs = append(errs, fmt.Errorf("owner must match [A-Za-z0-9._-]+, got %q", c.Owner))
			break
		}
	}
	return errors.Join(errs...)
}
