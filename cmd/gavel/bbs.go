package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/tedsuo/ifrit"
	"github.com/tedsuo/ifrit/grouper"
	"github.com/tedsuo/ifrit/sigmon"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/gavel-scheduler/gavel/auctioneer"
	"github.com/gavel-scheduler/gavel/bbs"
	"github.com/gavel-scheduler/gavel/internal/debugserver"
	"github.com/gavel-scheduler/gavel/internal/tlsutil"
	"github.com/gavel-scheduler/gavel/rep"
)

// bbsFlags binds every BBS config key to a flag; a flag given on the command
// line overrides the config file.
func bbsFlags(fs *pflag.FlagSet, cfg *bbs.Config) {
	fs.StringVar(&cfg.ListenAddress, "listen-address", cfg.ListenAddress, "gRPC listen address")
	fs.StringVar(&cfg.DebugAddress, "debug-address", cfg.DebugAddress, "debug server address (/metrics, /debug/pprof, /healthz)")
	cfg.Config.Flags(fs)
	fs.StringVar(&cfg.KeyPrefix, "key-prefix", cfg.KeyPrefix, "etcd key prefix")
	fs.StringVar(&cfg.CACert, "ca-cert", cfg.CACert, "CA certificate clients must be signed by")
	fs.StringVar(&cfg.ServerCert, "server-cert", cfg.ServerCert, "server certificate")
	fs.StringVar(&cfg.ServerKey, "server-key", cfg.ServerKey, "server key")
	fs.BoolVar(&cfg.Insecure, "insecure", cfg.Insecure, "serve plaintext gRPC (no TLS, no client authentication)")
	fs.Int32Var(&cfg.MaxTaskRetries, "max-task-retries", cfg.MaxTaskRetries, "rejections a task survives")
	fs.IntVar(&cfg.CallbackAttempts, "callback-attempts", cfg.CallbackAttempts, "task completion callback attempts")
	fs.DurationVar((*time.Duration)(&cfg.ShutdownTimeout), "shutdown-timeout", cfg.ShutdownTimeout.D(), "graceful stop limit")
	fs.StringVar(&cfg.LogLevel, "log-level", cfg.LogLevel, "debug, info, warn or error")
}

// loadWithFlags reads the config file, then re-applies the flags the user
// set so they win over the file.
func loadWithFlags[T any](cmd *cobra.Command, path string, load func(string) (T, error), bind func(*pflag.FlagSet, *T)) (T, error) {
	cfg, err := load(path)
	if err != nil {
		return cfg, err
	}
	fs := pflag.NewFlagSet("overrides", pflag.ContinueOnError)
	bind(fs, &cfg)
	var ferr error
	cmd.Flags().Visit(func(f *pflag.Flag) {
		target := fs.Lookup(f.Name)
		if target == nil {
			return
		}
		var err error
		// A slice flag prints as "[a,b]": copy its elements instead; a
		// map flag prints as "[k=v,...]": set it from what is inside.
		switch from := f.Value.(type) {
		case pflag.SliceValue:
			err = target.Value.(pflag.SliceValue).Replace(from.GetSlice())
		default:
			v := f.Value.String()
			if f.Value.Type() == "stringToString" {
				v = strings.TrimSuffix(strings.TrimPrefix(v, "["), "]")
			}
			err = target.Value.Set(v)
		}
		if err != nil && ferr == nil {
			ferr = fmt.Errorf("--%s: %w", f.Name, err)
		}
	})
	return cfg, ferr
}

func bbsCommand() *cobra.Command {
	cfg := bbs.DefaultConfig()
	var configPath string
	cmd := &cobra.Command{
		Use:   "bbs",
		Short: "Run a BBS API server over etcd",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadWithFlags(cmd, configPath, bbs.LoadConfig, bbsFlags)
			if err != nil {
				return err
			}
			if err := cfg.Validate(); err != nil {
				return err
			}
			logger := newLogger(cfg.LogLevel)
			etcd, err := bbs.DialEtcd(context.Background(), cfg)
			if err != nil {
				return err
			}
			defer etcd.Close()
			reg := debugserver.NewRegistry()
			peers, err := bbsPeers(cfg, etcd)
			if err != nil {
				return err
			}
			return runDaemon("bbs", bbs.NewRunner(cfg, etcd, reg, logger, peers...), cfg.DebugAddress, reg, etcdHealth(etcd), logger)
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "", "YAML or JSON config file")
	bbsFlags(cmd.Flags(), &cfg)
	return cmd
}

// bbsPeers connects the BBS to the elected auctioneer and to the reps,
// presenting the BBS's own certificate.
func bbsPeers(cfg bbs.Config, etcd *clientv3.Client) ([]bbs.RunnerOption, error) {
	var clientTLS *tls.Config
	if !cfg.Insecure {
		var err error
		if clientTLS, err = tlsutil.ClientConfig(cfg.CACert, cfg.ServerCert, cfg.ServerKey, ""); err != nil {
			return nil, fmt.Errorf("bbs client tls: %w", err)
		}
	}
	return []bbs.RunnerOption{
		bbs.WithAuctioneer(auctioneer.NewClient(etcd, auctioneer.ElectionKey(cfg.KeyPrefix), clientTLS)),
		bbs.WithCells(rep.NewClient(clientTLS)),
	}, nil
}

// etcdHealth reports the BBS unhealthy while it cannot read from etcd.
func etcdHealth(c *clientv3.Client) debugserver.HealthFunc {
	return func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if _, err := c.Get(ctx, "/gavel-health", clientv3.WithCountOnly()); err != nil {
			return fmt.Errorf("etcd: %w", err)
		}
		return nil
	}
}

// runDaemon runs a daemon's runner, and its debug server beside it when
// debugAddress is set, until SIGINT/SIGTERM.
func runDaemon(name string, runner ifrit.Runner, debugAddress string, reg *prometheus.Registry, health debugserver.HealthFunc, logger *slog.Logger) error {
	members := grouper.Members{{Name: name, Runner: runner}}
	if debugAddress != "" {
		members = append(members, grouper.Member{Name: "debug", Runner: debugserver.New(debugserver.Config{Address: debugAddress}, reg, health, logger)})
	}
	return runGroup(members)
}

// runGroup runs members in order until SIGINT/SIGTERM, stopping them in
// reverse order.
func runGroup(members grouper.Members) error {
	group := grouper.NewOrdered(os.Interrupt, members)
	proc := ifrit.Invoke(sigmon.New(group))
	err := <-proc.Wait()
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
