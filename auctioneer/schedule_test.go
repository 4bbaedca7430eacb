package auctioneer

import (
	"fmt"
	"slices"
	"testing"
)

func lrp(guid string, index, mem int32) LRP {
	return LRP{ProcessGuid: guid, Index: index, Domain: "apps", MemoryMB: mem, DiskMB: 1,
		Constraint: Constraint{RootFS: "preloaded:busybox"}}
}

func app(guid string, instances, mem int32) []LRP {
	out := make([]LRP, instances)
	for i := range out {
		out[i] = lrp(guid, int32(i), mem)
	}
	return out
}

func cells(n int, zones int, mem, disk, containers int32) []*Cell {
	out := make([]*Cell, n)
	for i := range out {
		out[i] = cell(fmt.Sprintf("cell-%02d", i), fmt.Sprintf("z%d", i%zones), mem, disk, containers)
	}
	return out
}

// perCell counts placements per cell id.
func perCell(p Plan) map[string]int {
	n := map[string]int{}
	for _, l := range p.LRPs {
		n[l.CellID]++
	}
	for _, t := range p.Tasks {
		n[t.CellID]++
	}
	return n
}

func TestOrderingInsideABatch(t *testing.T) {
	lrps := []LRP{lrp("b", 1, 10), lrp("a", 0, 10), lrp("c", 0, 50), lrp("a", 1, 80), lrp("b", 0, 10)}
	first, rest := orderLRPs(lrps)
	var got []string
	for _, l := range append(first, rest...) {
		got = append(got, fmt.Sprintf("%s/%d", l.ProcessGuid, l.Index))
	}
	want := []string{"c/0", "a/0", "b/0", "a/1", "b/1"}
	if !slices.Equal(got, want) {
		t.Fatalf("order %v, want %v", got, want)
	}
	tasks := orderTasks([]Task{{TaskGuid: "small", MemoryMB: 1}, {TaskGuid: "big", MemoryMB: 9}})
	if tasks[0].TaskGuid != "big" {
		t.Fatalf("tasks not largest first: %v", tasks)
	}
	// Index-0 instances go before tasks, tasks before the other instances:
	// with room for two, the task beats a's second instance.
	one := cells(1, 1, 20, 100, 100)
	plan := Schedule(one, []LRP{lrp("a", 0, 10), lrp("a", 1, 10)}, []Task{{TaskGuid: "t", MemoryMB: 10, Constraint: Constraint{RootFS: "preloaded:busybox"}}})
	if len(plan.Tasks) != 1 || len(plan.LRPs) != 1 || plan.LRPs[0].LRP.Index != 0 || len(plan.FailedLRPs) != 1 {
		t.Fatalf("plan %+v", plan)
	}
}

