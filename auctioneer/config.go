package auctioneer

import (
	"fmt"
	"strings"
	"time"

	"github.com/gavel-scheduler/gavel/internal/config"
	"github.com/gavel-scheduler/gavel/internal/election"
	"github.com/gavel-scheduler/gavel/internal/etcdclient"
	"github.com/gavel-scheduler/gavel/internal/gossip"
	"github.com/gavel-scheduler/gavel/internal/tlsutil"
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
	// ca_cert, cert, key, insecure: the API serves with the certificate,
	// and the auctioneer presents it to the BBS and the reps.
	tlsutil.Files
	// ElectionTTL bounds how long a dead leader holds the election.
	ElectionTTL config.Duration `json:"election_ttl"`
	// CellStateTimeout bounds each cell's state fetch.
	CellStateTimeout config.Duration `json:"cell_state_timeout"`
	// CommunicationTimeout bounds each Perform and BBS call.
	CommunicationTimeout config.Duration `json:"communication_timeout"`
	// MaxAttempts is how many rounds refused work gets.
	MaxAttempts int `json:"max_attempts"`
	// gossip_bind_address, gossip_bind_port, gossip_join,
	// gossip_key_file, gossip_local: the pool the cells are found in.
	gossip.PoolConfig
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
		PoolConfig:           gossip.PoolConfig{GossipBindAddress: "127.0.0.1", GossipBindPort: 7946},
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
	if err := config.CheckAddresses(
		config.Address{Key: "listen_address", Value: c.ListenAddress},
		config.Address{Key: "bbs_address", Value: c.BBSAddress},
		config.Address{Key: "advertise_address", Value: c.AdvertiseAddress, Optional: true},
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
	case c.CellStateTimeout.D() <= 0:
		return fmt.Errorf("cell_state_timeout: must be positive")
	case c.CommunicationTimeout.D() <= 0:
		return fmt.Errorf("communication_timeout: must be positive")
	case c.MaxAttempts < 1:
		return fmt.Errorf("max_attempts: must be at least 1")
	}
	if err := c.PoolConfig.Validate(); err != nil {
		return err
	}
	return config.CheckLogLevel(c.LogLevel)
}
