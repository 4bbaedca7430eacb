package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"github.com/tedsuo/ifrit/grouper"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/gavel-scheduler/gavel/auctioneer"
	"github.com/gavel-scheduler/gavel/bbs"
	"github.com/gavel-scheduler/gavel/converger"
	"github.com/gavel-scheduler/gavel/internal/clientconfig"
	"github.com/gavel-scheduler/gavel/internal/config"
	"github.com/gavel-scheduler/gavel/internal/debugserver"
	"github.com/gavel-scheduler/gavel/internal/etcdembed"
	"github.com/gavel-scheduler/gavel/internal/tlsutil"
	"github.com/gavel-scheduler/gavel/rep"
	routeemitter "github.com/gavel-scheduler/gavel/route-emitter"
)

// devOptions are gavel dev's knobs. Everything binds 127.0.0.1.
type devOptions struct {
	dataDir      string
	bbsAddress   string
	auctioneer   string
	routeEmitter string
	gossip       string
	cells        int
	cellMemoryMB int
	repPoll      time.Duration
	destroy      bool
	etcdClient   string
	etcdPeer     string
	debugAddress string
	logLevel     string
}

func devCommand() *cobra.Command {
	o := devOptions{
		bbsAddress:   "127.0.0.1:8889",
		auctioneer:   "127.0.0.1:9016",
		routeEmitter: "127.0.0.1:9018",
		gossip:       "127.0.0.1:7946",
		cells:        2,
		cellMemoryMB: 4096,
		repPoll:      rep.DefaultPollInterval,
		etcdClient:   "http://127.0.0.1:8897",
		etcdPeer:     "http://127.0.0.1:8898",
		debugAddress: "127.0.0.1:17017",
		logLevel:     "info",
	}
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run the whole system in one process: embedded etcd, BBS, auctioneer, converger, route emitter and cells",
		Long: `gavel dev runs an embedded etcd, the BBS, the auctioneer, the converger, the
route emitter (xDS for Envoy; a matching Envoy bootstrap is written into the
data dir) and --cells cells
(each a Garden server on runc with its own depot, bridge network, zone and
host-port range, and a rep) in one process, with mutual TLS set up for you.
Containers run a busybox rootfs built from Debian's busybox-static
(preloaded:busybox). Cells on their own (gavel garden + gavel rep) join the
auctioneer's gossip pool at --gossip-address. On first start it creates a CA and certificates under the data
directory and writes DATA_DIR/client.json, which the gavel CLI reads by default,
so "gavel desired-lrps" works with no flags. Data survives a restart.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runDev(cmd.Context(), o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.dataDir, "data-dir", "", "data directory (default "+clientconfig.DefaultDataDir()+")")
	f.StringVar(&o.bbsAddress, "bbs-address", o.bbsAddress, "BBS gRPC listen address")
	f.StringVar(&o.auctioneer, "auctioneer-address", o.auctioneer, "auctioneer gRPC listen address")
	f.StringVar(&o.routeEmitter, "route-emitter-address", o.routeEmitter, "route emitter (xDS for Envoy) listen address")
	f.StringVar(&o.gossip, "gossip-address", o.gossip, "gossip (memberlist) address cells join")
	f.IntVar(&o.cells, "cells", o.cells, "cells to run (0: none; run them as separate processes)")
	f.IntVar(&o.cellMemoryMB, "cell-memory-mb", o.cellMemoryMB, "memory each cell offers, MB (disk is 4x)")
	f.DurationVar(&o.repPoll, "rep-poll-interval", o.repPoll, "each rep's bulk sync period")
	f.BoolVar(&o.destroy, "destroy-on-exit", o.destroy, "destroy every container when gavel dev stops (default: they keep running and are adopted on the next start)")
	f.StringVar(&o.etcdClient, "etcd-client-url", o.etcdClient, "embedded etcd client URL")
	f.StringVar(&o.etcdPeer, "etcd-peer-url", o.etcdPeer, "embedded etcd peer URL")
	f.StringVar(&o.debugAddress, "debug-address", o.debugAddress, "debug server address")
	f.StringVar(&o.logLevel, "log-level", o.logLevel, "debug, info, warn or error")
	return cmd
}

// devAuctioneerConfig is the auctioneer of gavel dev: loopback, the dev
// certificates, loopback gossip timings.
func devAuctioneerConfig(o devOptions, certs tlsutil.Paths, etcdEndpoints []string) (auctioneer.Config, error) {
	host, port, err := net.SplitHostPort(o.gossip)
	if err != nil {
		return auctioneer.Config{}, fmt.Errorf("--gossip-address %q: %w", o.gossip, err)
	}
	gossipPort, err := strconv.Atoi(port)
	if err != nil {
		return auctioneer.Config{}, fmt.Errorf("--gossip-address %q: bad port", o.gossip)
	}
	ac := certs.Components["auctioneer"]
	cfg := auctioneer.DefaultConfig()
	cfg.ListenAddress = o.auctioneer
	cfg.EtcdEndpoints = etcdEndpoints
	cfg.BBSAddress = o.bbsAddress
	cfg.CACert, cfg.Cert, cfg.Key = certs.CACert, ac.Cert, ac.Key
	cfg.GossipBindAddress, cfg.GossipBindPort, cfg.GossipLocal = host, gossipPort, true
	cfg.DebugAddress = ""
	cfg.LogLevel = o.logLevel
	return cfg, cfg.Validate()
}

// devConvergerConfig is the converger of gavel dev: it joins the gossip
// pool (a cell's death triggers a pass at once) and waits only a second
// after a presence lapses before acting, so a dead cell's instances are
// running elsewhere within the presence TTL plus a few seconds.
func devConvergerConfig(o devOptions, certs tlsutil.Paths, etcdEndpoints []string) (converger.Config, error) {
	cc := certs.Components["converger"]
	cfg := converger.DefaultConfig()
	cfg.EtcdEndpoints, cfg.BBSAddress = etcdEndpoints, o.bbsAddress
	cfg.CACert, cfg.Cert, cfg.Key = certs.CACert, cc.Cert, cc.Key
	cfg.GossipBindPort, cfg.GossipLocal, cfg.GossipJoin = 0, true, []string{o.gossip}
	cfg.CellLossDelay = config.Duration(time.Second)
	cfg.DebugAddress, cfg.LogLevel = "", o.logLevel
	return cfg, cfg.Validate()
}

// devRouteEmitter is the route emitter of gavel dev (global mode) and the
// Envoy bootstrap that points at it, written into the data dir.
func devRouteEmitter(o devOptions, dataDir string, certs tlsutil.Paths, etcdEndpoints []string, etcd *clientv3.Client, reg prometheus.Registerer, logger *slog.Logger) (*routeemitter.Process, string, error) {
	rc := certs.Components["route-emitter"]
	cfg := routeemitter.DefaultConfig()
	cfg.ListenAddress = o.routeEmitter
	cfg.EtcdEndpoints = etcdEndpoints
	cfg.BBSAddress = o.bbsAddress
	cfg.CACert, cfg.Cert, cfg.Key = certs.CACert, rc.Cert, rc.Key
	cfg.DebugAddress = ""
	cfg.LogLevel = o.logLevel
	if err := cfg.Validate(); err != nil {
		return nil, "", err
	}
	cc := certs.Components["client"]
	bootstrap := filepath.Join(dataDir, "envoy", "bootstrap.yaml")
	if err := os.MkdirAll(filepath.Dir(bootstrap), 0o700); err != nil {
		return nil, "", err
	}
	opts := routeemitter.DefaultBootstrapOptions()
	opts.RouteEmitterAddress, opts.CACert, opts.Cert, opts.Key = o.routeEmitter, certs.CACert, cc.Cert, cc.Key
	if err := routeemitter.WriteBootstrap(bootstrap, opts); err != nil {
		return nil, "", fmt.Errorf("envoy bootstrap: %w", err)
	}
	return routeemitter.NewProcess(cfg, etcd, reg, logger), bootstrap, nil
}

// envoyHint says how to start Envoy against gavel dev.
func envoyHint(bootstrap string) string {
	if _, err := exec.LookPath("envoy"); err == nil {
		return "run " + routeemitter.EnvoyCommand(bootstrap)
	}
	return "not installed; with it: " + routeemitter.EnvoyCommand(bootstrap)
}

func runDev(ctx context.Context, o devOptions) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if o.dataDir == "" {
		o.dataDir = clientconfig.DefaultDataDir()
	}
	dataDir, err := filepath.Abs(o.dataDir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	logger := newLogger(o.logLevel).With("process", "gavel-dev")

	certs, err := tlsutil.WriteDir(filepath.Join(dataDir, "certs"), tlsutil.DefaultHosts())
	if err != nil {
		return fmt.Errorf("certificates: %w", err)
	}
	etcd, err := etcdembed.Start(ctx, etcdembed.Config{
		DataDir:   filepath.Join(dataDir, "etcd"),
		ClientURL: o.etcdClient,
		PeerURL:   o.etcdPeer,
		Name:      "gavel-dev",
	})
	if err != nil {
		return fmt.Errorf("embedded etcd: %w", err)
	}
	defer etcd.Close()
	client, err := etcd.Client()
	if err != nil {
		return fmt.Errorf("embedded etcd client: %w", err)
	}
	defer client.Close()

	bbsCert := certs.Components["bbs"]
	cfg := bbs.DefaultConfig()
	cfg.ListenAddress = o.bbsAddress
	cfg.EtcdEndpoints = etcd.Endpoints()
	cfg.CACert, cfg.ServerCert, cfg.ServerKey = certs.CACert, bbsCert.Cert, bbsCert.Key
	cfg.LogLevel = o.logLevel
	if err := cfg.Validate(); err != nil {
		return err
	}
	reg := debugserver.NewRegistry()
	peers, err := bbsPeers(cfg, client)
	if err != nil {
		return err
	}
	bbsRunner := bbs.NewRunner(cfg, client, reg, logger, peers...)

	acfg, err := devAuctioneerConfig(o, certs, etcd.Endpoints())
	if err != nil {
		return err
	}
	auction := auctioneer.NewProcess(acfg, client, reg, logger)
	cells, err := newDevCells(o, dataDir, certs, o.gossip, logger)
	if err != nil {
		return err
	}
	emitter, bootstrap, err := devRouteEmitter(o, dataDir, certs, etcd.Endpoints(), client, reg, logger)
	if err != nil {
		return err
	}
	ccfg, err := devConvergerConfig(o, certs, etcd.Endpoints())
	if err != nil {
		return err
	}

	clientCert := certs.Components["client"]
	clientPath := filepath.Join(dataDir, "client.json")
	if err := clientconfig.Write(clientPath, &clientconfig.Config{
		BBSAddress:          o.bbsAddress,
		RouteEmitterAddress: o.routeEmitter,
		CACert:              certs.CACert,
		ClientCert:          clientCert.Cert,
		ClientKey:           clientCert.Key,
	}); err != nil {
		return fmt.Errorf("write client config: %w", err)
	}
	debug := debugserver.New(debugserver.Config{Address: o.debugAddress}, reg, etcdHealth(client), logger)
	members := grouper.Members{
		{Name: "bbs", Runner: bbsRunner},
		{Name: "auctioneer", Runner: auction},
		{Name: "route-emitter", Runner: emitter},
		{Name: "converger", Runner: converger.NewProcess(ccfg, client, reg, logger)},
	}
	members = append(members, devCellMembers(cells, o.destroy)...)
	members = append(members, grouper.Members{
		{Name: "debug", Runner: debug},
		{Name: "banner", Runner: bannerRunner(func() {
			fmt.Fprintf(os.Stderr, "gavel dev is up\n  BBS:           %s (mutual TLS)\n  auctioneer:    %s (gossip %s)\n  etcd:          %s\n  debug:         http://%s/metrics\n  data dir:      %s\n  client config: %s\n  try:           gavel desired-lrps\n",
				bbsRunner.Addr(), auction.Addr(), auction.GossipAddr(), etcd.Endpoints()[0], debug.Addr(), dataDir, clientPath)
			fmt.Fprintf(os.Stderr, "  route emitter: %s (xDS; envoy: %s)\n", emitter.Addr(), envoyHint(bootstrap))
			for _, c := range cells {
				fmt.Fprintf(os.Stderr, "  %s:        rep %s, garden %s\n", c.id, c.rep.Addr(), c.socket)
			}
		})},
	}...)
	return runGroup(members)
}
