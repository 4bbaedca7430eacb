package auctioneer

import (
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
