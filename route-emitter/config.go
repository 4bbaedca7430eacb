package routeemitter

import (
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/gavel-scheduler/gavel/internal/config"
	"github.com/gavel-scheduler/gavel/internal/election"
	"github.com/gavel-scheduler/gavel/internal/etcdclient"
	"github.com/gavel-scheduler/gavel/internal/tlsutil"
)

// Defaults (Diego's where it has one).
const (
	// DefaultSyncInterval is how often a full sync runs (Diego's
	// sync_interval).
	DefaultSyncInterval = 60 * time.Second
	// DefaultCommunicationTimeout bounds each BBS call (Diego's
	// communication_timeout).
	DefaultCommunicationTimeout = 30 * time.Second
	// DefaultConnectTimeout bounds Envoy's connection to an instance.
	DefaultConnectTimeout = time.Second
)

// ElectionKey is the election of global-mode route emitters.
func ElectionKey(prefix string) string { return prefix + "/elections/route-emitter" }

// Config is the route emitter daemon's configuration. Every key can come
// from a YAML or JSON file and be overridden by a flag of the same name.
type Config struct {
	// ListenAddress serves ADS (xDS) to Envoy and the read API
	// (`gavel routes`).
	ListenAddress string `json:"listen_address"`
	// AdvertiseAddress is published in the election (global mode), so
	// tools find the serving emitter (default: the bound listen address).
	AdvertiseAddress string `json:"advertise_address"`
	// DebugAddress serves /metrics, /debug/pprof and /healthz.
	DebugAddress string `json:"debug_address"`
	// etcd_endpoints, etcd_ca_cert, etcd_client_cert, etcd_client_key: the
	// global-mode election lives in etcd (local mode does not use etcd).
	etcdclient.Config
	// KeyPrefix is the etcd key prefix of this gavel installation.
	KeyPrefix string `json:"key_prefix"`
	// BBSAddress is where desired and actual LRPs are read and followed.
	BBSAddress string `json:"bbs_address"`
	// ca_cert, cert, key, insecure: ADS and the read API serve with the
	// certificate (Envoy presents one of the same CA), and the emitter
	// presents it to the BBS.
	tlsutil.Files
	// CellID selects local mode: only this cell's instances, no election
	// (one emitter per cell, beside its Envoy). Empty is global mode.
	CellID string `json:"cell_id"`
	// ElectionTTL bounds how long a dead leader holds the election.
	ElectionTTL config.Duration `json:"election_ttl"`
	// SyncInterval is the period of full syncs.
	SyncInterval config.Duration `json:"sync_interval"`
	// CommunicationTimeout bounds each BBS call.
	CommunicationTimeout config.Duration `json:"communication_timeout"`
	// RegisterDirectInstanceRoutes routes to container addresses and
	// ports for instances that state no preferred address.
	RegisterDirectInstanceRoutes bool `json:"register_direct_instance_routes"`
	// EnvoyHTTPAddress and EnvoyHTTPPort are where Envoy's HTTP listener
	// binds; port 0 serves no HTTP listener.
	EnvoyHTTPAddress string `json:"envoy_http_address"`
	EnvoyHTTPPort    int    `json:"envoy_http_port"`
	// EnvoyTCPAddress is where Envoy's TCP listeners bind, one per
	// tcp-router external port.
	EnvoyTCPAddress string `json:"envoy_tcp_address"`
	// ClusterConnectTimeout bounds Envoy's connection to an instance.
	ClusterConnectTimeout config.Duration `json:"cluster_connect_timeout"`
	// ShutdownTimeout bounds a graceful stop.
	ShutdownTimeout config.Duration `json:"shutdown_timeout"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `json:"log_level"`
}

// DefaultConfig returns the defaults: loopback addresses, Diego's numbers.
func DefaultConfig() Config {
	return Config{
		ListenAddress:         "127.0.0.1:9018",
		DebugAddress:          "127.0.0.1:17021",
		Config:                etcdclient.Default(),
		KeyPrefix:             "/gavel/v1",
		BBSAddress:            "127.0.0.1:8889",
		ElectionTTL:           config.Duration(election.DefaultTTL),
		SyncInterval:          config.Duration(DefaultSyncInterval),
		CommunicationTimeout:  config.Duration(DefaultCommunicationTimeout),
		EnvoyHTTPAddress:      "127.0.0.1",
		EnvoyHTTPPort:         8080,
		EnvoyTCPAddress:       "127.0.0.1",
		ClusterConnectTimeout: config.Duration(DefaultConnectTimeout),
		ShutdownTimeout:       config.Duration(10 * time.Second),
		LogLevel:              "info",
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

// Local reports whether the config selects local (per-cell) mode.
func (c Config) Local() bool { return c.CellID != "" }

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
	if !c.Local() {
		if err := c.Config.Validate(); err != nil {
			return err
		}
	}
	if !strings.HasPrefix(c.KeyPrefix, "/") {
		return fmt.Errorf("key_prefix %q: must start with /", c.KeyPrefix)
	}
	if err := c.Files.Validate(); err != nil {
		return err
	}
	if strings.Contains(c.CellID, "/") {
		return fmt.Errorf("cell_id %q: must not contain /", c.CellID)
	}
	switch {
	case !c.Local() && c.ElectionTTL.D() < time.Second:
		return fmt.Errorf("election_ttl: must be at least 1s")
	case c.SyncInterval.D() < time.Second:
		return fmt.Errorf("sync_interval: must be at least 1s")
	case c.CommunicationTimeout.D() <= 0:
		return fmt.Errorf("communication_timeout: must be positive")
	case c.ClusterConnectTimeout.D() <= 0:
		return fmt.Errorf("cluster_connect_timeout: must be positive")
	case c.EnvoyHTTPPort < 0 || c.EnvoyHTTPPort > 65535:
		return fmt.Errorf("envoy_http_port: %d is not a port", c.EnvoyHTTPPort)
	}
	for _, kv := range [][2]string{{"envoy_http_address", c.EnvoyHTTPAddress}, {"envoy_tcp_address", c.EnvoyTCPAddress}} {
		if net.ParseIP(kv[1]) == nil {
			return fmt.Errorf("%s %q: not an IP address", kv[0], kv[1])
		}
	}
	return config.CheckLogLevel(c.LogLevel)
}

// emitterConfig is the Emitter's share of the config.
func (c Config) emitterConfig() EmitterConfig {
	return EmitterConfig{
		Table: Options{CellID: c.CellID, DirectInstanceRoutes: c.RegisterDirectInstanceRoutes},
		Resources: ResourceOptions{
			HTTPAddress:    c.EnvoyHTTPAddress,
			HTTPPort:       uint32(c.EnvoyHTTPPort),
			TCPAddress:     c.EnvoyTCPAddress,
			ConnectTimeout: c.ClusterConnectTimeout.D(),
		},
		SyncInterval: c.SyncInterval.D(),
		CallTimeout:  c.CommunicationTimeout.D(),
	}
}
