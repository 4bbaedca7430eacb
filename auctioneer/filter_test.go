package auctioneer

import (
	"math"
	"testing"
)

func cell(id, zone string, mem, disk, containers int32) *Cell {
	return &Cell{
		ID: id, Zone: zone,
		RootFSProviders: map[string]RootFSProvider{
			"preloaded": {Stacks: []string{"cflinuxfs4", "busybox"}},
			"docker":    {Arbitrary: true},
		},
		Total:     Resources{MemoryMB: mem, DiskMB: disk, Containers: containers},
		Available: Resources{MemoryMB: mem, DiskMB: disk, Containers: containers},
		LRPs:      map[string]int{},
	}
}

func TestFilterReasons(t *testing.T) {
	base := func() *Cell {
		c := cell("c", "z1", 100, 100, 10)
		c.VolumeDrivers = []string{"nfs"}
		c.PlacementTags = []string{"gpu"}
		c.OptionalPlacementTags = []string{"ssd"}
		return c
	}
	cases := []struct {
		name   string
		mutate func(c *Cell)
		con    Constraint
		mem    int32
		disk   int32
		want   Reason
		short  Shortfall
	}{
		{name: "fits", con: Constraint{RootFS: "preloaded:busybox", PlacementTags: []string{"gpu"}}, mem: 10, disk: 10},
		{name: "optional tag too", con: Constraint{RootFS: "preloaded:busybox", PlacementTags: []string{"gpu", "ssd"}}, mem: 10},
		{name: "arbitrary provider", con: Constraint{RootFS: "docker:///busybox#latest", PlacementTags: []string{"gpu"}}},
		{name: "evacuating", mutate: func(c *Cell) { c.Evacuating = true }, con: Constraint{RootFS: "preloaded:busybox", PlacementTags: []string{"gpu"}}, want: ReasonEvacuating},
		{name: "unknown stack", con: Constraint{RootFS: "preloaded:windows", PlacementTags: []string{"gpu"}}, want: ReasonRootFS},
		{name: "unknown scheme", con: Constraint{RootFS: "oci:///img", PlacementTags: []string{"gpu"}}, want: ReasonRootFS},
		{name: "no scheme", con: Constraint{RootFS: "busybox", PlacementTags: []string{"gpu"}}, want: ReasonRootFS},
		{name: "missing driver", con: Constraint{RootFS: "preloaded:busybox", PlacementTags: []string{"gpu"}, VolumeDrivers: []string{"smb"}}, want: ReasonVolumeDrivers},
		{name: "untagged work on a tagged cell", con: Constraint{RootFS: "preloaded:busybox"}, want: ReasonPlacementTags},
		{name: "tag the cell lacks", con: Constraint{RootFS: "preloaded:busybox", PlacementTags: []string{"gpu", "arm"}}, want: ReasonPlacementTags},
		{name: "memory", con: Constraint{RootFS: "preloaded:busybox", PlacementTags: []string{"gpu"}}, mem: 101, want: ReasonResources, short: Shortfall{Memory: true}},
		{name: "disk", con: Constraint{RootFS: "preloaded:busybox", PlacementTags: []string{"gpu"}}, disk: 101, want: ReasonResources, short: Shortfall{Disk: true}},
		{name: "containers", mutate: func(c *Cell) { c.Available.Containers = 0 }, con: Constraint{RootFS: "preloaded:busybox", PlacementTags: []string{"gpu"}}, want: ReasonResources, short: Shortfall{Containers: true}},
		{name: "rootfs before resources", con: Constraint{RootFS: "preloaded:windows", PlacementTags: []string{"gpu"}}, mem: 1000, want: ReasonRootFS},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := base()
			if tc.mutate != nil {
				tc.mutate(c)
			}
			got, short := resourceFilter(c, staticFilter(c, parseRootFS(tc.con.RootFS), &tc.con), tc.mem, tc.disk)
			if got != tc.want || short != tc.short {
				t.Fatalf("filter = %q %+v, want %q %+v", got, short, tc.want, tc.short)
			}
		})
	}
}

func TestScores(t *testing.T) {
	c := cell("c", "z", 100, 200, 10)
	c.Available = Resources{MemoryMB: 50, DiskMB: 100, Containers: 5}
	c.StartingContainers = 2
	c.LRPs["app"] = 1
	c.Tasks = 3
	// After placing 10 MB / 20 MB / 1 container: used fractions 0.6, 0.6, 0.6.
	// Mean 0.6, plus 2 starting × 0.25.
	lrp := &LRP{ProcessGuid: "app", MemoryMB: 10, DiskMB: 20}
	if got, want := ScoreLRP(c, lrp), 0.6+0.5+1000; math.Abs(got-want) > 1e-9 {
		t.Errorf("ScoreLRP = %v, want %v", got, want)
	}
	other := &LRP{ProcessGuid: "other", MemoryMB: 10, DiskMB: 20}
	if got, want := ScoreLRP(c, other), 1.1; math.Abs(got-want) > 1e-9 {
		t.Errorf("ScoreLRP(other) = %v, want %v", got, want)
	}
	c.ProxyMemoryMB = 30 // memory fraction becomes 0.9
	if got, want := ScoreLRP(c, other), (0.9+0.6+0.6)/3+0.5; math.Abs(got-want) > 1e-9 {
		t.Errorf("ScoreLRP with proxy = %v, want %v", got, want)
	}
	task := &Task{MemoryMB: 10, DiskMB: 20}
	if got, want := ScoreTask(c, task), 0.6+0.5+3000; math.Abs(got-want) > 1e-9 {
		t.Errorf("ScoreTask = %v, want %v", got, want)
	}
}

func TestScoringAllocatesNothing(t *testing.T) {
	c := cell("c", "z", 100, 100, 10)
	lrp := &LRP{ProcessGuid: "app", MemoryMB: 1, DiskMB: 1}
	if n := testing.AllocsPerRun(100, func() { _ = ScoreLRP(c, lrp) }); n != 0 {
		t.Fatalf("ScoreLRP allocates %v times", n)
	}
}

func BenchmarkScoreLRP(b *testing.B) {
	c := cell("c", "z", 100, 100, 10)
	lrp := &LRP{ProcessGuid: "app", MemoryMB: 1, DiskMB: 1}
	b.ReportAllocs()
	for b.Loop() {
		_ = ScoreLRP(c, lrp)
	}
}