func TestFailureReasons(t *testing.T) {
	cs := cells(3, 1, 100, 100, 100)
	cs[0].Available.MemoryMB = 5
	cs[1].Available.MemoryMB = 5
	cs[1].Available.DiskMB = 0
	cs[2].Evacuating = true
	cases := []struct {
		name     string
		work     LRP
		category Reason
		want     string
	}{
		{"resources counted per cell", lrp("a", 0, 10), ReasonResources, "insufficient resources: disk on 1 cell, memory on 2 cells"},
		{"rootfs", LRP{ProcessGuid: "a", MemoryMB: 1, Constraint: Constraint{RootFS: "preloaded:windows"}}, ReasonRootFS, "found no compatible cell for required rootfs"},
		{"one tag", LRP{ProcessGuid: "a", MemoryMB: 1, Constraint: Constraint{RootFS: "preloaded:busybox", PlacementTags: []string{"x"}}}, ReasonPlacementTags, `found no compatible cell with placement tag "x"`},
		{"three tags", LRP{ProcessGuid: "a", MemoryMB: 1, Constraint: Constraint{RootFS: "preloaded:busybox", PlacementTags: []string{"a", "b", "c"}}}, ReasonPlacementTags, `found no compatible cell with placement tags "a", "b" and "c"`},
		{"drivers", LRP{ProcessGuid: "a", MemoryMB: 1, Constraint: Constraint{RootFS: "preloaded:busybox", VolumeDrivers: []string{"nfs"}}}, ReasonVolumeDrivers, "found no compatible cell with required volume drivers"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			plan := Schedule(cs, []LRP{tc.work}, nil)
			if len(plan.FailedLRPs) != 1 || plan.FailedLRPs[0].Reason != tc.want || plan.FailedLRPs[0].Category != tc.category {
				t.Fatalf("plan %+v, want failure %q (%s)", plan, tc.want, tc.category)
			}
		})
	}
	if plan := Schedule(nil, []LRP{lrp("a", 0, 1)}, nil); plan.FailedLRPs[0].Reason != "no cells available" || plan.FailedLRPs[0].Category != ReasonNoCells {
		t.Fatalf("no cells: %+v", plan)
	}
	evacuating := cells(2, 1, 100, 100, 100)
	evacuating[0].Evacuating, evacuating[1].Evacuating = true, true
	if plan := Schedule(evacuating, nil, []Task{{TaskGuid: "t", MemoryMB: 1, Constraint: Constraint{RootFS: "preloaded:busybox"}}}); len(plan.FailedTasks) != 1 ||
		plan.FailedTasks[0].Category != ReasonEvacuating || plan.FailedTasks[0].Reason != "found no compatible cell: every cell is evacuating" {
		t.Fatalf("all evacuating: %+v", plan)
	}
	tagged := cells(1, 1, 100, 100, 100)
	tagged[0].PlacementTags = []string{"gpu"}
	if plan := Schedule(tagged, []LRP{lrp("a", 0, 1)}, nil); plan.FailedLRPs[0].Reason != "found no compatible cell with no placement tags" {
		t.Fatalf("untagged on tagged: %+v", plan)
	}
}

// Diego's simulation: many small apps spread evenly over the cells.
func TestEvenSpreadOfManySmallLRPs(t *testing.T) {
	for _, tc := range []struct{ apps, cells int }{{8, 4}, {40, 10}, {200, 20}, {800, 40}} {
		t.Run(fmt.Sprintf("%d apps on %d cells", tc.apps, tc.cells), func(t *testing.T) {
			var work []LRP
			for i := range tc.apps {
				work = append(work, lrp(fmt.Sprintf("app-%d", i), 0, 1))
			}
			plan := Schedule(cells(tc.cells, 2, 100, 100, 100), work, nil)
			if len(plan.FailedLRPs) != 0 {
				t.Fatalf("%d failures", len(plan.FailedLRPs))
			}
			counts := perCell(plan)
			lo, hi := tc.apps, 0
			for i := range tc.cells {
				n := counts[fmt.Sprintf("cell-%02d", i)]
				lo, hi = min(lo, n), max(hi, n)
			}
			if hi-lo > 1 {
				t.Fatalf("uneven spread: %d to %d per cell", lo, hi)
			}
		})
	}
}

// Diego's "boulders before pebbles": 80 one-MB apps and two 50 MB instances
// of one app on one 100 MB cell. Largest-first, index-0-first ordering places
// the big app's first instance; naive order would fill the cell with pebbles.
func TestBouldersBeforePebbles(t *testing.T) {
	var work []LRP
	for i := range 80 {
		work = append(work, lrp(fmt.Sprintf("pebble-%02d", i), 0, 1))
	}
	work = append(work, app("boulder", 2, 50)...)
	plan := Schedule(cells(1, 1, 100, 100, 100), work, nil)
	if len(plan.LRPs) != 51 || len(plan.FailedLRPs) != 31 {
		t.Fatalf("placed %d, failed %d; want 51 and 31", len(plan.LRPs), len(plan.FailedLRPs))
	}
	placed := map[string]bool{}
	for _, p := range plan.LRPs {
		placed[fmt.Sprintf("%s/%d", p.LRP.ProcessGuid, p.LRP.Index)] = true
	}
	if !placed["boulder/0"] || placed["boulder/1"] {
		t.Fatalf("boulder/0 placed=%v boulder/1 placed=%v", placed["boulder/0"], placed["boulder/1"])
	}
	// The naive order (as given) fails the boulder entirely.
	naive := 0
	for _, l := range work {
		if naive+int(l.MemoryMB) <= 100 {
			naive += int(l.MemoryMB)
		} else if l.ProcessGuid == "boulder" && l.Index == 0 {
			return
		}
	}
	t.Fatal("the scenario does not separate the orders")
}

