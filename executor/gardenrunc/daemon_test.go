package gardenrunc

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDaemonConfig(t *testing.T) {
	def := DefaultDaemonConfig()
	if err := def.Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	if s := def.Server(); s.Network != "unix" || s.Address != DefaultBindSocket {
		t.Fatalf("default server %+v", s)
	}
	tcp := def
	tcp.BindIP, tcp.BindPort = "127.0.0.1", 7777
	if s := tcp.Server(); s.Network != "tcp" || s.Address != "127.0.0.1:7777" {
		t.Fatalf("tcp server %+v", s)
	}
	tests := []struct {
		name    string
		mutate  func(*DaemonConfig)
		wantErr string
	}{
		{"no listener", func(c *DaemonConfig) { c.BindSocket = "" }, "bind_socket"},
		{"relative socket", func(c *DaemonConfig) { c.BindSocket = "garden.sock" }, "bind_socket"},
		{"bad ip", func(c *DaemonConfig) { c.BindIP = "localhost" }, "bind_ip"},
		{"bad port", func(c *DaemonConfig) { c.BindIP, c.BindPort = "127.0.0.1", 70000 }, "bind_port"},
		{"bad debug", func(c *DaemonConfig) { c.DebugAddress = "nope" }, "debug_address"},
		{"negative grace", func(c *DaemonConfig) { c.DefaultGraceTime = -1 }, "default_grace_time"},
		{"relative depot", func(c *DaemonConfig) { c.Depot = "depot" }, "depot"},
		{"bad pool", func(c *DaemonConfig) { c.NetworkPool = "10.0.0.0/30" }, "network-pool"},
		{"v6 pool", func(c *DaemonConfig) { c.NetworkPool = "fd00::/64" }, "network-pool"},
		{"bad tag", func(c *DaemonConfig) { c.Tag = "Toolong" }, "tag"},
		{"bad external ip", func(c *DaemonConfig) { c.ExternalIP = "x" }, "external-ip"},
		{"bad ports", func(c *DaemonConfig) { c.PortPoolStart = 65000; c.PortPoolSize = 1000 }, "port pool"},
		{"bad dns", func(c *DaemonConfig) { c.DNSServers = []string{"dns"} }, "dns-server"},
		{"bad deny", func(c *DaemonConfig) { c.DenyNetworks = []string{"10.0.0.0"} }, "deny-network"},
		{"bad mtu", func(c *DaemonConfig) { c.MTU = 100 }, "mtu"},
		{"relative preloaded", func(c *DaemonConfig) { c.Preloaded = map[string]string{"x": "rel"} }, "preloaded"},
		{"missing runc", func(c *DaemonConfig) { c.RuncBinary = "/nonexistent/runc" }, "runc-binary"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultDaemonConfig()
			tt.mutate(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate() = %v, want an error naming %q", err, tt.wantErr)
			}
		})
	}
}

func TestLoadDaemonConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "garden.yaml")
	os.WriteFile(path, []byte("bind_ip: 127.0.0.1\nbind_port: 7777\ndefault_grace_time: 5m\nstop_timeout: 3s\npreloaded: {cflinuxfs: /var/lib/rootfs}\n"), 0o600)
	c, err := LoadDaemonConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.BindPort != 7777 || time.Duration(c.DefaultGraceTime) != 5*time.Minute || c.Backend().StopTimeout != 3*time.Second || c.Backend().Preloaded["cflinuxfs"] != "/var/lib/rootfs" || c.Depot != DefaultDepot {
		t.Fatalf("loaded %+v", c)
	}
	os.WriteFile(path, []byte("bind_prot: 1\n"), 0o600)
	if _, err := LoadDaemonConfig(path); err == nil {
		t.Fatal("unknown key accepted")
	}
}
