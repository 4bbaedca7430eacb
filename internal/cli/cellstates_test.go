package cli

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"

	"google.golang.org/grpc"

	"github.com/gavel-scheduler/gavel/proto/models"
	"github.com/gavel-scheduler/gavel/rep"
)

// startRep serves a real rep API over in-memory containers holding n
// instances, and returns its presence.
func startRep(t *testing.T, id string, n int) *models.CellPresence {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	info := rep.CellInfo{CellID: id, Zone: "z1", RepAddress: lis.Addr().String(),
		RootFSProviders: []*models.Provider{{Name: "preloaded", Properties: []string{"busybox"}}}}
	svc := rep.NewServer(info, rep.NewMemoryContainers(&models.CellCapacity{MemoryMb: 1024, DiskMb: 2048, Containers: 10}), nil)
	var work []*models.LRPWork
	for i := range n {
		work = append(work, &models.LRPWork{ProcessGuid: "web", Index: int32(i), Domain: "apps",
			PlacementConstraint: &models.PlacementConstraint{Rootfs: "preloaded:busybox"}, Resource: &models.Resource{MemoryMb: 100, DiskMb: 10}})
	}
	if _, err := svc.Perform(context.Background(), &models.PerformRequest{Lrps: work}); err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	models.RegisterRepServer(srv, svc)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return info.Presence(&models.CellCapacity{MemoryMb: 1024, DiskMb: 2048, Containers: 10})
}

func TestCellStates(t *testing.T) {
	f := &fakeBBS{cells: []*models.CellPresence{startRep(t, "cell-b", 1), startRep(t, "cell-a", 2)}}
	addr, _ := serve(t, f, "")
	cfg := writeConfig(t, addr)

	r := execute(t, invocation{config: cfg, terminal: true, args: []string{"cell-states"}})
	if r.err != nil {
		t.Fatalf("cell-states: %v\n%s", r.err, r.stderr)
	}
	want := "CELL_ID  ZONE  MEMORY_USED  DISK_USED  CONTAINERS  LRPS  TASKS  STARTING  EVACUATING\n" +
		"cell-a   z1    200/1024MB   20/2048MB  2/10        2     0      0         false\n" +
		"cell-b   z1    100/1024MB   10/2048MB  1/10        1     0      0         false\n"
	if r.stdout != want {
		t.Fatalf("table:\n%s\nwant:\n%s", r.stdout, want)
	}

	r = execute(t, invocation{config: cfg, args: []string{"cell-state", "cell-a"}})
	if r.err != nil || !strings.Contains(r.stdout, `"cell_id":"cell-a"`) || strings.Count(r.stdout, `"process_guid":"web"`) != 2 {
		t.Fatalf("cell-state: %v\n%s", r.err, r.stdout)
	}
	r = execute(t, invocation{config: cfg, args: []string{"cell-state", "cell-z"}})
	if r.err == nil || !strings.Contains(r.err.Error(), `cell "cell-z" is not present`) {
		t.Fatalf("cell-state of a missing cell: %v", r.err)
	}
}

func TestCellStatesNamesCellsThatDoNotAnswer(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := lis.Addr().String()
	lis.Close()
	f := &fakeBBS{cells: []*models.CellPresence{startRep(t, "cell-a", 0), {CellId: "cell-gone", RepAddress: dead}}}
	addr, _ := serve(t, f, "")
	r := execute(t, invocation{config: writeConfig(t, addr), args: []string{"cell-states"}})
	if r.err == nil || !strings.Contains(r.err.Error(), "1 of 2 cells did not answer: cell-gone") {
		t.Fatalf("error %v", r.err)
	}
	if !strings.Contains(r.stderr, fmt.Sprintf("cell cell-gone: rep at %s did not answer", dead)) || !strings.Contains(r.stdout, `"cell_id":"cell-a"`) {
		t.Fatalf("stdout %q stderr %q", r.stdout, r.stderr)
	}
}
