package gossip

import (
	"strings"
	"testing"
)

func TestPoolConfig(t *testing.T) {
	key := t.TempDir() + "/gossip.key"
	if _, err := WriteKeyFile(key); err != nil {
		t.Fatal(err)
	}
	good := PoolConfig{GossipBindAddress: "127.0.0.1", GossipBindPort: 7946, GossipJoin: []string{"127.0.0.1:7947"}, GossipKeyFile: key, GossipLocal: true}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	node, err := good.Node("n", Meta{Role: RoleObserver}, nil)
	if err != nil || node.Name != "n" || node.BindPort != 7946 || len(node.SecretKey) != 32 || !node.Local || node.Join[0] != "127.0.0.1:7947" {
		t.Fatalf("node %+v %v", node, err)
	}
	for _, tc := range []struct {
		mutate func(*PoolConfig)
		want   string
	}{
		{func(p *PoolConfig) { p.GossipBindPort = -1 }, "gossip_bind_port"},
		{func(p *PoolConfig) { p.GossipBindAddress = "host" }, "gossip_bind_address"},
		{func(p *PoolConfig) { p.GossipJoin = []string{"x"} }, "gossip_join"},
		{func(p *PoolConfig) { p.GossipKeyFile = key + ".missing" }, "gossip_key_file"},
	} {
		p := good
		tc.mutate(&p)
		if err := p.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %v, want %s named", err, tc.want)
		}
	}
	missing := good
	missing.GossipKeyFile = key + ".missing"
	if _, err := missing.Node("n", Meta{Role: RoleObserver}, nil); err == nil {
		t.Fatal("Node read a missing key file")
	}
}
