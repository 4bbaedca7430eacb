package converger

import (
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/gavel-scheduler/gavel/internal/config"
	"github.com/gavel-scheduler/gavel/internal/election"
	"github.com/gavel-scheduler/gavel/internal/etcdclient"
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
	// CACert, Cert and Key are the mutual TLS material presented to the
	// BBS and the auctioneer.
	CACert string `json:"ca_cert"`
	Cert   string `json:"cert"`
	Key    string `json:"key"`
	// Insecure dials plaintext gRPC.
	Insecure bool `json:"insecure"`
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
	// GossipBindAddress and GossipBindPort are where the memberlist node
	// listens; GossipJoin lists seeds (host:port).
	GossipBindAddress string   `json:"gossip_bind_address"`
	GossipBindPort    int      `json:"gossip_bind_port"`
	GossipJoin        []string `json:"gossip_join"`
	// GossipKeyFile holds a 16, 24 or 32 byte key encrypting the gossip.
	GossipKeyFile string `json:"gossip_key_file"`
	// GossipLocal uses loopback failure-detection timings (dev, tests).
	GossipLocal bool `json:"gossip_local"`
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
		GossipBindAddress:           "127.0.0.1",
		GossipBindPort:              7947,
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
	if _, _, err := net.SplitHostPort(c.BBSAddress); err != nil {
		return fmt.Errorf("bbs_address %q: %w", c.BBSAddress, err)
	}
	if c.DebugAddress != "" {
		if _, _, err := net.SplitHostPort(c.DebugAddress); err != nil {
			return fmt.Errorf("debug_address %q: %w", c.DebugAddress, err)
		}
	}
	if err := c.Config.Validate(); err != nil {
		return err
	}
	if !strings.HasPrefix(c.KeyPrefix, "/") {
		return fmt.Errorf("key_prefix %q: must start with /", c.KeyPrefix)
	}
	if !c.Insecure {
		for _, kv := range [][2]string{{"ca_cert", c.CACert}, {"cert", c.Cert}, {"key", c.Key}} {
			if kv[1] == "" {
				return fmt.Errorf("%s: required unless insecure is set", kv[0])
			}
		}
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
	case c.GossipBindPort < 0 || c.GossipBindPort > 65535:
		return fmt.Errorf("gossip_bind_port: %d is not a port", c.GossipBindPort)
	}
	if net.ParseIP(c.GossipBindAddress) == nil {
		return fmt.Errorf("gossip_bind_address %q: not an IP address", c.GossipBindAddress)
	}
	for _, s := range c.GossipJoin {
		if _, _, err := net.SplitHostPort(s); err != nil {
			return fmt.Errorf("gossip_join %q: %w", s, err)
		}
	}
	if c.GossipKeyFile != "" {
		if _, err := os.Stat(c.GossipKeyFile); err != nil {
			return fmt.Errorf("gossip_key_file: %w", err)
		}
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log_level %q: must be debug, info, warn or error", c.LogLevel)
	}
	return nil
}
