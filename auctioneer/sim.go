package auctioneer

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"
)

// SimConfig describes a simulated cluster and workload for the in-process
// auction engine.
type SimConfig struct {
	Cells int `json:"cells"`
	Zones int `json:"zones"`
	// Cell is each cell's capacity.
	Cell Resources `json:"cell"`
	// Instances is the total number of LRP instances to place.
	Instances int `json:"instances"`
	// Mix lists app shapes; apps are drawn from it in turn until Instances
	// are desired.
	Mix []AppShape `json:"mix"`
	// BatchSize is how many instances one auction round places (the work
	// that queues while a round runs); 0 places everything in one round.
	// Over gRPC it is how many instances each request to the auctioneer
	// carries; the engine batches whatever queued while a round ran.
	BatchSize int `json:"batch"`
	// Seed makes the workload (and so the run) reproducible.
	Seed uint64 `json:"seed"`
	// Progress, if set, is called after each round.
	Progress func(done, total int) `json:"-"`
}

// AppShape is one kind of app in a simulated mix.
type AppShape struct {
	Instances int   `json:"instances"`
	MemoryMB  int32 `json:"memory_mb"`
	DiskMB    int32 `json:"disk_mb"`
}

// DefaultMix is Diego's experiment mix: apps of 1–25 instances, 32 MB to
// 1 GiB.
var DefaultMix = []AppShape{
	{Instances: 1, MemoryMB: 128, DiskMB: 256},
	{Instances: 2, MemoryMB: 256, DiskMB: 512},
	{Instances: 4, MemoryMB: 512, DiskMB: 1024},
	{Instances: 10, MemoryMB: 64, DiskMB: 256},
	{Instances: 25, MemoryMB: 32, DiskMB: 128},
	{Instances: 3, MemoryMB: 1024, DiskMB: 2048},
}

// Validate names the first bad field.
func (c SimConfig) Validate() error {
	switch {
	case c.Cells < 1:
		return fmt.Errorf("cells: must be at least 1")
	case c.Zones < 1 || c.Zones > c.Cells:
		return fmt.Errorf("zones: must be between 1 and the number of cells")
	case c.Instances < 0:
		return fmt.Errorf("instances: must not be negative")
	case c.Cell.MemoryMB < 1 || c.Cell.DiskMB < 1 || c.Cell.Containers < 1:
		return fmt.Errorf("cell capacity: memory, disk and containers must be positive")
	case len(c.Mix) == 0:
		return fmt.Errorf("mix: at least one app shape")
	case c.BatchSize < 0:
		return fmt.Errorf("batch: must not be negative")
	}
	for i, a := range c.Mix {
		if a.Instances < 1 || a.MemoryMB < 0 || a.DiskMB < 0 {
			return fmt.Errorf("mix[%d]: instances must be positive, memory and disk not negative", i)
		}
	}
	return nil
}

// SimReport is what a simulation measured.
type SimReport struct {
	// Mode is "engine" (scheduling in memory) or "grpc" (the auctioneer's
	// API, engine and commit against reps over gRPC).
	Mode      string `json:"mode"`
	Cells     int    `json:"cells"`
	Zones     int    `json:"zones"`
	Instances int    `json:"instances"`
	Placed    int    `json:"placed"`
	Failed    int    `json:"failed"`
	// Lost counts work whose commit failed in transport (grpc mode).
	Lost             int            `json:"lost"`
	FailuresByReason map[string]int `json:"failures_by_reason"`
	Rounds           int            `json:"rounds"`
	WallSeconds      float64        `json:"wall_seconds"`
	PlacementsPerSec float64        `json:"placements_per_second"`
	CellMemoryMeanMB float64        `json:"cell_memory_mean_mb"`
	CellMemoryStdDev float64        `json:"cell_memory_stddev_mb"`
	// CellMemoryStdDevPct is the standard deviation of each cell's used
	// share of its memory, in percentage points.
	CellMemoryStdDevPct float64        `json:"cell_memory_stddev_pct"`
	CellMemoryMaxMB     float64        `json:"cell_memory_max_mb"`
	InstancesPerZone    map[string]int `json:"instances_per_zone"`
	WorstAppZoneSkew    int            `json:"worst_app_zone_skew"`
}

