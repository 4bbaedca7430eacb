package converger

import (
	"strings"
	"testing"
	"time"

	"github.com/gavel-scheduler/gavel/internal/config"
)

// The shipped example config loads (no unknown keys) and is valid.
func TestExampleConfigLoads(t *testing.T) {
	cfg, err := LoadConfig("../manifests/config/converger.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.ConvergenceInterval.D() != 30*time.Second || cfg.GuardThreshold != 0.5 || cfg.ExpireCompletedTaskDuration.D() != 2*time.Minute ||
		cfg.Cert != "/etc/gavel/certs/converger.crt" {
		t.Fatalf("config %+v", cfg)
	}
	if s := cfg.Settings(); s != DefaultSettings() {
		t.Fatalf("the example's settings %+v differ from the defaults %+v", s, DefaultSettings())
	}
}

func TestConfigValidateNamesTheKey(t *testing.T) {
	cases := []struct {
		key    string
		mutate func(*Config)
	}{
		{"bbs_address", func(c *Config) { c.BBSAddress = "nowhere" }},
		{"key_prefix", func(c *Config) { c.KeyPrefix = "gavel" }},
		{"ca_cert", func(c *Config) { c.CACert = "" }},
		{"convergence_interval", func(c *Config) { c.ConvergenceInterval = 0 }},
		{"cell_loss_delay", func(c *Config) { c.CellLossDelay = -1 }},
		{"guard_threshold", func(c *Config) { c.GuardThreshold = 0 }},
		{"guard_threshold", func(c *Config) { c.GuardThreshold = 1.5 }},
		{"guard_window", func(c *Config) { c.GuardWindow = 0 }},
		{"election_ttl", func(c *Config) { c.ElectionTTL = config.Duration(time.Millisecond) }},
		{"kick_task_duration", func(c *Config) { c.KickTaskDuration = 0 }},
		{"gossip_bind_address", func(c *Config) { c.GossipBindAddress = "localhost" }},
		{"gossip_join", func(c *Config) { c.GossipJoin = []string{"nohost"} }},
		{"log_level", func(c *Config) { c.LogLevel = "loud" }},
	}
	for _, tc := range cases {
		cfg, err := LoadConfig("../manifests/config/converger.yaml")
		if err != nil {
			t.Fatal(err)
		}
		tc.mutate(&cfg)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("%s: got %v", tc.key, err)
		}
	}
}
