package auctioneer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gavel-scheduler/gavel/internal/grpcserver"
	"github.com/gavel-scheduler/gavel/proto/models"
	"github.com/gavel-scheduler/gavel/rep"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// testCell is a rep on loopback gRPC over in-memory containers.
type testCell struct {
	id         string
	addr       string
	server     *rep.Server
	containers rep.Containers
}

// hangingContainers answers nothing once hung: the rep's State call blocks
// like a cell that stopped answering.
type hangingContainers struct {
	*rep.MemoryContainers
	hang chan struct{}
}

func (h *hangingContainers) Work(ctx context.Context) ([]*models.CellLRP, []*models.CellTask, error) {
	select {
	case <-h.hang:
		<-ctx.Done()
		return nil, nil, ctx.Err()
	default:
		return h.MemoryContainers.Work(ctx)
	}
}

func startCell(t *testing.T, id, zone string, capacity *models.CellCapacity, containers rep.Containers) *testCell {
	t.Helper()
	if containers == nil {
		containers = rep.NewMemoryContainers(capacity)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	info := rep.CellInfo{CellID: id, Zone: zone, RepAddress: lis.Addr().String(),
		RootFSProviders: []*models.Provider{{Name: "preloaded", Properties: []string{"busybox"}}}}
	svc := rep.NewServer(info, containers, quiet())
	srv, _ := grpcserver.New(grpcserver.Options{Component: "rep", Logger: quiet()})
	models.RegisterRepServer(srv, svc)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return &testCell{id: id, addr: info.RepAddress, server: svc, containers: containers}
}

func listOf(cells ...*testCell) staticList {
	var out staticList
	for _, c := range cells {
		out = append(out, CellAddress{ID: c.id, Address: c.addr})
	}
	return out
}

// recorder is a Reporter that keeps what it was told.
type recorder struct {
	mu    sync.Mutex
	lrps  map[string]string
	tasks map[string]string
}

func newRecorder() *recorder { return &recorder{lrps: map[string]string{}, tasks: map[string]string{}} }

func (r *recorder) FailLRP(_ context.Context, key *models.ActualLRPKey, reason string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lrps[fmt.Sprintf("%s/%d", key.ProcessGuid, key.Index)] = reason
	return nil
}

func (r *recorder) RejectTask(_ context.Context, guid, reason string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tasks[guid] = reason
	return nil
}

func startReq(guid string, memory int32, indices ...int32) *models.LRPStartRequest {
	return &models.LRPStartRequest{ProcessGuid: guid, Domain: "apps", Indices: indices,
		PlacementConstraint: &models.PlacementConstraint{Rootfs: "preloaded:busybox"}, Resource: &models.Resource{MemoryMb: memory, DiskMb: 10}}
}

func taskReq(guid string, memory int32) *models.TaskStartRequest {
	return &models.TaskStartRequest{TaskGuid: guid, Domain: "tasks",
		PlacementConstraint: &models.PlacementConstraint{Rootfs: "preloaded:busybox"}, Resource: &models.Resource{MemoryMb: memory}}
}

func newTestEngine(cells CellLister, reps RepClient, rec Reporter, cfg EngineConfig) *Engine {
	return NewEngine(cfg, cells, reps, rec, nil, quiet())
}

func held(t *testing.T, c *testCell) []string {
	t.Helper()
	lrps, tasks, err := c.containers.Work(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range lrps {
		out = append(out, fmt.Sprintf("%s/%d", l.ProcessGuid, l.Index))
	}
	for _, tk := range tasks {
		out = append(out, tk.TaskGuid)
	}
	sort.Strings(out)
	return out
}

func TestRoundPlacesWorkOnRealReps(t *testing.T) {
	capacity := &models.CellCapacity{MemoryMb: 1000, DiskMb: 1000, Containers: 10}
	a := startCell(t, "cell-a", "z1", capacity, nil)
	b := startCell(t, "cell-b", "z2", capacity, nil)
	reps := rep.NewClient(nil)
	defer reps.Close()
	rec := newRecorder()
	e := newTestEngine(listOf(a, b), reps, rec, EngineConfig{})

	e.AddLRPs([]*models.LRPStartRequest{startReq("web", 100, 0, 1, 2, 3), startReq("web", 100, 1)}) // index 1 twice
	e.AddTasks([]*models.TaskStartRequest{taskReq("t-1", 50), taskReq("t-1", 50)})
	e.AddLRPs([]*models.LRPStartRequest{startReq("huge", 5000, 0)})
	res := e.Round(context.Background())

	if res.Cells != 2 || res.LRPs != 4 || res.Tasks != 1 || len(res.FailedLRPs) != 1 || res.Retried != 0 || res.Lost != 0 {
		t.Fatalf("round %+v", res)
	}
	// Zones balance the app: two instances a side.
	ha, hb := held(t, a), held(t, b)
	count := func(h []string) int {
		n := 0
		for _, s := range h {
			if strings.HasPrefix(s, "web/") {
				n++
			}
		}
		return n
	}
	if count(ha) != 2 || count(hb) != 2 || len(ha)+len(hb) != 5 {
		t.Fatalf("cell a holds %v, cell b %v", ha, hb)
	}
	if got := rec.lrps["huge/0"]; got != "insufficient resources: memory on 2 cells" {
		t.Fatalf("reported %q for huge/0", got)
	}
	if e.Pending() != 0 {
		t.Fatalf("%d pending after the round", e.Pending())
	}
}

// refusingContainers refuses every allocation, as a cell whose resources
// went elsewhere between the state fetch and the commit.
type refusingContainers struct{ *rep.MemoryContainers }

func (refusingContainers) Allocate(_ context.Context, allocs []rep.Allocation) []error {
	errs := make([]error, len(allocs))
	for i := range errs {
		errs[i] = rep.ErrInsufficientResources
	}
	return errs
}

func TestRefusedWorkIsRetriedThenReported(t *testing.T) {
	capacity := &models.CellCapacity{MemoryMb: 1000, DiskMb: 1000, Containers: 10}
	c := startCell(t, "cell-a", "z1", capacity, refusingContainers{rep.NewMemoryContainers(capacity)})
	reps := rep.NewClient(nil)
	defer reps.Close()
	rec := newRecorder()
	e := newTestEngine(listOf(c), reps, rec, EngineConfig{MaxAttempts: 3})
	e.AddLRPs([]*models.LRPStartRequest{startReq("web", 100, 0)})
	e.AddTasks([]*models.TaskStartRequest{taskReq("t", 10)})

	for round := 1; round <= 2; round++ {
		res := e.Round(context.Background())
		if res.Retried != 2 || len(res.FailedLRPs)+len(res.FailedTasks) != 0 || e.Pending() != 2 {
			t.Fatalf("round %d: %+v, %d pending", round, res, e.Pending())
		}
	}
	res := e.Round(context.Background())
	if res.Retried != 0 || len(res.FailedLRPs) != 1 || len(res.FailedTasks) != 1 || res.FailedLRPs[0].Category != ReasonRefused || e.Pending() != 0 {
		t.Fatalf("last round %+v, %d pending", res, e.Pending())
	}
	want := "cell cell-a refused the work: insufficient resources available"
	if rec.lrps["web/0"] != want || rec.tasks["t"] != want {
		t.Fatalf("reported %v and %v", rec.lrps, rec.tasks)
	}
}

// TestUnansweringRepIsDropped: a rep that stops answering is left out
// after its state timeout and the round completes on the others.
func TestUnansweringRepIsDropped(t *testing.T) {
	capacity := &models.CellCapacity{MemoryMb: 1000, DiskMb: 1000, Containers: 10}
	hung := &hangingContainers{MemoryContainers: rep.NewMemoryContainers(capacity), hang: make(chan struct{})}
	close(hung.hang)
	bad := startCell(t, "cell-hung", "z1", capacity, hung)
	good := startCell(t, "cell-good", "z1", capacity, nil)
	reps := rep.NewClient(nil)
	defer reps.Close()
	e := newTestEngine(listOf(bad, good), reps, newRecorder(), EngineConfig{CellStateTimeout: 300 * time.Millisecond})
	e.AddLRPs([]*models.LRPStartRequest{startReq("web", 100, 0, 1)})

	res := e.Round(context.Background())
	if res.Cells != 1 || res.LRPs != 2 || len(res.FailedLRPs) != 0 {
		t.Fatalf("round %+v", res)
	}
	if h := held(t, good); !slices.Equal(h, []string{"web/0", "web/1"}) {
		t.Fatalf("the answering cell holds %v", h)
	}
}

func TestEvacuatingAndMismatchedCellsSitOut(t *testing.T) {
	capacity := &models.CellCapacity{MemoryMb: 1000, DiskMb: 1000, Containers: 10}
	evac := startCell(t, "cell-evac", "z1", capacity, nil)
	evac.server.SetEvacuating(true)
	other := startCell(t, "cell-other", "z1", capacity, nil)
	reps := rep.NewClient(nil)
	defer reps.Close()
	rec := newRecorder()
	// The list says cell-x lives where cell-other answers.
	cells := staticList{{ID: "cell-evac", Address: evac.addr}, {ID: "cell-x", Address: other.addr}}
	e := newTestEngine(cells, reps, rec, EngineConfig{})
	e.AddLRPs([]*models.LRPStartRequest{startReq("web", 100, 0)})
	res := e.Round(context.Background())
	if res.Cells != 0 || res.LRPs != 0 || len(res.FailedLRPs) != 1 || rec.lrps["web/0"] != "no cells available" {
		t.Fatalf("round %+v, reported %v", res, rec.lrps)
	}
}

// failingReps fails every Perform in transport.
type failingReps struct{ RepClient }

func (failingReps) Perform(context.Context, string, *models.PerformRequest) (*models.PerformResponse, error) {
	return nil, errors.New("connection reset")
}

func TestCommitTransportFailureLeavesWorkToConvergence(t *testing.T) {
	capacity := &models.CellCapacity{MemoryMb: 1000, DiskMb: 1000, Containers: 10}
	c := startCell(t, "cell-a", "z1", capacity, nil)
	reps := rep.NewClient(nil)
	defer reps.Close()
	rec := newRecorder()
	e := newTestEngine(listOf(c), failingReps{reps}, rec, EngineConfig{})
	e.AddLRPs([]*models.LRPStartRequest{startReq("web", 100, 0, 1)})
	res := e.Round(context.Background())
	if res.Lost != 2 || res.LRPs != 0 || len(res.FailedLRPs) != 0 || len(rec.lrps) != 0 || e.Pending() != 0 {
		t.Fatalf("round %+v, reported %v", res, rec.lrps)
	}
}

// gatedReps holds every State call until the gate opens, and says when
// the first call arrived.
type gatedReps struct {
	RepClient
	arrived chan struct{}
	gate    chan struct{}
	once    sync.Once
}

func (g *gatedReps) State(ctx context.Context, addr string) (*models.CellState, error) {
	g.once.Do(func() { close(g.arrived) })
	<-g.gate
	return g.RepClient.State(ctx, addr)
}

// TestRunBatchesWhatArrivesDuringARound: work that queues while a round
// fetches cell states joins that round; nothing is placed one by one.
func TestRunBatchesWhatArrivesDuringARound(t *testing.T) {
	capacity := &models.CellCapacity{MemoryMb: 100000, DiskMb: 100000, Containers: 1000}
	c := startCell(t, "cell-a", "z1", capacity, nil)
	reps := rep.NewClient(nil)
	defer reps.Close()
	gated := &gatedReps{RepClient: reps, arrived: make(chan struct{}), gate: make(chan struct{})}
	e := newTestEngine(listOf(c), gated, newRecorder(), EngineConfig{})
	rounds := make(chan RoundResult, 100)
	e.OnRound = func(r RoundResult) { rounds <- r }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- e.Run(ctx) }()

	e.AddLRPs([]*models.LRPStartRequest{startReq("app-0", 10, 0)})
	<-gated.arrived // the first round is fetching states
	for i := 1; i < 50; i++ {
		e.AddLRPs([]*models.LRPStartRequest{startReq(fmt.Sprintf("app-%d", i), 10, 0)})
	}
	close(gated.gate)
	select {
	case r := <-rounds:
		if r.LRPs != 50 {
			t.Fatalf("first round placed %d, want all 50", r.LRPs)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no round")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := len(held(t, c)); n != 50 {
		t.Fatalf("cell holds %d", n)
	}
}
