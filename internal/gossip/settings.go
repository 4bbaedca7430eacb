package gossip

import (
	"fmt"
	"log/slog"
	"net"
	"os"

	"github.com/spf13/pflag"
)

// PoolConfig are the gossip keys of a daemon's config (auctioneer,
// converger, rep). Embed it: its keys sit at the top level of the file.
type PoolConfig struct {
	// GossipBindAddress and GossipBindPort are where the node listens
	// (and what it advertises); port 0 lets the kernel choose.
	GossipBindAddress string `json:"gossip_bind_address"`
	GossipBindPort    int    `json:"gossip_bind_port"`
	// GossipJoin lists seeds (host:port).
	GossipJoin []string `json:"gossip_join"`
	// GossipKeyFile holds the base64 key encrypting the pool (gavel certs
	// writes one as gossip.key).
	GossipKeyFile string `json:"gossip_key_file"`
	// GossipLocal uses loopback failure-detection timings (dev, tests).
	GossipLocal bool `json:"gossip_local"`
}

// Validate names the first bad key.
func (s PoolConfig) Validate() error {
	if s.GossipBindPort < 0 || s.GossipBindPort > 65535 {
		return fmt.Errorf("gossip_bind_port: %d is not a port", s.GossipBindPort)
	}
	if net.ParseIP(s.GossipBindAddress) == nil {
		return fmt.Errorf("gossip_bind_address %q: not an IP address", s.GossipBindAddress)
	}
	for _, seed := range s.GossipJoin {
		if _, _, err := net.SplitHostPort(seed); err != nil {
			return fmt.Errorf("gossip_join %q: %w", seed, err)
		}
	}
	if s.GossipKeyFile != "" {
		if _, err := os.Stat(s.GossipKeyFile); err != nil {
			return fmt.Errorf("gossip_key_file: %w", err)
		}
	}
	return nil
}

// Flags binds the keys to flags of the same names.
func (s *PoolConfig) Flags(fs *pflag.FlagSet) {
	fs.StringVar(&s.GossipBindAddress, "gossip-bind-address", s.GossipBindAddress, "memberlist bind (and advertise) address")
	fs.IntVar(&s.GossipBindPort, "gossip-bind-port", s.GossipBindPort, "memberlist port (0: any)")
	fs.StringSliceVar(&s.GossipJoin, "gossip-join", s.GossipJoin, "memberlist seeds (host:port)")
	fs.StringVar(&s.GossipKeyFile, "gossip-key-file", s.GossipKeyFile, "file with the base64 gossip encryption key")
	fs.BoolVar(&s.GossipLocal, "gossip-local", s.GossipLocal, "loopback failure-detection timings")
}

// Node is the Config of a node with these settings (the key file read).
func (s PoolConfig) Node(name string, meta Meta, logger *slog.Logger) (Config, error) {
	c := Config{Name: name, BindAddress: s.GossipBindAddress, BindPort: s.GossipBindPort,
		Join: s.GossipJoin, Local: s.GossipLocal, Meta: meta, Logger: logger}
	if s.GossipKeyFile != "" {
		key, err := ReadKeyFile(s.GossipKeyFile)
		if err != nil {
			return Config{}, err
		}
		c.SecretKey = key
	}
	return c, nil
}