// A cell already holding instances of an app loses the next instance to an
// empty cell, even one that is worse balanced: spreading an app beats
// balancing resources.
func TestCellFullOfOneAppLosesToEmptyCell(t *testing.T) {
	busy := cell("busy", "z1", 1000, 1000, 100)
	busy.LRPs["web"] = 5
	empty := cell("empty", "z1", 100, 100, 10)
	plan := Schedule([]*Cell{busy, empty}, []LRP{lrp("web", 5, 10)}, nil)
	if len(plan.LRPs) != 1 || plan.LRPs[0].CellID != "empty" {
		t.Fatalf("placed on %+v, want the empty cell", plan.LRPs)
	}
	// Without the app on it, the bigger emptier cell wins on resources.
	busy.LRPs = map[string]int{"other": 5}
	plan = Schedule([]*Cell{busy, empty}, []LRP{lrp("web", 5, 10)}, nil)
	if plan.LRPs[0].CellID != "busy" {
		t.Fatalf("placed on %s, want busy (better balanced)", plan.LRPs[0].CellID)
	}
}

// Three zones stay within one instance of each other for every app.
func TestZonesStayBalancedForEveryApp(t *testing.T) {
	cs := cells(9, 3, 1000, 1000, 100)
	// Uneven zone sizes and a head start in z0 for one app.
	cs = append(cs, cell("extra-z0", "z0", 4000, 4000, 400))
	cs[0].LRPs["app-0"] = 1
	var work []LRP
	for a := range 6 {
		work = append(work, app(fmt.Sprintf("app-%d", a), int32(10+a*7), 5)...)
	}
	plan := Schedule(cs, work, nil)
	if len(plan.FailedLRPs) != 0 {
		t.Fatalf("%d failures", len(plan.FailedLRPs))
	}
	zoneOf := map[string]string{}
	for _, c := range cs {
		zoneOf[c.ID] = c.Zone
	}
	counts := map[string]map[string]int{}
	for _, p := range plan.LRPs {
		if counts[p.LRP.ProcessGuid] == nil {
			counts[p.LRP.ProcessGuid] = map[string]int{}
		}
		counts[p.LRP.ProcessGuid][zoneOf[p.CellID]]++
	}
	counts["app-0"]["z0"]++ // the instance already running
	for guid, byZone := range counts {
		lo, hi := 1<<30, 0
		for _, z := range []string{"z0", "z1", "z2"} {
			lo, hi = min(lo, byZone[z]), max(hi, byZone[z])
		}
		if hi-lo > 1 {
			t.Errorf("%s: zones hold %v", guid, byZone)
		}
	}
}

// A zone that is full gives way to the next: balancing never fails work
// that fits somewhere.
func TestFullZoneFallsThrough(t *testing.T) {
	a := cell("a", "z0", 10, 100, 100)
	b := cell("b", "z1", 100, 100, 100)
	plan := Schedule([]*Cell{a, b}, app("web", 4, 10), nil)
	if len(plan.FailedLRPs) != 0 {
		t.Fatalf("failures: %+v", plan.FailedLRPs)
	}
	if n := perCell(plan); n["a"] != 1 || n["b"] != 3 {
		t.Fatalf("placements %v", n)
	}
}

func TestScheduleLeavesInputCellsAlone(t *testing.T) {
	cs := cells(2, 1, 100, 100, 100)
	Schedule(cs, app("web", 4, 10), nil)
	for _, c := range cs {
		if c.Available.MemoryMB != 100 || len(c.LRPs) != 0 || c.StartingContainers != 0 {
			t.Fatalf("input cell changed: %+v", c)
		}
	}
}

func BenchmarkSchedule(b *testing.B) {
	cs := cells(1000, 3, 32*1024, 64*1024, 250)
	var work []LRP
	for a := range 1000 {
		work = append(work, app(fmt.Sprintf("app-%d", a), 10, 256)...)
	}
	b.ResetTimer()
	for b.Loop() {
		plan := Schedule(cs, work, nil)
		if len(plan.FailedLRPs) != 0 {
			b.Fatal("failures")
		}
	}
	b.ReportMetric(float64(len(work))*float64(b.N)/b.Elapsed().Seconds(), "placements/s")
}
