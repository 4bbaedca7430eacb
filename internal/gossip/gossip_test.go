package gossip

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

func cellConfig(id string, join ...string) Config {
	return Config{
		Name: id, Local: true, Join: join, RejoinInterval: 200 * time.Millisecond,
		Meta: Meta{Role: RoleCell, CellID: id, RepAddress: "127.0.0.1:1" + id[len(id)-1:], Zone: "z1"},
	}
}

func join(t *testing.T, cfg Config) *Pool {
	t.Helper()
	p, err := Join(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Shutdown() })
	return p
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func cellIDs(p *Pool) []string {
	var ids []string
	for _, c := range p.Cells() {
		ids = append(ids, c.CellID)
	}
	return ids
}

func TestPoolDiscoversCellsAndLosesDeadOnes(t *testing.T) {
	seed := join(t, Config{Name: "auctioneer-1", Local: true, Meta: Meta{Role: RoleAuctioneer}})
	if !strings.HasPrefix(seed.Addr(), "127.0.0.1:") {
		t.Fatalf("advertises %s, want loopback", seed.Addr())
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	evs := seed.Subscribe(ctx, 16)

	c1 := join(t, cellConfig("cell-1", seed.Addr()))
	c2 := join(t, cellConfig("cell-2", seed.Addr()))
	eventually(t, "both cells in the seed's view", func() bool { return slices.Equal(cellIDs(seed), []string{"cell-1", "cell-2"}) })
	eventually(t, "the cells see each other", func() bool { return len(cellIDs(c1)) == 2 })
	if got := seed.Cells()[1]; got != (Meta{Role: RoleCell, CellID: "cell-2", RepAddress: "127.0.0.1:12", Zone: "z1"}) {
		t.Fatalf("cell-2 announces %+v", got)
	}

	// A crash (no leave message): failure detection drops it.
	if err := c2.Shutdown(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "cell-2 gone from the seed's view", func() bool { return slices.Equal(cellIDs(seed), []string{"cell-1"}) })
	left := false
	for !left {
		select {
		case ev := <-evs:
			left = ev.Kind == NodeLeft && ev.Meta.CellID == "cell-2"
		case <-time.After(10 * time.Second):
			t.Fatal("no leave event for cell-2")
		}
	}

	// A graceful leave is seen at once too.
	if err := c1.Leave(time.Second); err != nil {
		t.Fatal(err)
	}
	eventually(t, "no cells left", func() bool { return len(seed.Cells()) == 0 })
	if err := c1.Leave(time.Second); err == nil {
		t.Fatal("second Leave succeeded")
	}
}

// TestLeaveIsToldDirectly: a leave reaches the pool even when none of its
// gossiped copies does. The leaving node sends no UDP gossip and the seed
// probes nobody, so only the direct notice can drop the node.
func TestLeaveIsToldDirectly(t *testing.T) {
	seedCfg := Config{Name: "auctioneer-1", Local: true, Meta: Meta{Role: RoleAuctioneer}}
	seedCfg.tune = func(c *memberlist.Config) { c.ProbeInterval = time.Hour }
	seed := join(t, seedCfg)
	cellCfg := cellConfig("cell-1", seed.Addr())
	cellCfg.tune = func(c *memberlist.Config) { c.GossipInterval = 0 }
	cell := join(t, cellCfg)
	eventually(t, "cell joined", func() bool { return len(seed.Cells()) == 1 })

	if err := cell.Leave(500 * time.Millisecond); err != nil {
		t.Fatalf("leave: %v", err)
	}
	eventually(t, "cell gone from the seed's view", func() bool { return len(seed.Cells()) == 0 })
}

// TestPoolHealsAfterSeedRestart: a cell whose seed restarted (and so forgot
// it) finds its way back by retrying the seed.
func TestPoolHealsAfterSeedRestart(t *testing.T) {
	seedCfg := Config{Name: "auctioneer-1", Local: true, Meta: Meta{Role: RoleAuctioneer}}
	seed := join(t, seedCfg)
	addr := seed.Addr()
	join(t, cellConfig("cell-1", addr))
	eventually(t, "cell joined", func() bool { return len(seed.Cells()) == 1 })

	if err := seed.Shutdown(); err != nil {
		t.Fatal(err)
	}
	var port int
	if _, err := fmt.Sscanf(addr[strings.LastIndex(addr, ":")+1:], "%d", &port); err != nil {
		t.Fatal(err)
	}
	seedCfg.BindPort = port
	var again *Pool
	eventually(t, "seed restarted on its port", func() bool {
		p, err := Join(seedCfg)
		if err != nil {
			return false
		}
		again = p
		return true
	})
	t.Cleanup(func() { _ = again.Shutdown() })
	eventually(t, "cell back in the restarted seed's view", func() bool { return len(again.Cells()) == 1 })
}

func TestSubscribeEndsWithContext(t *testing.T) {
	p := join(t, Config{Name: "n", Local: true, Meta: Meta{Role: RoleObserver}})
	ctx, cancel := context.WithCancel(context.Background())
	ch := p.Subscribe(ctx, 1)
	cancel()
	eventually(t, "channel closed", func() bool {
		select {
		case _, ok := <-ch:
			return !ok
		default:
			return false
		}
	})
}

func TestConfigValidate(t *testing.T) {
	ok := cellConfig("cell-1")
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"valid", func(*Config) {}, ""},
		{"no name", func(c *Config) { c.Name = "" }, "gossip name"},
		{"no role", func(c *Config) { c.Meta.Role = "" }, "gossip role"},
		{"cell without rep address", func(c *Config) { c.Meta.RepAddress = "" }, "rep address"},
		{"bad port", func(c *Config) { c.BindPort = 70000 }, "bind_port"},
		{"bad bind address", func(c *Config) { c.BindAddress = "localhost" }, "bind_address"},
		{"bad advertise address", func(c *Config) { c.AdvertiseAddress = "x" }, "advertise_address"},
		{"bad key", func(c *Config) { c.SecretKey = []byte("short") }, "secret_key"},
		{"good key", func(c *Config) { c.SecretKey = make([]byte, 32) }, ""},
		{"bad seed", func(c *Config) { c.Join = []string{"127.0.0.1"} }, "gossip join"},
		{"meta too big", func(c *Config) { c.Meta.Zone = strings.Repeat("z", 600) }, "gossip meta"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.mutate(&c)
			err := c.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one naming %q", err, tc.want)
			}
		})
	}
}

