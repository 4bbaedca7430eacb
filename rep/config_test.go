package rep

import (
	"strings"
	"testing"

	"github.com/gavel-scheduler/gavel/internal/config"
)

func TestExampleConfigLoads(t *testing.T) {
	cfg, err := LoadConfig("../manifests/config/rep.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	info := cfg.Info()
	if info.CellID != "cell-1" || len(info.RootFSProviders) != 1 || info.RootFSProviders[0].Properties[0] != "busybox" {
		t.Fatalf("info %+v", info)
	}
}

func TestConfigValidate(t *testing.T) {
	good := DefaultConfig()
	good.CellID, good.Insecure = "cell-1", true
	tests := []struct {
		mutate func(*Config)
		want   string
	}{
		{func(*Config) {}, ""},
		{func(c *Config) { c.CellID = "" }, "cell_id"},
		{func(c *Config) { c.CellID = "cell/1" }, "cell_id"},
		{func(c *Config) { c.ListenAddress = "x" }, "listen_address"},
		{func(c *Config) { c.AdvertiseAddress = "x" }, "advertise_address"},
		{func(c *Config) { c.Insecure = false }, "required unless insecure"},
		{func(c *Config) { c.GardenNetwork = "udp" }, "garden_network"},
		{func(c *Config) { c.GardenAddress = "" }, "garden_address"},
		{func(c *Config) { c.MemoryMB = -1 }, "memory_mb"},
		{func(c *Config) { c.MaxContainers = 0 }, "max_containers"},
		{func(c *Config) { c.PreloadedRootFSes = nil }, "rootfs"},
		{func(c *Config) { c.CacheDir = "" }, "cache_dir"},
		{func(c *Config) { c.PollInterval = 0 }, "poll_interval"},
		{func(c *Config) { c.EvacuationTimeout = 0 }, "evacuation_timeout"},
		{func(c *Config) { c.PresenceTTL = config.Duration(10) }, "presence_ttl"},
		{func(c *Config) { c.GossipBindPort = 70000 }, "gossip_bind_port"},
		{func(c *Config) { c.GossipJoin = []string{"nope"} }, "gossip_join"},
		{func(c *Config) { c.LogLevel = "chatty" }, "log_level"},
	}
	for _, tc := range tests {
		c := good
		tc.mutate(&c)
		err := c.Validate()
		if tc.want == "" {
			if err != nil {
				t.Errorf("valid config refused: %v", err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %v, want one naming %q", err, tc.want)
		}
	}
}
