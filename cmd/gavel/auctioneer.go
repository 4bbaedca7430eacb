package main

import (
	"context"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/gavel-scheduler/gavel/auctioneer"
	"github.com/gavel-scheduler/gavel/internal/debugserver"
)

// auctioneerFlags binds every auctioneer config key to a flag.
func auctioneerFlags(fs *pflag.FlagSet, cfg *auctioneer.Config) {
	fs.StringVar(&cfg.ListenAddress, "listen-address", cfg.ListenAddress, "gRPC listen address")
	fs.StringVar(&cfg.AdvertiseAddress, "advertise-address", cfg.AdvertiseAddress, "address published in the election (default: the bound listen address)")
	fs.StringVar(&cfg.DebugAddress, "debug-address", cfg.DebugAddress, "debug server address (/metrics, /debug/pprof, /healthz)")
	cfg.Config.Flags(fs)
	fs.StringVar(&cfg.KeyPrefix, "key-prefix", cfg.KeyPrefix, "etcd key prefix")
	fs.StringVar(&cfg.BBSAddress, "bbs-address", cfg.BBSAddress, "BBS gRPC address (placement failures are reported there)")
	cfg.Files.Flags(fs, "served, and presented to the BBS and the reps")
	fs.DurationVar((*time.Duration)(&cfg.ElectionTTL), "election-ttl", cfg.ElectionTTL.D(), "longest a dead leader holds the election")
	fs.DurationVar((*time.Duration)(&cfg.CellStateTimeout), "cell-state-timeout", cfg.CellStateTimeout.D(), "bound on each cell's state fetch")
	fs.DurationVar((*time.Duration)(&cfg.CommunicationTimeout), "communication-timeout", cfg.CommunicationTimeout.D(), "bound on each Perform and BBS call")
	fs.IntVar(&cfg.MaxAttempts, "max-attempts", cfg.MaxAttempts, "rounds a cell may refuse work before it is reported failed")
	cfg.PoolConfig.Flags(fs)
	fs.DurationVar((*time.Duration)(&cfg.ShutdownTimeout), "shutdown-timeout", cfg.ShutdownTimeout.D(), "graceful stop limit")
	fs.StringVar(&cfg.LogLevel, "log-level", cfg.LogLevel, "debug, info, warn or error")
}

func auctioneerCommand() *cobra.Command {
	cfg := auctioneer.DefaultConfig()
	var configPath string
	cmd := &cobra.Command{
		Use:   "auctioneer",
		Short: "Run an auctioneer (active/standby through an etcd election)",
		Long: `gavel auctioneer places LRP instances and tasks on cells in batched auctions.
Run two or more: they elect one leader in etcd, the others wait on standby and
one of them takes over within --election-ttl of the leader's death. The BBS
finds the leader through the election. Cells are discovered through the gossip
pool (--gossip-join), never read from the store per auction.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadWithFlags(cmd, configPath, auctioneer.LoadConfig, auctioneerFlags)
			if err != nil {
				return err
			}
			if err := cfg.Validate(); err != nil {
				return err
			}
			logger := newLogger(cfg.LogLevel)
			etcd, err := cfg.Config.Dial(context.Background())
			if err != nil {
				return err
			}
			defer etcd.Close()
			reg := debugserver.NewRegistry()
			return runDaemon("auctioneer", auctioneer.NewProcess(cfg, etcd, reg, logger), cfg.DebugAddress, reg, etcdHealth(etcd), logger)
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "", "YAML or JSON config file")
	auctioneerFlags(cmd.Flags(), &cfg)
	return cmd
}
