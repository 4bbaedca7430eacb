package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/gavel-scheduler/gavel/converger"
	"github.com/gavel-scheduler/gavel/internal/cli"
	"github.com/gavel-scheduler/gavel/internal/clientconfig"
	"github.com/gavel-scheduler/gavel/internal/debugserver"
	"github.com/gavel-scheduler/gavel/proto/models"
)

// convergerFlags binds every converger config key to a flag.
func convergerFlags(fs *pflag.FlagSet, cfg *converger.Config) {
	fs.StringVar(&cfg.Name, "name", cfg.Name, "name in the election and in the saved state (default: host name and pid)")
	fs.StringVar(&cfg.DebugAddress, "debug-address", cfg.DebugAddress, "debug server address (/metrics, /debug/pprof, /healthz)")
	cfg.Config.Flags(fs)
	fs.StringVar(&cfg.KeyPrefix, "key-prefix", cfg.KeyPrefix, "etcd key prefix")
	fs.StringVar(&cfg.BBSAddress, "bbs-address", cfg.BBSAddress, "BBS gRPC address")
	cfg.Files.Flags(fs, "presented to the BBS, the auctioneer and the reps")
	fs.DurationVar((*time.Duration)(&cfg.ElectionTTL), "election-ttl", cfg.ElectionTTL.D(), "longest a dead leader holds the election")
	fs.DurationVar((*time.Duration)(&cfg.ConvergenceInterval), "convergence-interval", cfg.ConvergenceInterval.D(), "time between passes")
	fs.DurationVar((*time.Duration)(&cfg.CellLossDelay), "cell-loss-delay", cfg.CellLossDelay.D(), "wait after a cell disappears before the pass, so cells lost together are seen together")
	fs.DurationVar((*time.Duration)(&cfg.CommunicationTimeout), "communication-timeout", cfg.CommunicationTimeout.D(), "bound on one pass")
	fs.Float64Var(&cfg.GuardThreshold, "guard-threshold", cfg.GuardThreshold, "share of cells vanishing inside --guard-window that raises the mass-failure guard")
	fs.DurationVar((*time.Duration)(&cfg.GuardWindow), "guard-window", cfg.GuardWindow.D(), "window (one presence TTL) inside which lost cells count together")
	fs.DurationVar((*time.Duration)(&cfg.KickTaskDuration), "kick-task-duration", cfg.KickTaskDuration.D(), "completed tasks' callbacks are re-sent, and resolving tasks demoted, after this")
	fs.DurationVar((*time.Duration)(&cfg.ExpirePendingTaskDuration), "expire-pending-task-duration", cfg.ExpirePendingTaskDuration.D(), "pending tasks fail after this")
	fs.DurationVar((*time.Duration)(&cfg.ExpireCompletedTaskDuration), "expire-completed-task-duration", cfg.ExpireCompletedTaskDuration.D(), "completed tasks are deleted after this")
	cfg.PoolConfig.Flags(fs)
	fs.StringVar(&cfg.LogLevel, "log-level", cfg.LogLevel, "debug, info, warn or error")
}

func convergerCommand() *cobra.Command {
	cfg := converger.DefaultConfig()
	var configPath string
	cmd := &cobra.Command{
		Use:   "converger",
		Short: "Run a converger (active/standby through an etcd election)",
		Long: `gavel converger repairs drift between desired and actual state: missing and
extra instances, crashed instances due for a restart, instances on lost cells,
stuck auctions and tasks. Run two or more: they elect one leader in etcd, the
others wait on standby. The leader runs a pass every --convergence-interval, and
soon after a cell's presence disappears from etcd or gossip reports a cell dead.

When more than --guard-threshold of the cells vanish inside one --guard-window,
the converger replaces nothing for them until they return or an operator runs
"gavel converge --confirm-cell-loss".`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadWithFlags(cmd, configPath, converger.LoadConfig, convergerFlags)
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
			return runDaemon("converger", converger.NewProcess(cfg, etcd, reg, logger), cfg.DebugAddress, reg, etcdHealth(etcd), logger)
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "", "YAML or JSON config file")
	convergerFlags(cmd.Flags(), &cfg)
	return cmd
}

func convergeCommand() *cobra.Command {
	var (
		dryRun, confirm bool
		cells           []string
	)
	cmd := &cobra.Command{
		Use:   "converge (--dry-run | --confirm-cell-loss [--cells ID,...])",
		Short: "Show the converger's next pass, or confirm a cell loss its guard holds",
		Long: `gavel converge --dry-run reads what the converger's next pass reads (through the
BBS named by the client config) and prints the plan it would run: what it saw,
then every repair in the order the pass makes it. Nothing is changed.

gavel converge --confirm-cell-loss tells the converger that the cells its
mass-failure guard holds are really gone (all of them, or those named with
--cells); the leader replaces their instances and fails their tasks at its
next pass.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dryRun == confirm {
				return fmt.Errorf("give exactly one of --dry-run and --confirm-cell-loss")
			}
			if len(cells) > 0 && !confirm {
				return fmt.Errorf("--cells goes with --confirm-cell-loss")
			}
			asJSON, err := cli.WantsJSON(cmd)
			if err != nil {
				return err
			}
			timeout := 30 * time.Second
			if f := cmd.Flag("timeout"); f != nil {
				if timeout, err = time.ParseDuration(f.Value.String()); err != nil || timeout <= 0 {
					return fmt.Errorf("--timeout %s: must be a positive duration", f.Value.String())
				}
			}
			var path string
			if f := cmd.Flag("config"); f != nil {
				path = f.Value.String()
			}
			ctx, cancel := context.WithTimeout(contextOf(cmd), timeout)
			defer cancel()
			ccfg, cpath, err := clientconfig.Resolve(path)
			if err != nil {
				return err
			}
			conn, err := ccfg.Dial(ctx)
			if err != nil {
				return fmt.Errorf("client config %s: %w", cpath, err)
			}
			defer conn.Close()
			bbs := models.NewBBSClient(conn)
			if confirm {
				return confirmCellLoss(ctx, bbs, cells, asJSON)
			}
			return dryRunPass(ctx, bbs, asJSON)
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the plan of the next pass and change nothing")
	cmd.Flags().BoolVar(&confirm, "confirm-cell-loss", false, "let the converger act on the cells its guard holds")
	cmd.Flags().StringSliceVar(&cells, "cells", nil, "cells to confirm (default: every held cell)")
	return cmd
}

// dryRunPass plans the next pass as the leader would: from the same
// snapshot, with the settings and memory the leader saved.
func dryRunPass(ctx context.Context, bbs models.BBSClient, asJSON bool) error {
	s, err := (&converger.Converger{BBS: bbs}).Snapshot(ctx)
	if err != nil {
		return err
	}
	p := converger.Calculate(s, converger.SettingsFrom(s.State.GetSettings()))
	if asJSON {
		return p.WriteJSON(os.Stdout)
	}
	return p.WriteTable(os.Stdout)
}

func confirmCellLoss(ctx context.Context, bbs models.BBSClient, cells []string, asJSON bool) error {
	resp, err := bbs.ConfirmCellLoss(ctx, &models.ConfirmCellLossRequest{CellIds: cells})
	if err != nil {
		return fmt.Errorf("confirm cell loss: %w", models.FromStatus(err))
	}
	if asJSON {
		b, err := models.MarshalJSON(resp.Confirmation)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(os.Stdout, "%s\n", b)
		return err
	}
	fmt.Printf("confirmed the loss of %s: the converger replaces their instances at its next pass\n", strings.Join(resp.Confirmation.CellIds, ", "))
	return nil
}
