package rep

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"testing"

	"github.com/gavel-scheduler/gavel/proto/models"
)

func testInfo() CellInfo {
	return CellInfo{
		CellID: "cell-1", RepAddress: "127.0.0.1:1801", Zone: "z1",
		RootFSProviders: []*models.Provider{{Name: "preloaded", Properties: []string{"busybox"}}, {Name: "docker"}},
	}
}

func lrpWork(guid string, index, memory int32) *models.LRPWork {
	return &models.LRPWork{ProcessGuid: guid, Index: index, Domain: "apps",
		PlacementConstraint: &models.PlacementConstraint{Rootfs: "preloaded:busybox"}, Resource: &models.Resource{MemoryMb: memory, DiskMb: 10}}
}

func taskWork(guid string, memory int32) *models.TaskWork {
	return &models.TaskWork{TaskGuid: guid, Domain: "tasks",
		PlacementConstraint: &models.PlacementConstraint{Rootfs: "docker:///busybox"}, Resource: &models.Resource{MemoryMb: memory}}
}

type failure struct {
	guid   string
	index  int32
	reason string
}

func failures(resp *models.PerformResponse) []failure {
	var out []failure
	for _, f := range resp.FailedLrps {
		out = append(out, failure{f.Work.ProcessGuid, f.Work.Index, f.Reason})
	}
	for _, f := range resp.FailedTasks {
		out = append(out, failure{f.Work.TaskGuid, -1, f.Reason})
	}
	return out
}

