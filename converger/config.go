package converger

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/gavel-scheduler/gavel/internal/config"
	"github.com/gavel-scheduler/gavel/internal/election"
	"github.com/gavel-scheduler/gavel/internal/etcdclient"
	"github.com/gavel-scheduler/gavel/internal/gossip"
	"github.com/gavel-scheduler/gavel/internal/tlsutil"
)

// Defaults for Config.
const (
	// DefaultInterval is Diego's convergence interval.
	DefaultInterval = 30 * time.Second
	// DefaultLossDelay is one cell presence refresh interval (a third of
	// the 15 s TTL): cells cut off together stop refreshing within one
	// refresh of each other, so their presences lapse within that long.
	DefaultLossDelay = 5 * time.Second
	// DefaultCommunicationTimeout bounds one pass's calls.
	DefaultCommunicationTimeout = 60 * time.Second
)

// ElectionKey is the convergers' election under an installation's etcd key
// prefix.
func ElectionKey(prefix string) string { return prefix + "/elections/converger" }

// Config is the converger daemon's configuration. Every key can come from a
// YAML or JSON file and be overridden by a flag of the same name.
type Config struct {
	// Name identifies this converger in the election and in the state it
	// saves (default: host name and process id).
	Name string `json:"name"`
	// DebugAddress serves /metrics, /debug/pprof and /healthz.
	DebugAddress string `json:"debug_address"`
	// etcd_endpoints, etcd_ca_cert, etcd_client_cert, etcd_client_key: the
	// election and the cell presence watch live in etcd.
	etcdclient.Config
	// KeyPrefix is the etcd key prefix of this gavel installation.
	KeyPrefix string `json:"key_prefix"`
	// BBSAddress is where the converger reads and repairs state.
	BBSAddress string `json:"bbs_address"`
	// ca_cert, cert, key, insecure: the certificate presented to the BBS,
	// the auctioneer and the reps.
	tlsutil.Files
	// ElectionTTL bounds how long a dead leader holds the election.
	ElectionTTL config.Duration `json:"election_ttl"`
	// ConvergenceInterval is the time between passes.
	ConvergenceInterval config.Duration `json:"convergence_interval"`
	// CellLossDelay is how long a pass waits after a cell disappears.
	CellLossDelay config.Duration `json:"cell_loss_delay"`
	// CommunicationTimeout bounds one pass.
	CommunicationTimeout config.Duration `json:"communication_timeout"`
	// GuardThreshold: more than this share of the cells vanishing inside
	// GuardWindow raises the mass-failure guard.
	GuardThreshold float64         `json:"guard_threshold"`
	GuardWindow    config.Duration `json:"guard_window"`
	// Task convergence (Diego's kick_task_duration,
	// expire_pending_task_duration, expire_completed_task_duration).
	KickTaskDuration            config.Duration `json:"kick_task_duration"`
	ExpirePendingTaskDuration   config.Duration `json:"expire_pending_task_duration"`
	ExpireCompletedTaskDuration config.Duration `json:"expire_completed_task_duration"`
	// gossip_bind_address, gossip_bind_port, gossip_join,
	// gossip_key_file, gossip_local: a cell's death in the pool triggers
	// a pass.
	gossip.PoolConfig
	// LogLevel is debug, info, warn or error.
	LogLevel string `json:"log_level"`
}

// DefaultConfig returns the defaults: loopback addresses, Diego's numbers.
func DefaultConfig() Config {
	return Config{
		DebugAddress:                "127.0.0.1:17020",
		Config:                      etcdclient.Default(),
		KeyPrefix:                   "/gavel/v1",
		BBSAddress:                  "127.0.0.1:8889",
		ElectionTTL:                 config.Duration(election.DefaultTTL),
		ConvergenceInterval:         config.Duration(DefaultInterval),
		CellLossDelay:               config.Duration(DefaultLossDelay),
		CommunicationTimeout:        config.Duration(DefaultCommunicationTimeout),
		GuardThreshold:              DefaultGuardThreshold,
		GuardWindow:                 config.Duration(DefaultGuardWindow),
		KickTaskDuration:            config.Duration(DefaultKickTask),
		ExpirePendingTaskDuration:   config.Duration(DefaultExpirePendingTask),
		ExpireCompletedTaskDuration: config.Duration(DefaultExpireCompletedTask),
		PoolConfig:                  gossip.PoolConfig{GossipBindAddress: "127.0.0.1", GossipBindPort: 7947},
		LogLevel:                    "info",
	}
}

// LoadConfig reads a YAML or JSON file over the defaults.
func LoadConfig(path string) (Config, error) {
	cfg := DefaultConfig()
	if path == "" {
		return cfg, nil
	}
	err := config.Load(path, &cfg)
	return cfg, err
}

// Settings are the plan settings the config asks for.
func (c Config) Settings() Settings {
	s := DefaultSettings()
	s.GuardThreshold = c.GuardThreshold
	s.GuardWindow = c.GuardWindow.D()
	s.KickTask = c.KickTaskDuration.D()
	s.ExpirePendingTask = c.ExpirePendingTaskDuration.D()
	s.ExpireCompletedTask = c.ExpireCompletedTaskDuration.D()
	return s
}

// name is the configured name, or host name and process id.
func (c Config) name() string {
	if c.Name != "" {
		return c.Name
	}
	host, err := os.Hostname()
	if err != nil {
		host = "converger"
	}
	return fmt.Sprintf("%s-%d", host, os.Getpid())
}

// Validate names the first bad key.
func (c Config) Validate() error {
	if err := config.CheckAddresses(
		config.Address{Key: "bbs_address", Value: c.BBSAddress},
		config.Address{Key: "debug_address", Value: c.DebugAddress, Optional: true},
	); err != nil {
		return err
	}
	if err := c.Config.Validate(); err != nil {
		return err
	}
	if !strings.HasPrefix(c.KeyPrefix, "/") {
		return fmt.Errorf("key_prefix %q: must start with /", c.KeyPrefix)
	}
	if err := c.Files.Validate(); err != nil {
		return err
	}
	switch {
	case c.ElectionTTL.D() < time.Second:
		return fmt.Errorf("election_ttl: must be at least 1s")
	case c.ConvergenceInterval.D() <= 0:
		return fmt.Errorf("convergence_interval: must be positive")
	case c.CellLossDelay.D() < 0:
		return fmt.Errorf("cell_loss_delay: must not be negative")
	case c.CommunicationTimeout.D() <= 0:
		return fmt.Errorf("communication_timeout: must be positive")
	case !(c.GuardThreshold > 0 && c.GuardThreshold <= 1):
		return fmt.Errorf("guard_threshold: %g must be above 0 and at most 1", c.GuardThreshold)
	case c.GuardWindow.D() <= 0:
		return fmt.Errorf("guard_window: must be positive")
	case c.KickTaskDuration.D() <= 0:
		return fmt.Errorf("kick_task_duration: must be positive")
	case c.ExpirePendingTaskDuration.D() <= 0:
		return fmt.Errorf("expire_pending_task_duration: must be positive")
	case c.ExpireCompletedTaskDuration.D() <= 0:
		return fmt.Errorf("expire_completed_task_duration: must be positive")
	}
	if err := c.PoolConfig.Validate(); err != nil {
		return err
	}
	return config.CheckLogLevel(c.LogLevel)
}
