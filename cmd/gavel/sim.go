package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/gavel-scheduler/gavel/auctioneer"
	"github.com/gavel-scheduler/gavel/internal/cli"
	"github.com/gavel-scheduler/gavel/internal/config"
)

func simCommand() *cobra.Command {
	cfg := auctioneer.SimConfig{
		Cells: 100, Zones: 3, Instances: 10000, BatchSize: 1000, Seed: 1,
		Cell: auctioneer.Resources{MemoryMB: 32 * 1024, DiskMB: 64 * 1024, Containers: 250},
	}
	var (
		mix, workload string
		overGRPC      bool
	)
	cmd := &cobra.Command{
		Use:   "sim",
		Short: "Simulate auctions with the real placement engine on simulated cells",
		Long: `gavel sim places a workload on simulated cells with the auctioneer's own
scheduling code, round after round, and reports placements per second, failed
placements by reason, per-cell memory use and per-zone spread.

--mix lists app shapes as INSTANCESxMEMORY_MB[xDISK_MB], comma separated
(default: Diego's experiment mix). Apps are drawn from it until --instances
are desired; --seed makes the run reproducible.

--workload FILE reads the same settings from a JSON or YAML file (keys cells,
zones, cell {memory_mb, disk_mb, containers}, instances, mix [{instances,
memory_mb, disk_mb}], batch, seed); flags given on the command line win.

--grpc runs the real auctioneer end to end instead of the engine alone: one
rep per cell, each a gRPC server on loopback with in-memory containers, all
over mutual TLS; the workload goes in through the auctioneer's gRPC API as
the BBS sends it, and each round fetches every cell's state and commits
through Perform.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if workload != "" {
				if err := loadWorkload(cmd, workload, &cfg); err != nil {
					return err
				}
			}
			if mix != "" || len(cfg.Mix) == 0 {
				var err error
				if cfg.Mix, err = parseMix(mix); err != nil {
					return err
				}
			}
			asJSON, err := cli.WantsJSON(cmd)
			if err != nil {
				return err
			}
			cfg.Progress = func(done, total int) {
				fmt.Fprintf(os.Stderr, "\rplaced %d/%d instances", done, total)
				if done == total {
					fmt.Fprintln(os.Stderr)
				}
			}
			simulate := func(cfg auctioneer.SimConfig) (auctioneer.SimReport, error) { return auctioneer.Simulate(cfg) }
			if overGRPC {
				simulate = func(cfg auctioneer.SimConfig) (auctioneer.SimReport, error) {
					return auctioneer.SimulateGRPC(contextOf(cmd), cfg)
				}
			}
			rep, err := simulate(cfg)
			if err != nil {
				return fmt.Errorf("sim: %w", err)
			}
			if asJSON {
				return json.NewEncoder(os.Stdout).Encode(rep)
			}
			printSimReport(rep)
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&cfg.Cells, "cells", cfg.Cells, "simulated cells")
	f.IntVar(&cfg.Zones, "zones", cfg.Zones, "availability zones (cells are spread across them)")
	f.IntVar(&cfg.Instances, "instances", cfg.Instances, "LRP instances to place")
	f.IntVar(&cfg.BatchSize, "batch", cfg.BatchSize, "instances per auction round (0: one round)")
	f.Int32Var(&cfg.Cell.MemoryMB, "cell-memory", cfg.Cell.MemoryMB, "memory per cell, MB")
	f.Int32Var(&cfg.Cell.DiskMB, "cell-disk", cfg.Cell.DiskMB, "disk per cell, MB")
	f.Int32Var(&cfg.Cell.Containers, "cell-containers", cfg.Cell.Containers, "containers per cell")
	f.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "workload seed")
	f.StringVar(&mix, "mix", "", "app shapes, e.g. 1x128,10x64x256 (INSTANCESxMEMORY[xDISK])")
	f.StringVar(&workload, "workload", "", "JSON or YAML workload file (flags given win over it)")
	f.BoolVar(&overGRPC, "grpc", false, "run the real auctioneer against in-process reps over gRPC")
	return cmd
}

// loadWorkload reads a workload file into cfg, then re-applies the flags
// given on the command line so they win.
func loadWorkload(cmd *cobra.Command, path string, cfg *auctioneer.SimConfig) error {
	fromFile := *cfg
	if err := config.Load(path, &fromFile); err != nil {
		return fmt.Errorf("--workload: %w", err)
	}
	flagged := *cfg
	*cfg = fromFile
	cmd.Flags().Visit(func(f *pflag.Flag) {
		switch f.Name {
		case "cells":
			cfg.Cells = flagged.Cells
		case "zones":
			cfg.Zones = flagged.Zones
		case "instances":
			cfg.Instances = flagged.Instances
		case "batch":
			cfg.BatchSize = flagged.BatchSize
		case "cell-memory":
			cfg.Cell.MemoryMB = flagged.Cell.MemoryMB
		case "cell-disk":
			cfg.Cell.DiskMB = flagged.Cell.DiskMB
		case "cell-containers":
			cfg.Cell.Containers = flagged.Cell.Containers
		case "seed":
			cfg.Seed = flagged.Seed
		}
	})
	return nil
}

func contextOf(cmd *cobra.Command) context.Context {
	if ctx := cmd.Context(); ctx != nil {
		return ctx
	}
	return context.Background()
}

// parseMix reads "INSTANCESxMEMORY[xDISK],..."; empty means the default.
func parseMix(s string) ([]auctioneer.AppShape, error) {
	if s == "" {
		return auctioneer.DefaultMix, nil
	}
	var out []auctioneer.AppShape
	for _, part := range strings.Split(s, ",") {
		fields := strings.Split(strings.TrimSpace(part), "x")
		if len(fields) < 2 || len(fields) > 3 {
			return nil, fmt.Errorf("--mix %q: each shape is INSTANCESxMEMORY_MB[xDISK_MB]", part)
		}
		nums := make([]int, len(fields))
		for i, f := range fields {
			n, err := strconv.Atoi(f)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("--mix %q: %q is not a non-negative number", part, f)
			}
			nums[i] = n
		}
		shape := auctioneer.AppShape{Instances: nums[0], MemoryMB: int32(nums[1]), DiskMB: int32(nums[1])}
		if len(nums) == 3 {
			shape.DiskMB = int32(nums[2])
		}
		out = append(out, shape)
	}
	return out, nil
}

func printSimReport(r auctioneer.SimReport) {
	fmt.Printf("%s: cells %d in %d zones, %d instances in %d rounds\n", r.Mode, r.Cells, r.Zones, r.Instances, r.Rounds)
	fmt.Printf("placed %d, failed %d, lost in commit %d, in %.2fs (%.0f placements/s)\n", r.Placed, r.Failed, r.Lost, r.WallSeconds, r.PlacementsPerSec)
	fmt.Printf("cell memory used: mean %.0f MB, stddev %.0f MB (%.1f points of capacity), max %.0f MB\n",
		r.CellMemoryMeanMB, r.CellMemoryStdDev, r.CellMemoryStdDevPct, r.CellMemoryMaxMB)
	zones := make([]string, 0, len(r.InstancesPerZone))
	for z := range r.InstancesPerZone {
		zones = append(zones, z)
	}
	sort.Strings(zones)
	for _, z := range zones {
		fmt.Printf("zone %s: %d instances\n", z, r.InstancesPerZone[z])
	}
	fmt.Printf("worst per-app zone skew: %d instance(s)\n", r.WorstAppZoneSkew)
	reasons := make([]string, 0, len(r.FailuresByReason))
	for reason := range r.FailuresByReason {
		reasons = append(reasons, reason)
	}
	sort.Strings(reasons)
	for _, reason := range reasons {
		fmt.Printf("failed: %d × %s\n", r.FailuresByReason[reason], reason)
	}
}