// Simulate places the workload on fresh cells, round after round, with the
// real scheduling code, and measures the outcome.
func Simulate(cfg SimConfig) (SimReport, error) {
	if err := cfg.Validate(); err != nil {
		return SimReport{}, err
	}
	cells := make([]*Cell, cfg.Cells)
	for i := range cells {
		cells[i] = &Cell{
			ID: fmt.Sprintf("cell-%04d", i), Zone: simZone(i % cfg.Zones), Index: i,
			RootFSProviders: map[string]RootFSProvider{"preloaded": {Stacks: []string{"sim"}}},
			Total:           cfg.Cell, Available: cfg.Cell, LRPs: map[string]int{},
		}
	}
	work, sizes := simWorkload(cfg)
	batch := cfg.BatchSize
	if batch == 0 {
		batch = len(work)
	}
	rep := SimReport{Mode: "engine", Cells: cfg.Cells, Zones: cfg.Zones, Instances: len(work),
		FailuresByReason: map[string]int{}, InstancesPerZone: map[string]int{}}
	byID := make(map[string]*Cell, len(cells))
	for _, c := range cells {
		byID[c.ID] = c
	}
	appZones := map[string]map[string]int{}
	start := time.Now()
	for lo := 0; lo < len(work); lo += max(batch, 1) {
		hi := min(lo+batch, len(work))
		plan := Schedule(cells, work[lo:hi], nil)
		rep.Rounds++
		// Commit: the cells start the containers, which stop counting as
		// starting once the round is over.
		for _, p := range plan.LRPs {
			c := byID[p.CellID]
			take(c, p.LRP.MemoryMB, p.LRP.DiskMB)
			c.LRPs[p.LRP.ProcessGuid]++
			rep.InstancesPerZone[c.Zone]++
			if appZones[p.LRP.ProcessGuid] == nil {
				appZones[p.LRP.ProcessGuid] = map[string]int{}
			}
			appZones[p.LRP.ProcessGuid][c.Zone]++
		}
		rep.Placed += len(plan.LRPs)
		rep.Failed += len(plan.FailedLRPs)
		for _, f := range plan.FailedLRPs {
			rep.FailuresByReason[f.Reason]++
		}
		if cfg.Progress != nil {
			cfg.Progress(hi, len(work))
		}
	}
	wall := time.Since(start)
	results := make([]simCell, len(cells))
	for i, c := range cells {
		results[i] = simCell{zone: c.Zone, total: c.Total.MemoryMB, used: c.Total.MemoryMB - c.Available.MemoryMB}
	}
	rep.finish(wall, results, appZones, sizes)
	return rep, nil
}

// simCell is one cell at the end of a simulation.
type simCell struct {
	zone        string
	total, used int32
}

// finish fills in the measures of the end state: throughput, memory
// spread, zone spread and the worst per-app zone skew.
func (rep *SimReport) finish(wall time.Duration, cells []simCell, appZones map[string]map[string]int, sizes map[string]int) {
	rep.WallSeconds = wall.Seconds()
	if wall > 0 {
		rep.PlacementsPerSec = float64(rep.Placed) / wall.Seconds()
	}
	used := make([]float64, len(cells))
	share := make([]float64, len(cells))
	for i, c := range cells {
		used[i] = float64(c.used)
		if c.total > 0 {
			share[i] = 100 * float64(c.used) / float64(c.total)
		}
	}
	rep.CellMemoryMeanMB, rep.CellMemoryStdDev = meanStdDev(used)
	_, rep.CellMemoryStdDevPct = meanStdDev(share)
	rep.CellMemoryMaxMB = slices.Max(used)
	zones := make([]string, 0, rep.Zones)
	for i := range rep.Zones {
		zones = append(zones, simZone(i))
	}
	for guid, byZone := range appZones {
		if sizes[guid] < rep.Zones {
			continue // an app smaller than the zone count cannot be even
		}
		lo, hi := math.MaxInt, 0
		for _, z := range zones {
			lo, hi = min(lo, byZone[z]), max(hi, byZone[z])
		}
		rep.WorstAppZoneSkew = max(rep.WorstAppZoneSkew, hi-lo)
	}
}

func simZone(i int) string { return fmt.Sprintf("z%d", i) }

// simWorkload builds the instances, apps drawn from the mix in a seeded
// random order, and the number of instances of each app.
func simWorkload(cfg SimConfig) ([]LRP, map[string]int) {
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x9e3779b97f4a7c15))
	var work []LRP
	sizes := map[string]int{}
	for a := 0; len(work) < cfg.Instances; a++ {
		shape := cfg.Mix[rng.IntN(len(cfg.Mix))]
		guid := fmt.Sprintf("app-%07d", a)
		for i := 0; i < shape.Instances && len(work) < cfg.Instances; i++ {
			work = append(work, LRP{ProcessGuid: guid, Index: int32(i), Domain: "sim",
				MemoryMB: shape.MemoryMB, DiskMB: shape.DiskMB, Constraint: Constraint{RootFS: "preloaded:sim"}})
			sizes[guid]++
		}
	}
	return work, sizes
}

func meanStdDev(xs []float64) (mean, sd float64) {
	for _, x := range xs {
		mean += x
	}
	mean /= float64(len(xs))
	for _, x := range xs {
		sd += (x - mean) * (x - mean)
	}
	return mean, math.Sqrt(sd / float64(len(xs)))
}
