package auctioneer

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

func TestSimulateSpreadsEvenly(t *testing.T) {
	rep, err := Simulate(SimConfig{Cells: 30, Zones: 3, Cell: Resources{MemoryMB: 32 * 1024, DiskMB: 64 * 1024, Containers: 250},
		Instances: 3000, Mix: DefaultMix, BatchSize: 500, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Placed != 3000 || rep.Failed != 0 || rep.Rounds != 6 {
		t.Fatalf("report %+v", rep)
	}
	if rep.WorstAppZoneSkew > 1 {
		t.Fatalf("an app is skewed by %d instances across zones", rep.WorstAppZoneSkew)
	}
	// Memory stays balanced: no cell more than 25 % above the mean.
	if rep.CellMemoryMaxMB > 1.25*rep.CellMemoryMeanMB {
		t.Fatalf("max %.0f MB vs mean %.0f MB", rep.CellMemoryMaxMB, rep.CellMemoryMeanMB)
	}
}

func TestSimulateReportsFailuresByReason(t *testing.T) {
	rep, err := Simulate(SimConfig{Cells: 2, Zones: 1, Cell: Resources{MemoryMB: 1024, DiskMB: 1 << 20, Containers: 1000},
		Instances: 100, Mix: []AppShape{{Instances: 5, MemoryMB: 64}}, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Placed != 32 || rep.Failed != 68 {
		t.Fatalf("placed %d failed %d, want 32 and 68", rep.Placed, rep.Failed)
	}
	for reason, n := range rep.FailuresByReason {
		if !strings.HasPrefix(reason, "insufficient resources: memory on 2 cells") || n != 68 {
			t.Fatalf("failures %v", rep.FailuresByReason)
		}
	}
}

func TestSimConfigValidate(t *testing.T) {
	good := SimConfig{Cells: 2, Zones: 1, Cell: Resources{MemoryMB: 1, DiskMB: 1, Containers: 1}, Mix: DefaultMix}
	cases := map[string]func(c *SimConfig){
		"cells":         func(c *SimConfig) { c.Cells = 0 },
		"zones":         func(c *SimConfig) { c.Zones = 3 },
		"instances":     func(c *SimConfig) { c.Instances = -1 },
		"cell capacity": func(c *SimConfig) { c.Cell.Containers = 0 },
		"mix":           func(c *SimConfig) { c.Mix = nil },
		"mix[0]":        func(c *SimConfig) { c.Mix = []AppShape{{}} },
	}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for field, mutate := range cases {
		c := good
		mutate(&c)
		if err := c.Validate(); err == nil || !strings.HasPrefix(err.Error(), field) {
			t.Errorf("%s: %v", field, err)
		}
	}
}

func TestSimulateGRPCPlacesThroughRealReps(t *testing.T) {
	rep, err := SimulateGRPC(context.Background(), SimConfig{Cells: 12, Zones: 3,
		Cell: Resources{MemoryMB: 32 * 1024, DiskMB: 64 * 1024, Containers: 250}, Instances: 1200, Mix: DefaultMix, BatchSize: 300, Seed: 2})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Mode != "grpc" || rep.Placed != 1200 || rep.Failed != 0 || rep.Lost != 0 || rep.Rounds < 4 {
		t.Fatalf("report %+v", rep)
	}
	placed := 0
	for _, n := range rep.InstancesPerZone {
		placed += n
	}
	if placed != rep.Placed || len(rep.InstancesPerZone) != 3 || rep.WorstAppZoneSkew > 1 {
		t.Fatalf("cells hold %d instances (report says %d), zones %v, skew %d", placed, rep.Placed, rep.InstancesPerZone, rep.WorstAppZoneSkew)
	}
	failed := 0
	for _, n := range rep.FailuresByReason {
		failed += n
	}
	if failed != rep.Failed {
		t.Fatalf("failures by reason %v sum to %d, report says %d", rep.FailuresByReason, failed, rep.Failed)
	}
}

func TestSimulateGRPCReportsFailures(t *testing.T) {
	rep, err := SimulateGRPC(context.Background(), SimConfig{Cells: 2, Zones: 1,
		Cell: Resources{MemoryMB: 1024, DiskMB: 1 << 20, Containers: 1000}, Instances: 100, Mix: []AppShape{{Instances: 5, MemoryMB: 64}}, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Placed != 32 || rep.Failed != 68 || rep.FailuresByReason["insufficient resources: memory on 2 cells"] != 68 {
		t.Fatalf("report %+v", rep)
	}
}

// BenchmarkSimulateEngine is the pure engine on 1,000 cells placing 100k
// instances of Diego's experiment mix in rounds of 5,000.
func BenchmarkSimulateEngine(b *testing.B) {
	cfg := SimConfig{Cells: 1000, Zones: 3, Cell: Resources{MemoryMB: 32 * 1024, DiskMB: 64 * 1024, Containers: 250},
		Instances: 100_000, Mix: DefaultMix, BatchSize: 5000, Seed: 1}
	benchSimulate(b, func() (SimReport, error) { return Simulate(cfg) })
}

// BenchmarkSimulateGRPC is the auctioneer end to end (its API, the engine,
// state fetch and Perform over mutual TLS) on 200 in-process reps placing
// 30k instances in rounds of 1,000 and of 5,000.
func BenchmarkSimulateGRPC(b *testing.B) {
	for _, batch := range []int{1000, 5000} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			cfg := SimConfig{Cells: 200, Zones: 3, Cell: Resources{MemoryMB: 32 * 1024, DiskMB: 64 * 1024, Containers: 250},
				Instances: 30_000, Mix: DefaultMix, BatchSize: batch, Seed: 1}
			benchSimulate(b, func() (SimReport, error) { return SimulateGRPC(context.Background(), cfg) })
		})
	}
}

func benchSimulate(b *testing.B, run func() (SimReport, error)) {
	var placed int
	var wall, stddev float64
	for b.Loop() {
		rep, err := run()
		if err != nil {
			b.Fatal(err)
		}
		if rep.Failed != 0 || rep.Lost != 0 {
			b.Fatalf("report %+v", rep)
		}
		placed += rep.Placed
		wall += rep.WallSeconds
		stddev = max(stddev, rep.CellMemoryStdDevPct)
	}
	b.ReportMetric(float64(placed)/wall, "placements/s")
	b.ReportMetric(stddev, "mem_stddev_pct")
}
