package main

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/gavel-scheduler/gavel/executor/garden"
	"github.com/gavel-scheduler/gavel/executor/gardenrunc"
	"github.com/gavel-scheduler/gavel/internal/debugserver"
)

// gardenFlags binds every `gavel garden` config key to a flag.
func gardenFlags(fs *pflag.FlagSet, cfg *gardenrunc.DaemonConfig) {
	fs.StringVar(&cfg.BindSocket, "bind-socket", cfg.BindSocket, "unix socket to serve the Garden API on")
	fs.StringVar(&cfg.BindIP, "bind-ip", cfg.BindIP, "serve the Garden API on TCP at this IP instead of the socket")
	fs.IntVar(&cfg.BindPort, "bind-port", cfg.BindPort, "TCP port with --bind-ip")
	fs.DurationVar((*time.Duration)(&cfg.DefaultGraceTime), "default-grace-time", cfg.DefaultGraceTime.D(), "grace time of containers created without one (0: never reap)")
	fs.StringVar(&cfg.DebugAddress, "debug-address", cfg.DebugAddress, "debug server address (/debug/vars, /metrics, /debug/pprof, /healthz); empty disables it")
	fs.StringVar(&cfg.LogLevel, "log-level", cfg.LogLevel, "debug, info, warn or error")
	fs.StringVar(&cfg.Depot, "depot", cfg.Depot, "directory holding one bundle per container")
	fs.StringVar(&cfg.RuncRoot, "runc-root", cfg.RuncRoot, "runc --root (container state; tmpfs ideally)")
	fs.StringVar(&cfg.RuncBinary, "runc-binary", cfg.RuncBinary, "runc executable")
	fs.StringVar(&cfg.DefaultRootFS, "default-rootfs", cfg.DefaultRootFS, "rootfs directory of containers that name none")
	fs.StringToStringVar(&cfg.Preloaded, "preloaded", cfg.Preloaded, "preloaded:NAME rootfs directories, as NAME=DIR")
	fs.StringVar(&cfg.ImageStore, "image-store", cfg.ImageStore, "OCI layouts for docker:///NAME[:TAG] as DIR/NAME/TAG")
	fs.StringVar(&cfg.NetworkPool, "network-pool", cfg.NetworkPool, "container address pool (IPv4 CIDR)")
	fs.StringVar(&cfg.Tag, "tag", cfg.Tag, "prefix of the bridge, veth and iptables chain names")
	fs.StringVar(&cfg.ExternalIP, "external-ip", cfg.ExternalIP, "address NetIn host ports are reachable on")
	fs.IntVar(&cfg.PortPoolStart, "port-pool-start", cfg.PortPoolStart, "first NetIn host port handed out")
	fs.IntVar(&cfg.PortPoolSize, "port-pool-size", cfg.PortPoolSize, "NetIn host ports handed out")
	fs.IntVar(&cfg.MaxContainers, "max-containers", cfg.MaxContainers, "container limit (0: the pool's size)")
	fs.StringSliceVar(&cfg.DNSServers, "dns-server", cfg.DNSServers, "nameservers for containers (default: the host's, minus loopback)")
	fs.BoolVar(&cfg.AllowHostAccess, "allow-host-access", cfg.AllowHostAccess, "let containers connect to the host")
	fs.StringSliceVar(&cfg.DenyNetworks, "deny-network", cfg.DenyNetworks, "CIDRs containers may reach only through NetOut rules")
	fs.BoolVar(&cfg.AllowPrivileged, "allow-privileged", cfg.AllowPrivileged, "permit privileged containers")
	fs.StringVar(&cfg.CgroupParent, "cgroup-parent", cfg.CgroupParent, "cgroup, under the server's own, holding the containers'")
	fs.StringVar(&cfg.InitBinary, "init-binary", cfg.InitBinary, "static init for containers instead of the built-in garden-init (it must speak garden-init's spawn protocol)")
	fs.IntVar(&cfg.MTU, "mtu", cfg.MTU, "MTU of container interfaces")
	fs.DurationVar((*time.Duration)(&cfg.StopTimeout), "stop-timeout", cfg.StopTimeout.D(), "wait between SIGTERM and SIGKILL in Stop")
	fs.BoolVar(&cfg.DestroyContainersOnStartup, "destroy-containers-on-startup", cfg.DestroyContainersOnStartup, "destroy the depot's containers instead of restoring them")
}

func gardenCommand() *cobra.Command {
	cfg := gardenrunc.DefaultDaemonConfig()
	var (
		configPath string
		teardown   bool
	)
	cmd := &cobra.Command{
		Use:   "garden",
		Short: "Run a Garden server backed by runc",
		Long: "Serves the Garden container API (the protocol of Cloud Foundry's Garden) on a unix socket or TCP,\n" +
			"running containers with runc. Containers survive a restart of the server. Needs root.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadWithFlags(cmd, configPath, gardenrunc.LoadDaemonConfig, gardenFlags)
			if err != nil {
				return err
			}
			if err := cfg.Validate(); err != nil {
				return err
			}
			logger := newLogger(cfg.LogLevel).With("component", "garden")
			backend, err := gardenrunc.New(cfg.Backend(), logger)
			if err != nil {
				return err
			}
			if teardown {
				ctx := cmd.Context()
				if err := backend.Start(ctx); err != nil {
					return err
				}
				return backend.Teardown(ctx)
			}
			reg := debugserver.NewRegistry()
			reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "gavel_garden_containers",
				Help: "Containers on this Garden server, including those being created.",
			}, func() float64 { return float64(backend.Count()) }))
			if err := runDaemon("garden", garden.NewServer(cfg.Server(), backend, logger), cfg.DebugAddress, reg, nil, logger); err != nil {
				return fmt.Errorf("garden: %w", err)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "", "YAML or JSON config file")
	cmd.Flags().BoolVar(&teardown, "teardown", false, "destroy every container, remove the bridge and iptables chains of --tag, and exit (retiring a host)")
	gardenFlags(cmd.Flags(), &cfg)
	return cmd
}
