package auctioneer

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gavel-scheduler/gavel/internal/config"
	"github.com/gavel-scheduler/gavel/proto/models"
	"github.com/gavel-scheduler/gavel/rep"
)

func TestCellFromState(t *testing.T) {
	st := &models.CellState{
		CellId: "cell-1", Zone: "z2", CellIndex: 7,
		RootfsProviders: []*models.Provider{{Name: "preloaded", Properties: []string{"busybox", "cflinuxfs4"}}, {Name: "docker"}, {Name: "preloaded+layer", Properties: []string{"busybox"}}},
		PlacementTags:   []string{"gpu"}, OptionalPlacementTags: []string{"ssd"}, VolumeDrivers: []string{"nfs"},
		Total:                  &models.CellCapacity{MemoryMb: 1000, DiskMb: 2000, Containers: 10},
		Available:              &models.CellCapacity{MemoryMb: 600, DiskMb: 1500, Containers: 7},
		StartingContainerCount: 2, ProxyMemoryAllocationMb: 32, Evacuating: true,
		Lrps:  []*models.CellLRP{{ProcessGuid: "a"}, {ProcessGuid: "a"}, {ProcessGuid: "b"}},
		Tasks: []*models.CellTask{{TaskGuid: "t"}},
	}
	want := &Cell{
		ID: "cell-1", Zone: "z2", Index: 7,
		RootFSProviders: map[string]RootFSProvider{
			"preloaded": {Stacks: []string{"busybox", "cflinuxfs4"}}, "docker": {Arbitrary: true}, "preloaded+layer": {Stacks: []string{"busybox"}},
		},
		PlacementTags: []string{"gpu"}, OptionalPlacementTags: []string{"ssd"}, VolumeDrivers: []string{"nfs"},
		Total: Resources{1000, 2000, 10}, Available: Resources{600, 1500, 7},
		StartingContainers: 2, ProxyMemoryMB: 32, LRPs: map[string]int{"a": 2, "b": 1}, Tasks: 1, Evacuating: true,
	}
	if diff := cmp.Diff(want, CellFromState(st)); diff != "" {
		t.Fatalf("cell (-want +got):\n%s", diff)
	}
	// A report without resources is a cell with none, not a crash.
	if c := CellFromState(&models.CellState{CellId: "x"}); c.Total != (Resources{}) || len(c.LRPs) != 0 {
		t.Fatalf("empty state gives %+v", c)
	}
}

func TestRequestsExpandAndConvertBack(t *testing.T) {
	req := &models.LRPStartRequest{ProcessGuid: "web", Domain: "apps", Indices: []int32{0, 3},
		PlacementConstraint: &models.PlacementConstraint{Rootfs: "preloaded:busybox", PlacementTags: []string{"gpu"}, VolumeDrivers: []string{"nfs"}},
		Resource:            &models.Resource{MemoryMb: 128, DiskMb: 256, MaxPids: 100}}
	lrps := LRPsFromRequest(req)
	if len(lrps) != 2 || lrps[1].Index != 3 || lrps[1].MaxPids != 100 || lrps[0].Constraint.PlacementTags[0] != "gpu" {
		t.Fatalf("expanded %+v", lrps)
	}
	if back := lrpFromWork(lrps[1].work()); !cmp.Equal(back, lrps[1]) {
		t.Fatalf("round trip %+v != %+v", back, lrps[1])
	}
	task := TaskFromRequest(&models.TaskStartRequest{TaskGuid: "t", Domain: "d", PlacementConstraint: req.PlacementConstraint, Resource: req.Resource})
	if back := taskFromWork(task.work()); !cmp.Equal(back, task) {
		t.Fatalf("round trip %+v != %+v", back, task)
	}
}

