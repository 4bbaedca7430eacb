package bbs

import (
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/gavel-scheduler/gavel/internal/config"
	"github.com/gavel-scheduler/gavel/internal/etcdclient"
)

// Config is the BBS daemon's configuration. Every key can come from a YAML
// or JSON file and be overridden by a flag of the same name.
type Config struct {
	// ListenAddress is where the gRPC API listens.
	ListenAddress string `json:"listen_address"`
	// DebugAddress serves /metrics, /debug/pprof and /healthz.
	DebugAddress string `json:"debug_address"`
	// etcd_endpoints, etcd_ca_cert, etcd_client_cert, etcd_client_key.
	etcdclient.Config
	// KeyPrefix is the etcd key prefix of this gavel installation.
	KeyPrefix string `json:"key_prefix"`
	// CACert, ServerCert and ServerKey are the mutual TLS material of the API.
	CACert     string `json:"ca_cert"`
	ServerCert string `json:"server_cert"`
	ServerKey  string `json:"server_key"`
	// Insecure serves plaintext gRPC. Only for experiments: anyone who can
	// reach the port can change state.
	Insecure bool `json:"insecure"`
	// MaxTaskRetries is how many rejections a task survives.
	MaxTaskRetries int32 `json:"max_task_retries"`
	// CallbackAttempts bounds task completion callback retries.
	CallbackAttempts int `json:"callback_attempts"`
	// ShutdownTimeout bounds a graceful stop.
	ShutdownTimeout config.Duration `json:"shutdown_timeout"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `json:"log_level"`
}

// DefaultConfig returns the defaults: loopback addresses, Diego's numbers.
func DefaultConfig() Config {
	return Config{
		ListenAddress:    "127.0.0.1:8889",
		DebugAddress:     "127.0.0.1:17017",
		Config:           etcdclient.Default(),
		KeyPrefix:        "/gavel/v1",
		MaxTaskRetries:   3,
		CallbackAttempts: 10,
		ShutdownTimeout:  config.Duration(10 * time.Second),
		LogLevel:         "info",
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
	if _, _, err := net.SplitHostPort(c.ListenAddress); err != nil {
		return fmt.Errorf("listen_address %q: %w", c.ListenAddress, err)
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
		for key, v := range map[string]string{"ca_cert": c.CACert, "server_cert": c.ServerCert, "server_key": c.ServerKey} {
			if v == "" {
				return fmt.Errorf("%s: required unless insecure is set", key)
			}
		}
	}
	if c.MaxTaskRetries < 0 {
		return fmt.Errorf("max_task_retries: must be ≥ 0")
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log_level %q: must be debug, info, warn or error", c.LogLevel)
	}
	return nil
}
