package auctioneer

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

// Config is the auctioneer daemon's configuration. Every key can come from
// a YAML or JSON file and be overridden by a flag of the same name.
type Config struct {
	// ListenAddress is where the gRPC API listens.
	ListenAddress string `json:"listen_address"`
	// AdvertiseAddress is the address published in the election, which
	// the BBS dials (default: the bound listen address).
	AdvertiseAddress string `json:"advertise_address"`
	// DebugAddress serves /metrics, /debug/pprof and /healthz.
	DebugAddress string `json:"debug_address"`
	// etcd_endpoints, etcd_ca_cert, etcd_client_cert, etcd_client_key:
	// the election lives in etcd.
	etcdclient.Config
	// KeyPrefix is the etcd key prefix of this gavel installation.
	KeyPrefix string `json:"key_prefix"`
	// BBSAddress is where placement failures are reported.
	BBSAddress string `json:"bbs_address"`
	// CACert, Cert and Key are the mutual TLS material: the API serves
	// with it, and the auctioneer presents it to the BBS and the reps.
	CACert string `json:"ca_cert"`
	Cert   string `json:"cert"`
	Key    string `json:"key"`
	// Insecure serves and dials plaintext gRPC.
	Insecure bool `json:"insecure"`
	// ElectionTTL bounds how long a dead leader holds the election.
	ElectionTTL config.Duration `json:"election_ttl"`
	// CellStateTimeout bounds each cell's state fetch.
	CellStateTimeout config.Duration `json:"cell_state_timeout"`
	// CommunicationTimeout bounds each Perform and BBS call.
	CommunicationTimeout config.Duration `json:"communication_timeout"`
	// MaxAttempts is how many rounds refused work gets.
	MaxAttempts int `json:"max_attempts"`
	// GossipBindAddress and GossipBindPort are where the memberlist node
	// listens; GossipJoin lists seeds (host:port).
	GossipBindAddress string   `json:"gossip_bind_address"`
	GossipBindPort    int      `json:"gossip_bind_port"`
	GossipJoin        []string `json:"gossip_join"`
	// GossipKeyFile holds a 16, 24 or 32 byte key encrypting the gossip.
	GossipKeyFile string `json:"gossip_key_file"`
	// GossipLocal uses loopback failure-detection timings (dev, tests).
	GossipLocal bool `json:"gossip_local"`
	// ShutdownTimeout bounds a graceful stop.
	ShutdownTimeout config.Duration `json:"shutdown_timeout"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `json:"log_level"`
}

// DefaultConfig returns the defaults: loopback addresses, Diego's numbers.
func DefaultConfig() Config {
	return Config{
		ListenAddress:        "127.0.0.1:9016",
		DebugAddress:         "127.0.0.1:17018",
		Config:               etcdclient.Default(),
		KeyPrefix:            "/gavel/v1",
		BBSAddress:           "127.0.0.1:8889",
		ElectionTTL:          config.Duration(election.DefaultTTL),
		CellStateTimeout:     config.Duration(DefaultCellStateTimeout),
		CommunicationTimeout: config.Duration(DefaultCommunicationTimeout),
		MaxAttempts:          DefaultMaxAttempts,
		GossipBindAddress:    "127.0.0.1",
		GossipBindPort:       7946,
		ShutdownTimeout:      config.Duration(10 * time.Second),
		LogLevel:             "info",
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

// Validate names the first bad key.
func (c Config) Validate() error {
	for key, addr := range map[string]string{"listen_address": c.ListenAddress, "bbs_address": c.BBSAddress} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return fmt.Errorf("%s %q: %w", key, addr, err)
		}
	}
	for key, addr := range map[string]string{"advertise_address": c.AdvertiseAddress, "debug_address": c.DebugAddress} {
		if addr == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return fmt.Errorf("%s %q: %w", key, addr, err)
		}
	}
	if err := c.Config.Validate(); err != nil {
		return err
	}
	if !strings.HasPrefix(c.KeyPrefix, "/") {
		return fmt.Errorf("key_prefix %q: must start with /", c.KeyPrefix)
	}
	if !c.Insecure {
		for key, v := range map[string]string{"ca_cert": c.CACert, "cert": c.Cert, "key": c.Key} {
			if v == "" {
				return fmt.Errorf("%s: required unless insecure is set", key)
			}
		}
	}
	switch {
	case c.ElectionTTL.D() < time.Second:
		return fmt.Errorf("election_ttl: must be at least 1s")
	case c.CellStateTimeout.D() <= 0:
		return fmt.Errorf("cell_state_timeout: must be positive")
	case c.CommunicationTimeout.D() <= 0:
		return fmt.Errorf("communication_timeout: must be positive")
	case c.MaxAttempts < 1:
		return fmt.Errorf("max_attempts: must be at least 1")
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