func TestServerRefusesWorkOnStandby(t *testing.T) {
	e := NewEngine(EngineConfig{}, staticList{}, rep.NewClient(nil), nil, nil, quiet())
	s := NewServer(e)
	_, err := s.RequestLRPAuctions(context.Background(), &models.RequestLRPAuctionsRequest{Requests: []*models.LRPStartRequest{startReq("web", 1, 0)}})
	if models.ToStatus(err).Code().String() != "Unavailable" || e.Pending() != 0 {
		t.Fatalf("standby took work: %v, %d pending", err, e.Pending())
	}
	s.SetLeading(true)
	if _, err := s.RequestTaskAuctions(context.Background(), &models.RequestTaskAuctionsRequest{Requests: []*models.TaskStartRequest{taskReq("t", 1)}}); err != nil || e.Pending() != 1 {
		t.Fatalf("leader refused work: %v, %d pending", err, e.Pending())
	}
	e.Clear()
	if e.Pending() != 0 {
		t.Fatal("Clear left work")
	}
}

func TestRoundMetrics(t *testing.T) {
	capacity := &models.CellCapacity{MemoryMb: 1000, DiskMb: 1000, Containers: 10}
	c := startCell(t, "cell-a", "z1", capacity, nil)
	reps := rep.NewClient(nil)
	defer reps.Close()
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	e := NewEngine(EngineConfig{}, listOf(c), reps, newRecorder(), m, quiet())
	e.AddLRPs([]*models.LRPStartRequest{startReq("web", 100, 0, 1), startReq("huge", 5000, 0)})
	e.AddTasks([]*models.TaskStartRequest{taskReq("t", 10)})
	e.Round(context.Background())
	for name, want := range map[string]float64{
		"lrp": 2, "task": 1,
	} {
		if got := testutil.ToFloat64(m.Placements.WithLabelValues(name)); got != want {
			t.Errorf("placements{kind=%s} = %v, want %v", name, got, want)
		}
	}
	if got := testutil.ToFloat64(m.Failures.WithLabelValues("lrp", string(ReasonResources))); got != 1 {
		t.Errorf("failures{lrp,resources} = %v", got)
	}
	if got := testutil.ToFloat64(m.Cells); got != 1 {
		t.Errorf("cells = %v", got)
	}
	n, err := testutil.GatherAndCount(reg, "gavel_auctioneer_auction_duration_seconds", "gavel_auctioneer_fetch_states_duration_seconds", "gavel_auctioneer_batch_size")
	if err != nil || n != 3 {
		t.Errorf("histograms gathered: %d, %v", n, err)
	}
}

func TestConfigValidate(t *testing.T) {
	good := DefaultConfig()
	good.Insecure = true
	tests := []struct {
		mutate func(*Config)
		want   string
	}{
		{func(*Config) {}, ""},
		{func(c *Config) { c.ListenAddress = "nope" }, "listen_address"},
		{func(c *Config) { c.BBSAddress = "" }, "bbs_address"},
		{func(c *Config) { c.AdvertiseAddress = "x" }, "advertise_address"},
		{func(c *Config) { c.EtcdEndpoints = nil }, "etcd_endpoints"},
		{func(c *Config) { c.KeyPrefix = "gavel" }, "key_prefix"},
		{func(c *Config) { c.Insecure = false }, "required unless insecure"},
		{func(c *Config) { c.ElectionTTL = config.Duration(time.Millisecond) }, "election_ttl"},
		{func(c *Config) { c.CellStateTimeout = 0 }, "cell_state_timeout"},
		{func(c *Config) { c.CommunicationTimeout = -1 }, "communication_timeout"},
		{func(c *Config) { c.MaxAttempts = 0 }, "max_attempts"},
		{func(c *Config) { c.GossipBindPort = -1 }, "gossip_bind_port"},
		{func(c *Config) { c.GossipBindAddress = "localhost" }, "gossip_bind_address"},
		{func(c *Config) { c.GossipJoin = []string{"127.0.0.1"} }, "gossip_join"},
		{func(c *Config) { c.GossipKeyFile = "/nonexistent/key" }, "gossip_key_file"},
		{func(c *Config) { c.LogLevel = "loud" }, "log_level"},
	}
	for _, tc := range tests {
		c := good
		tc.mutate(&c)
		err := c.Validate()
		if tc.want == "" {
			if err != nil {
				t.Errorf("valid config refused: %v", err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %v, want one naming %q", err, tc.want)
		}
	}
}