func TestEncryptedPoolRefusesStrangers(t *testing.T) {
	key := []byte("0123456789abcdef")
	seed := join(t, Config{Name: "a", Local: true, SecretKey: key, Meta: Meta{Role: RoleAuctioneer}})
	good := cellConfig("cell-1", seed.Addr())
	good.SecretKey = key
	join(t, good)
	eventually(t, "keyed cell joined", func() bool { return len(seed.Cells()) == 1 })
	bad := cellConfig("cell-2")
	bad.SecretKey = []byte("fedcba9876543210")
	stranger := join(t, bad)
	if n, err := stranger.ml.Join([]string{seed.Addr()}); err == nil || n != 0 {
		t.Fatalf("a node with another key joined %d nodes (error %v)", n, err)
	}
	if ids := cellIDs(seed); !slices.Equal(ids, []string{"cell-1"}) {
		t.Fatalf("cells %v: a node with another key got in", ids)
	}
}

func TestKeyFile(t *testing.T) {
	path := t.TempDir() + "/gossip.key"
	created, err := WriteKeyFile(path)
	if err != nil || !created {
		t.Fatalf("first write: %v %v", created, err)
	}
	key, err := ReadKeyFile(path)
	if err != nil || len(key) != 32 {
		t.Fatalf("read: %d bytes, %v", len(key), err)
	}
	created, err = WriteKeyFile(path)
	if err != nil || created {
		t.Fatalf("second write replaced the key: %v %v", created, err)
	}
	again, _ := ReadKeyFile(path)
	if string(again) != string(key) {
		t.Fatal("key changed")
	}
	bad := t.TempDir() + "/bad.key"
	if err := os.WriteFile(bad, []byte("c2hvcnQ=\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadKeyFile(bad); err == nil || !strings.Contains(err.Error(), "want 16, 24 or 32") {
		t.Fatalf("short key: %v", err)
	}
	if _, err := WriteKeyFile(bad); err == nil {
		t.Fatal("a bad existing key file was accepted")
	}
}
