package main

import (
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/gavel-scheduler/gavel/internal/debugserver"
	"github.com/gavel-scheduler/gavel/rep"
)

// repFlags binds every rep config key to a flag.
func repFlags(fs *pflag.FlagSet, cfg *rep.Config) {
	fs.StringVar(&cfg.CellID, "cell-id", cfg.CellID, "the cell's id (unique in the deployment)")
	fs.StringVar(&cfg.Zone, "zone", cfg.Zone, "the cell's availability zone")
	fs.StringVar(&cfg.ListenAddress, "listen-address", cfg.ListenAddress, "rep API listen address")
	fs.StringVar(&cfg.AdvertiseAddress, "advertise-address", cfg.AdvertiseAddress, "address the cell announces (default: the bound listen address)")
	fs.StringVar(&cfg.DebugAddress, "debug-address", cfg.DebugAddress, "debug server address (/metrics, /debug/pprof, /healthz)")
	fs.StringVar(&cfg.BBSAddress, "bbs-address", cfg.BBSAddress, "BBS gRPC address")
	cfg.Files.Flags(fs, "served, and presented to the BBS")
	fs.StringVar(&cfg.GardenNetwork, "garden-network", cfg.GardenNetwork, "unix or tcp")
	fs.StringVar(&cfg.GardenAddress, "garden-address", cfg.GardenAddress, "Garden server socket path or host:port")
	fs.IntVar(&cfg.MemoryMB, "memory-mb", cfg.MemoryMB, "memory offered to work, MB (0: what Garden reports)")
	fs.IntVar(&cfg.DiskMB, "disk-mb", cfg.DiskMB, "disk offered to work, MB (0: what Garden reports)")
	fs.IntVar(&cfg.MaxContainers, "max-containers", cfg.MaxContainers, "container slots")
	fs.StringSliceVar(&cfg.PreloadedRootFSes, "preloaded-rootfses", cfg.PreloadedRootFSes, "stacks the cell runs (rootfs preloaded:NAME)")
	fs.StringSliceVar(&cfg.RootFSProviders, "rootfs-providers", cfg.RootFSProviders, "other rootfs schemes the cell runs any image of")
	fs.StringSliceVar(&cfg.PlacementTags, "placement-tags", cfg.PlacementTags, "tags all work placed here must ask for")
	fs.StringSliceVar(&cfg.OptionalPlacementTags, "optional-placement-tags", cfg.OptionalPlacementTags, "tags work placed here may ask for")
	fs.StringVar(&cfg.CacheDir, "cache-dir", cfg.CacheDir, "download cache directory")
	fs.DurationVar((*time.Duration)(&cfg.PollInterval), "poll-interval", cfg.PollInterval.D(), "bulk sync period")
	fs.DurationVar((*time.Duration)(&cfg.EvacuationPollInterval), "evacuation-poll-interval", cfg.EvacuationPollInterval.D(), "bulk sync period while evacuating")
	fs.DurationVar((*time.Duration)(&cfg.EvacuationTimeout), "evacuation-timeout", cfg.EvacuationTimeout.D(), "bound on an evacuation")
	fs.DurationVar((*time.Duration)(&cfg.PresenceTTL), "presence-ttl", cfg.PresenceTTL.D(), "lease of the cell's presence in etcd")
	cfg.PoolConfig.Flags(fs)
	fs.DurationVar((*time.Duration)(&cfg.ShutdownTimeout), "shutdown-timeout", cfg.ShutdownTimeout.D(), "graceful stop limit")
	fs.StringVar(&cfg.LogLevel, "log-level", cfg.LogLevel, "debug, info, warn or error")
}

func repCommand() *cobra.Command {
	cfg := rep.DefaultConfig()
	var configPath string
	cmd := &cobra.Command{
		Use:   "rep",
		Short: "Run a cell's rep: its containers (through a Garden server) reconciled with the BBS",
		Long: `gavel rep runs one cell. It answers the auctioneer (State, Perform), runs the
work it wins in containers of its Garden server (--garden-address), keeps the
BBS up to date (claim, start, crash, complete) and reconciles both every
--poll-interval. Containers outlive the rep: a restarted rep adopts them.

SIGUSR2 (or gavel evacuate CELL_ID) evacuates the cell: it leaves the auction
pool at once and keeps each running instance until its replacement runs
elsewhere. SIGTERM stops the rep and leaves the containers running.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadWithFlags(cmd, configPath, rep.LoadConfig, repFlags)
			if err != nil {
				return err
			}
			if err := cfg.Validate(); err != nil {
				return err
			}
			logger := newLogger(cfg.LogLevel)
			reg := debugserver.NewRegistry()
			proc := rep.NewProcess(cfg, reg, logger)
			usr2 := make(chan os.Signal, 1)
			signal.Notify(usr2, syscall.SIGUSR2)
			defer signal.Stop(usr2)
			go func() {
				for range usr2 {
					if !proc.Evacuate() {
						logger.Warn("SIGUSR2 before the rep was ready; send it again")
					}
				}
			}()
			return runDaemon("rep", proc, cfg.DebugAddress, reg, nil, logger)
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "", "YAML or JSON config file")
	repFlags(cmd.Flags(), &cfg)
	return cmd
}
