package main

import (
	"context"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/gavel-scheduler/gavel/internal/debugserver"
	routeemitter "github.com/gavel-scheduler/gavel/route-emitter"
)

// routeEmitterFlags binds every route emitter config key to a flag.
func routeEmitterFlags(fs *pflag.FlagSet, cfg *routeemitter.Config) {
	fs.StringVar(&cfg.ListenAddress, "listen-address", cfg.ListenAddress, "ADS (xDS) and read API listen address")
	fs.StringVar(&cfg.AdvertiseAddress, "advertise-address", cfg.AdvertiseAddress, "address published in the election (default: the bound listen address)")
	fs.StringVar(&cfg.DebugAddress, "debug-address", cfg.DebugAddress, "debug server address (/metrics, /debug/pprof, /healthz)")
	cfg.Config.Flags(fs)
	fs.StringVar(&cfg.KeyPrefix, "key-prefix", cfg.KeyPrefix, "etcd key prefix")
	fs.StringVar(&cfg.BBSAddress, "bbs-address", cfg.BBSAddress, "BBS gRPC address")
	cfg.Files.Flags(fs, "served to Envoy, presented to the BBS")
	fs.StringVar(&cfg.CellID, "cell-id", cfg.CellID, "local mode: follow only this cell's instances, no election")
	fs.DurationVar((*time.Duration)(&cfg.ElectionTTL), "election-ttl", cfg.ElectionTTL.D(), "longest a dead leader holds the election (global mode)")
	fs.DurationVar((*time.Duration)(&cfg.SyncInterval), "sync-interval", cfg.SyncInterval.D(), "period of full syncs from the BBS")
	fs.DurationVar((*time.Duration)(&cfg.CommunicationTimeout), "communication-timeout", cfg.CommunicationTimeout.D(), "bound on each BBS call")
	fs.BoolVar(&cfg.RegisterDirectInstanceRoutes, "register-direct-instance-routes", cfg.RegisterDirectInstanceRoutes, "route to container addresses when an instance states no preference")
	fs.StringVar(&cfg.EnvoyHTTPAddress, "envoy-http-address", cfg.EnvoyHTTPAddress, "address Envoy's HTTP listener binds")
	fs.IntVar(&cfg.EnvoyHTTPPort, "envoy-http-port", cfg.EnvoyHTTPPort, "port of Envoy's HTTP listener (0: none)")
	fs.StringVar(&cfg.EnvoyTCPAddress, "envoy-tcp-address", cfg.EnvoyTCPAddress, "address Envoy's TCP listeners bind")
	fs.DurationVar((*time.Duration)(&cfg.ClusterConnectTimeout), "cluster-connect-timeout", cfg.ClusterConnectTimeout.D(), "bound on Envoy's connection to an instance")
	fs.DurationVar((*time.Duration)(&cfg.ShutdownTimeout), "shutdown-timeout", cfg.ShutdownTimeout.D(), "graceful stop limit")
	fs.StringVar(&cfg.LogLevel, "log-level", cfg.LogLevel, "debug, info, warn or error")
}

func routeEmitterCommand() *cobra.Command {
	cfg := routeemitter.DefaultConfig()
	var configPath string
	cmd := &cobra.Command{
		Use:   "route-emitter",
		Short: "Run a route emitter: Envoy ingress over xDS from the BBS",
		Long: `gavel route-emitter turns running LRP instances into Envoy configuration
and serves it over ADS (state-of-the-world and delta): one HTTP listener with a
virtual host per cf-router hostname, a listener per tcp-router external port,
and an EDS cluster per (process guid, container port).

Global mode (the default) runs active/standby through an etcd election and
follows every instance. Local mode (--cell-id) runs beside one cell's Envoy,
follows only that cell's instances and needs no etcd. Either way nothing is
served until the first full sync is done, so a restarted emitter never hands
Envoy an empty configuration.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadWithFlags(cmd, configPath, routeemitter.LoadConfig, routeEmitterFlags)
			if err != nil {
				return err
			}
			if err := cfg.Validate(); err != nil {
				return err
			}
			logger := newLogger(cfg.LogLevel)
			var etcd *clientv3.Client
			var health debugserver.HealthFunc
			if !cfg.Local() {
				if etcd, err = cfg.Config.Dial(context.Background()); err != nil {
					return err
				}
				defer etcd.Close()
				health = etcdHealth(etcd)
			}
			reg := debugserver.NewRegistry()
			return runDaemon("route-emitter", routeemitter.NewProcess(cfg, etcd, reg, logger), cfg.DebugAddress, reg, health, logger)
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "", "YAML or JSON config file")
	routeEmitterFlags(cmd.Flags(), &cfg)
	return cmd
}
