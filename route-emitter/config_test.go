package routeemitter

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The shipped example config loads (no unknown keys) and is valid.
func TestExampleConfigLoads(t *testing.T) {
	cfg, err := LoadConfig("../manifests/config/route-emitter.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.SyncInterval.D() != time.Minute || cfg.Cert != "/etc/gavel/certs/route-emitter.crt" || cfg.EnvoyHTTPPort != 8080 || cfg.Local() {
		t.Fatalf("config %+v", cfg)
	}
}

// Bad values are refused at start-up with the key named.
func TestConfigValidateNamesTheKey(t *testing.T) {
	cases := []struct {
		key string
		mod func(*Config)
	}{
		{"listen_address", func(c *Config) { c.ListenAddress = "nope" }},
		{"bbs_address", func(c *Config) { c.BBSAddress = "" }},
		{"ca_cert", func(c *Config) { c.Insecure, c.CACert = false, "" }},
		{"sync_interval", func(c *Config) { c.SyncInterval = 0 }},
		{"election_ttl", func(c *Config) { c.ElectionTTL = 0 }},
		{"envoy_http_port", func(c *Config) { c.EnvoyHTTPPort = 70000 }},
		{"envoy_tcp_address", func(c *Config) { c.EnvoyTCPAddress = "localhost" }},
		{"cell_id", func(c *Config) { c.CellID = "a/b" }},
		{"log_level", func(c *Config) { c.LogLevel = "loud" }},
		{"etcd_endpoints", func(c *Config) { c.EtcdEndpoints = nil }},
	}
	for _, c := range cases {
		cfg := DefaultConfig()
		cfg.Insecure = true
		c.mod(&cfg)
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), c.key) {
			t.Errorf("%s: got %v", c.key, err)
		}
	}
	// Local mode needs no etcd.
	cfg := DefaultConfig()
	cfg.Insecure, cfg.CellID, cfg.EtcdEndpoints = true, "cell-1", nil
	if err := cfg.Validate(); err != nil {
		t.Errorf("local mode without etcd: %v", err)
	}
	// Unknown keys in a file are refused, naming the key.
	path := filepath.Join(t.TempDir(), "re.yaml")
	if err := os.WriteFile(path, []byte("sync_intervall: 5s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(path); err == nil || !strings.Contains(err.Error(), "sync_intervall") {
		t.Errorf("unknown key: %v", err)
	}
}