func TestPerform(t *testing.T) {
	tests := []struct {
		name       string
		capacity   *models.CellCapacity
		proxy      int32
		evacuating bool
		req        *models.PerformRequest
		want       []failure
		wantLRPs   int
		wantTasks  int
	}{
		{
			name:     "everything fits",
			capacity: &models.CellCapacity{MemoryMb: 1000, DiskMb: 1000, Containers: 10},
			req:      &models.PerformRequest{CellId: "cell-1", Lrps: []*models.LRPWork{lrpWork("a", 0, 100), lrpWork("a", 1, 100)}, Tasks: []*models.TaskWork{taskWork("t", 50)}},
			wantLRPs: 2, wantTasks: 1,
		},
		{
			name:     "work for another cell is refused whole",
			capacity: &models.CellCapacity{MemoryMb: 1000, DiskMb: 1000, Containers: 10},
			req:      &models.PerformRequest{CellId: "cell-9", Lrps: []*models.LRPWork{lrpWork("a", 0, 1)}, Tasks: []*models.TaskWork{taskWork("t", 1)}},
			want:     []failure{{"a", 0, `work for cell "cell-9" reached cell "cell-1"`}, {"t", -1, `work for cell "cell-9" reached cell "cell-1"`}},
		},
		{
			name:       "an evacuating cell takes nothing",
			capacity:   &models.CellCapacity{MemoryMb: 1000, DiskMb: 1000, Containers: 10},
			evacuating: true,
			req:        &models.PerformRequest{Lrps: []*models.LRPWork{lrpWork("a", 0, 1)}},
			want:       []failure{{"a", 0, "cell is evacuating"}},
		},
		{
			name:     "largest first: the small one is left out",
			capacity: &models.CellCapacity{MemoryMb: 300, DiskMb: 1000, Containers: 10},
			req:      &models.PerformRequest{Lrps: []*models.LRPWork{lrpWork("small", 0, 100), lrpWork("big", 0, 250)}},
			want:     []failure{{"small", 0, "insufficient resources available"}},
			wantLRPs: 1,
		},
		{
			name:     "the proxy's memory counts",
			capacity: &models.CellCapacity{MemoryMb: 300, DiskMb: 1000, Containers: 10},
			proxy:    32,
			req:      &models.PerformRequest{Lrps: []*models.LRPWork{lrpWork("a", 0, 140), lrpWork("a", 1, 140)}},
			want:     []failure{{"a", 1, "insufficient resources available"}},
			wantLRPs: 1,
		},
		{
			name:     "slots run out in the allocation",
			capacity: &models.CellCapacity{MemoryMb: 1000, DiskMb: 1000, Containers: 1},
			req:      &models.PerformRequest{Lrps: []*models.LRPWork{lrpWork("a", 0, 10)}, Tasks: []*models.TaskWork{taskWork("t", 10)}},
			want:     []failure{{"t", -1, "insufficient resources available"}},
			wantLRPs: 1,
		},
		{
			name:     "a stack the cell lacks",
			capacity: &models.CellCapacity{MemoryMb: 1000, DiskMb: 1000, Containers: 10},
			req: &models.PerformRequest{Lrps: []*models.LRPWork{{ProcessGuid: "w", Domain: "apps",
				PlacementConstraint: &models.PlacementConstraint{Rootfs: "preloaded:windows"}, Resource: &models.Resource{}}}},
			want: []failure{{"w", 0, "cell has no compatible rootfs"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			info := testInfo()
			info.ProxyMemoryMB = tc.proxy
			c := NewMemoryContainers(tc.capacity)
			s := NewServer(info, c, quietLogger())
			s.SetEvacuating(tc.evacuating)
			resp, err := s.Perform(context.Background(), tc.req)
			if err != nil {
				t.Fatal(err)
			}
			if got := failures(resp); !slices.Equal(got, tc.want) {
				t.Fatalf("failures %v, want %v", got, tc.want)
			}
			lrps, tasks, _ := c.Work(context.Background())
			if len(lrps) != tc.wantLRPs || len(tasks) != tc.wantTasks {
				t.Fatalf("cell holds %d instances and %d tasks, want %d and %d", len(lrps), len(tasks), tc.wantLRPs, tc.wantTasks)
			}
		})
	}
}

func TestStateReflectsWorkAndStops(t *testing.T) {
	c := NewMemoryContainers(&models.CellCapacity{MemoryMb: 1000, DiskMb: 500, Containers: 4})
	s := NewServer(testInfo(), c, quietLogger())
	ctx := context.Background()
	if _, err := s.Perform(ctx, &models.PerformRequest{Lrps: []*models.LRPWork{lrpWork("a", 0, 100), lrpWork("a", 1, 100)}, Tasks: []*models.TaskWork{taskWork("t", 50)}}); err != nil {
		t.Fatal(err)
	}
	st, err := s.State(ctx, &models.CellStateRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if st.CellId != "cell-1" || st.Zone != "z1" || st.Evacuating || len(st.Lrps) != 2 || len(st.Tasks) != 1 ||
		st.Available.MemoryMb != 750 || st.Available.DiskMb != 480 || st.Available.Containers != 1 || st.Total.MemoryMb != 1000 {
		t.Fatalf("state %v", st)
	}
	if st.Lrps[0].InstanceGuid == st.Lrps[1].InstanceGuid || st.Lrps[0].InstanceGuid == "" {
		t.Fatalf("instance guids %q and %q", st.Lrps[0].InstanceGuid, st.Lrps[1].InstanceGuid)
	}

	// Another cell's instance is refused; a stop frees the resources.
	ik := &models.ActualLRPInstanceKey{InstanceGuid: st.Lrps[0].InstanceGuid, CellId: "cell-2"}
	key := &models.ActualLRPKey{ProcessGuid: "a", Index: st.Lrps[0].Index, Domain: "apps"}
	if _, err := s.StopLRPInstance(ctx, &models.StopLRPInstanceRequest{ActualLrpKey: key, ActualLrpInstanceKey: ik}); err == nil {
		t.Fatal("stop of another cell's instance succeeded")
	}
	ik.CellId = "cell-1"
	if _, err := s.StopLRPInstance(ctx, &models.StopLRPInstanceRequest{ActualLrpKey: key, ActualLrpInstanceKey: ik}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.StopLRPInstance(ctx, &models.StopLRPInstanceRequest{ActualLrpKey: key, ActualLrpInstanceKey: ik}); models.ToStatus(err).Code().String() != "NotFound" {
		t.Fatalf("second stop: %v", err)
	}
	if _, err := s.CancelTask(ctx, &models.CancelTaskRequest{TaskGuid: "t"}); err != nil {
		t.Fatal(err)
	}
	s.SetEvacuating(true)
	st, _ = s.State(ctx, &models.CellStateRequest{})
	if !st.Evacuating || len(st.Lrps) != 1 || len(st.Tasks) != 0 || st.Available.MemoryMb != 900 || st.Available.Containers != 3 {
		t.Fatalf("state after stop and cancel %v", st)
	}
}

func TestMemoryContainersAllocateAtomically(t *testing.T) {
	c := NewMemoryContainers(&models.CellCapacity{MemoryMb: 100, DiskMb: 100, Containers: 2})
	ctx := context.Background()
	errs := c.Allocate(ctx, []Allocation{
		{Guid: "i-1", LRP: lrpWork("a", 0, 60)},
		{Guid: "i-1", LRP: lrpWork("a", 1, 1)},   // guid taken
		{Guid: "i-2", LRP: lrpWork("a", 2, 50)},  // memory short
		{Guid: "t-1", Task: taskWork("t-1", 40)}, // fits
		{Guid: "t-2", Task: taskWork("t-2", 0)},  // no slot left
	})
	want := []error{nil, ErrGuidTaken, ErrInsufficientResources, nil, ErrInsufficientResources}
	if fmt.Sprint(errs) != fmt.Sprint(want) {
		t.Fatalf("errors %v, want %v", errs, want)
	}
	if r := c.Remaining(); r.MemoryMb != 0 || r.DiskMb != 90 || r.Containers != 0 {
		t.Fatalf("remaining %v", r)
	}
}

func TestSupportsRootFS(t *testing.T) {
	info := testInfo()
	for rootfs, want := range map[string]bool{
		"preloaded:busybox": true, "preloaded:windows": false, "docker:///library/busybox#1": true,
		"oci:///img": false, "busybox": false, "": false, "preloaded+layer:busybox?layer=x": false,
	} {
		if got := info.supportsRootFS(rootfs); got != want {
			t.Errorf("supportsRootFS(%q) = %v, want %v", rootfs, got, want)
		}
	}
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
