package executor

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gavel-scheduler/gavel/executor/garden"
	"github.com/gavel-scheduler/gavel/proto/models"
)

func testConfig(t testing.TB) Config {
	return Config{
		MemoryMB: 1024, DiskMB: 2048, MaxContainers: 4, DownloadCacheDir: t.TempDir(),
		UnhealthyMonitoringInterval: 5 * time.Millisecond, HealthyMonitoringInterval: 10 * time.Millisecond,
		GracefulShutdown: time.Second, CheckTimeout: time.Second,
	}
}

func newExecutor(t testing.TB, g GardenClient, cfg Config) *Executor {
	t.Helper()
	e, err := New(context.Background(), cfg, g)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// nextEvent returns the next event of guid of type typ, failing on timeout.
func nextEvent(t testing.TB, sub *Subscription, guid string, typ EventType) Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		ev, err := sub.Next(ctx)
		if err != nil {
			t.Fatalf("waiting for %s of %s: %v", typ, guid, err)
		}
		if ev.Container.Guid == guid && ev.Type == typ {
			return ev
		}
	}
}

// waitState polls until the container is in state.
func waitState(t testing.TB, e *Executor, guid string, state State) Container {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := e.GetContainer(context.Background(), guid)
		if err == nil && c.State == state {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never reached %s (last %s, %v)", guid, state, c.State, err)
		}
		time.Sleep(time.Millisecond)
	}
}

func runAction(path string, args ...string) *models.Action {
	return &models.Action{Kind: &models.Action_Run{Run: &models.RunAction{Path: path, Args: args}}}
}

func execCheck(path string) *models.CheckDefinition {
	return &models.CheckDefinition{Checks: []*models.Check{{ExecCheck: &models.ExecCheck{Path: path, IntervalMs: 10}}}}
}

func allocate(t testing.TB, e *Executor, guid string, mem int) {
	t.Helper()
	failed, err := e.AllocateContainers(testCtx(t), []AllocationRequest{{Guid: guid, Resource: Resource{MemoryMB: mem, DiskMB: 10}, Tags: Tags{"lifecycle": "lrp"}}})
	if err != nil || len(failed) != 0 {
		t.Fatalf("allocate %s: %v %v", guid, err, failed)
	}
}

func TestAllocation(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxContainers = 3
	e := newExecutor(t, newFakeGarden(), cfg)
	ctx := testCtx(t)
	allocate(t, e, "existing", 100)
	reqs := []AllocationRequest{
		{Guid: "ok-1", Resource: Resource{MemoryMB: 500, DiskMB: 1000}},
		{Guid: "existing", Resource: Resource{MemoryMB: 1}},
		{Guid: "ok-1", Resource: Resource{MemoryMB: 1}},
		{Guid: "neg", Resource: Resource{MemoryMB: -1}},
		{Guid: "negdisk", Resource: Resource{DiskMB: -5}},
		{Guid: "", Resource: Resource{MemoryMB: 1}},
		{Guid: "bad/guid", Resource: Resource{MemoryMB: 1}},
		{Guid: "too-big", Resource: Resource{MemoryMB: 500}},
		{Guid: "too-much-disk", Resource: Resource{DiskMB: 2000}},
		{Guid: "ok-2", Resource: Resource{MemoryMB: 400}},
		{Guid: "no-slot", Resource: Resource{MemoryMB: 1}},
	}
	failed, err := e.AllocateContainers(ctx, reqs)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]error{
		"existing": ErrGuidNotAvailable, "ok-1": ErrGuidNotAvailable, "neg": ErrInvalidRequest, "negdisk": ErrInvalidRequest,
		"": ErrInvalidRequest, "bad/guid": ErrInvalidRequest, "too-big": ErrInsufficientResources,
		"too-much-disk": ErrInsufficientResources, "no-slot": ErrInsufficientResources,
	}
	if len(failed) != len(want) {
		t.Fatalf("%d failures, want %d: %v", len(failed), len(want), failed)
	}
	for _, f := range failed {
		if !errors.Is(f.Err, want[f.Guid]) {
			t.Errorf("%q: err = %v, want %v", f.Guid, f.Err, want[f.Guid])
		}
	}
	if msg := failed[len(failed)-1].Err.Error(); !strings.Contains(msg, "insufficient resources available") {
		t.Errorf("message %q does not say insufficient resources available", msg)
	}
	rem, _ := e.RemainingResources(ctx)
	if rem != (Resources{MemoryMB: 1024 - 100 - 500 - 400, DiskMB: 2048 - 10 - 1000, Containers: 0}) {
		t.Fatalf("remaining = %+v", rem)
	}
	total, _ := e.TotalResources(ctx)
	if total != (Resources{MemoryMB: 1024, DiskMB: 2048, Containers: 3}) {
		t.Fatalf("total = %+v", total)
	}
	// The existing container was left alone.
	c, err := e.GetContainer(ctx, "existing")
	if err != nil || c.State != StateReserved || c.Resource.MemoryMB != 100 || c.Tags["lifecycle"] != "lrp" {
		t.Fatalf("existing = %+v, %v", c, err)
	}
	if _, err := e.GetContainer(ctx, "nope"); !errors.Is(err, ErrContainerNotFound) {
		t.Fatalf("unknown guid: %v", err)
	}
	list, _ := e.ListContainers(ctx, Tags{"lifecycle": "lrp"})
	if len(list) != 1 || list[0].Guid != "existing" {
		t.Fatalf("list by tag = %v", list)
	}
	all, _ := e.ListContainers(ctx, nil)
	if len(all) != 3 {
		t.Fatalf("list all = %d containers", len(all))
	}
	if err := e.DeleteContainer(ctx, "ok-1"); err != nil {
		t.Fatal(err)
	}
	rem, _ = e.RemainingResources(ctx)
	if rem.MemoryMB != 524 || rem.Containers != 1 {
		t.Fatalf("after delete remaining = %+v", rem)
	}
	for _, call := range []error{
		e.DeleteContainer(ctx, "nope"), e.StopContainer(ctx, "nope"),
		e.RunContainer(ctx, RunRequest{Guid: "nope", RunInfo: RunInfo{Action: runAction("exit", "0")}}),
	} {
		if !errors.Is(call, ErrContainerNotFound) {
			t.Errorf("call on unknown guid: %v", call)
		}
	}
}

func TestReservationExpires(t *testing.T) {
	cfg := testConfig(t)
	cfg.ReservedExpiration, cfg.PruneInterval = 20*time.Millisecond, 5*time.Millisecond
	e := newExecutor(t, newFakeGarden(), cfg)
	sub, _ := e.SubscribeToEvents(testCtx(t))
	defer sub.Close()
	allocate(t, e, "r1", 10)
	nextEvent(t, sub, "r1", EventReserved)
	ev := nextEvent(t, sub, "r1", EventCompleted)
	if r := ev.Container.RunResult; !r.Failed || r.FailureReason != "expired container" {
		t.Fatalf("result = %+v", r)
	}
	// Still holds its resources until deleted, as every completed container.
	if rem, _ := e.RemainingResources(testCtx(t)); rem.MemoryMB != 1014 {
		t.Fatalf("remaining = %+v", rem)
	}
}

func TestRunValidation(t *testing.T) {
	e := newExecutor(t, newFakeGarden(), testConfig(t))
	ctx := testCtx(t)
	allocate(t, e, "g", 10)
	bad := []RunInfo{
		{},
		{Action: &models.Action{}},
		{Action: runAction("x"), Setup: &models.Action{}},
		{Action: runAction("x"), CheckDefinition: &models.CheckDefinition{Checks: []*models.Check{{}}}},
		{Action: runAction("x"), StartTimeout: -1},
	}
	for i, info := range bad {
		if err := e.RunContainer(ctx, RunRequest{Guid: "g", RunInfo: info}); !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("run info %d: err = %v, want ErrInvalidRequest", i, err)
		}
	}
	if c, _ := e.GetContainer(ctx, "g"); c.State != StateReserved {
		t.Fatalf("refused run changed the container: %s", c.State)
	}
}

func TestHealthyContainerRunsThenStops(t *testing.T) {
	g := newFakeGarden()
	e := newExecutor(t, g, testConfig(t))
	ctx := testCtx(t)
	sub, _ := e.SubscribeToEvents(ctx)
	defer sub.Close()
	allocate(t, e, "lrp-1", 128)
	err := e.RunContainer(ctx, RunRequest{Guid: "lrp-1", Tags: Tags{"index": "0"}, RunInfo: RunInfo{
		Action: runAction("block"), CheckDefinition: execCheck("check"), Ports: []uint32{8080},
		Env: []*models.EnvironmentVariable{{Name: "A", Value: "b"}}, CPUWeight: 50,
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.RunContainer(ctx, RunRequest{Guid: "lrp-1", RunInfo: RunInfo{Action: runAction("block")}}); !errors.Is(err, ErrInvalidTransition) {
		t.Fatalf("second run: %v", err)
	}
	running := nextEvent(t, sub, "lrp-1", EventRunning).Container
	if running.InternalIP != "10.254.0.2" || running.ExternalIP != "192.0.2.10" ||
		fmt.Sprint(running.Ports) != "[{8080 61001}]" || running.Tags["index"] != "0" {
		t.Fatalf("running container = %+v", running)
	}
	if ev := nextEvent(t, sub, "lrp-1", EventRoutable); !ev.Container.Routable {
		t.Fatal("not routable without readiness checks")
	}
	gc := g.container("lrp-1")
	spec := gc.spec
	if spec.Limits.Memory.LimitInBytes != 128<<20 || spec.Limits.CPU.LimitInShares != 512 || fmt.Sprint(spec.Env) != "[A=b]" ||
		spec.Properties[propOwner] != "executor" {
		t.Fatalf("garden spec = %+v", spec)
	}
	if err := e.StopContainer(ctx, "lrp-1"); err != nil {
		t.Fatal(err)
	}
	c, _ := e.GetContainer(ctx, "lrp-1")
	if c.State != StateCompleted || c.RunResult != (RunResult{Stopped: true}) {
		t.Fatalf("after stop = %s %+v", c.State, c.RunResult)
	}
	if sig := gc.process("lrp-1-action-0").gotSignals(); fmt.Sprint(sig) != "[0]" {
		t.Fatalf("action signals = %v, want TERM", sig)
	}
	if p, _ := gc.Properties(ctx); p[propState] != "completed" || !strings.Contains(p[propResult], `"Stopped":true`) {
		t.Fatalf("properties not updated: %v", p)
	}
	if err := e.DeleteContainer(ctx, "lrp-1"); err != nil {
		t.Fatal(err)
	}
	if g.container("lrp-1") != nil {
		t.Fatal("garden container not destroyed")
	}
}

func TestFailures(t *testing.T) {
	tests := []struct {
		name       string
		info       RunInfo
		setup      func(g *fakeGarden)
		wantReason string
		retryable  bool
		running    bool
	}{
		{name: "action exits non-zero", info: RunInfo{Action: runAction("exit", "1")}, wantReason: "exit status 1", running: true},
		{name: "setup fails", info: RunInfo{Setup: runAction("exit", "2"), Action: runAction("block")}, wantReason: "exit status 2"},
		{name: "never healthy", info: RunInfo{Action: runAction("block"), CheckDefinition: execCheck("check"), StartTimeout: 50 * time.Millisecond},
			setup: func(g *fakeGarden) { g.checkStatus = 1 }, wantReason: "Instance never healthy after 50ms: command check failed: exit status 1"},
		{name: "create fails", info: RunInfo{Action: runAction("block")}, setup: func(g *fakeGarden) { g.createErr = errors.New("max containers reached") },
			wantReason: "failed to create container: max containers reached", retryable: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newFakeGarden()
			if tt.setup != nil {
				tt.setup(g)
			}
			e := newExecutor(t, g, testConfig(t))
			ctx := testCtx(t)
			sub, _ := e.SubscribeToEvents(ctx)
			defer sub.Close()
			allocate(t, e, "c", 10)
			if err := e.RunContainer(ctx, RunRequest{Guid: "c", RunInfo: tt.info}); err != nil {
				t.Fatal(err)
			}
			ev := nextEvent(t, sub, "c", EventCompleted)
			r := ev.Container.RunResult
			if !r.Failed || r.FailureReason != tt.wantReason || r.Retryable != tt.retryable || r.Stopped {
				t.Fatalf("result = %+v, want reason %q", r, tt.wantReason)
			}
		})
	}
}

// TestRunningWaitsForTheProcess: a container turns RUNNING once its
// action's process has started, not before, even when its health check
// passes sooner.
func TestRunningWaitsForTheProcess(t *testing.T) {
	for _, tt := range []struct {
		name  string
		check *models.CheckDefinition
	}{{"no check", nil}, {"a check that passes at once", execCheck("check")}} {
		t.Run(tt.name, func(t *testing.T) {
			g := newFakeGarden()
			g.gate, g.entered = make(chan struct{}), make(chan struct{}, 1)
			e := newExecutor(t, g, testConfig(t))
			ctx := testCtx(t)
			sub, _ := e.SubscribeToEvents(ctx)
			defer sub.Close()
			allocate(t, e, "c", 10)
			if err := e.RunContainer(ctx, RunRequest{Guid: "c", RunInfo: RunInfo{Action: runAction("gated"), CheckDefinition: tt.check}}); err != nil {
				t.Fatal(err)
			}
			<-g.entered
			// Time for an executor that does not wait to report RUNNING anyway.
			time.Sleep(50 * time.Millisecond)
			if c, err := e.GetContainer(ctx, "c"); err != nil || c.State != StateCreated {
				t.Fatalf("while the process is starting: %s %v, want created", c.State, err)
			}
			close(g.gate)
			nextEvent(t, sub, "c", EventRunning)
			if g.container("c").process("c-action-0") == nil {
				t.Fatal("RUNNING without the action's process")
			}
		})
	}
}

func TestCheckFailureAfterHealthyCrashes(t *testing.T) {
	g := newFakeGarden()
	e := newExecutor(t, g, testConfig(t))
	ctx := testCtx(t)
	sub, _ := e.SubscribeToEvents(ctx)
	defer sub.Close()
	allocate(t, e, "c", 10)
	if err := e.RunContainer(ctx, RunRequest{Guid: "c", RunInfo: RunInfo{Action: runAction("block"), CheckDefinition: execCheck("check")}}); err != nil {
		t.Fatal(err)
	}
	nextEvent(t, sub, "c", EventRunning)
	g.container("c").set(func(c *fakeContainer) { c.checkStatus = 7 })
	r := nextEvent(t, sub, "c", EventCompleted).Container.RunResult
	if !r.Failed || r.FailureReason != "health check failed: command check failed: exit status 7" {
		t.Fatalf("result = %+v", r)
	}
	ring, _ := e.Logs("c")
	lines, _ := ring.Read(0, 0)
	var text []string
	for _, l := range lines {
		text = append(text, l.Source+":"+l.Text)
	}
	if got := strings.Join(text, "|"); !strings.Contains(got, "HEALTH:Container became healthy") || !strings.Contains(got, "HEALTH:health check failed") {
		t.Fatalf("log = %s", got)
	}
}

func TestTaskSucceedsAndResultFileIsRead(t *testing.T) {
	g := newFakeGarden()
	e := newExecutor(t, g, testConfig(t))
	ctx := testCtx(t)
	sub, _ := e.SubscribeToEvents(ctx)
	defer sub.Close()
	allocate(t, e, "task", 10)
	if err := e.RunContainer(ctx, RunRequest{Guid: "task", RunInfo: RunInfo{Action: runAction("exit", "0")}}); err != nil {
		t.Fatal(err)
	}
	if r := nextEvent(t, sub, "task", EventCompleted).Container.RunResult; r != (RunResult{}) {
		t.Fatalf("result = %+v", r)
	}
	g.container("task").set(func(c *fakeContainer) { c.files["/tmp/result"] = "forty-two" })
	b, err := e.ReadFile(ctx, "task", "/tmp/result", 50<<10)
	if err != nil || string(b) != "forty-two" {
		t.Fatalf("ReadFile = %q, %v", b, err)
	}
	if _, err := e.ReadFile(ctx, "task", "/tmp/result", 3); !errors.Is(err, ErrFileTooLarge) {
		t.Fatalf("limit not enforced: %v", err)
	}
	if _, err := e.ReadFile(ctx, "task", "/tmp/none", 10); err == nil {
		t.Fatal("missing file read")
	}
	ring, _ := e.Logs("task")
	if lines, _ := ring.Read(0, 0); len(lines) != 1 || lines[0].Text != "exiting 0" || lines[0].Source != DefaultLogSource {
		t.Fatalf("log = %+v", lines)
	}
}

func TestRestoreAdoptsContainers(t *testing.T) {
	g := newFakeGarden()
	cfg := testConfig(t)
	first := newExecutor(t, g, cfg)
	ctx := testCtx(t)
	sub, _ := first.SubscribeToEvents(ctx)
	allocate(t, first, "running", 100)
	allocate(t, first, "done", 50)
	info := RunInfo{Setup: runAction("exit", "0"), Action: runAction("block"), CheckDefinition: execCheck("check"), Ports: []uint32{8080}}
	if err := first.RunContainer(ctx, RunRequest{Guid: "running", Tags: Tags{"domain": "apps"}, RunInfo: info}); err != nil {
		t.Fatal(err)
	}
	if err := first.RunContainer(ctx, RunRequest{Guid: "done", RunInfo: RunInfo{Action: runAction("exit", "3")}}); err != nil {
		t.Fatal(err)
	}
	waitState(t, first, "running", StateRunning)
	waitState(t, first, "done", StateCompleted)
	// A container another executor owns, and a half-created one of ours.
	g.Create(ctx, garden.ContainerSpec{Handle: "foreign", Properties: garden.Properties{propOwner: "someone-else"}})
	half, _ := g.Create(ctx, garden.ContainerSpec{Handle: "half", Properties: garden.Properties{propOwner: "executor"}})
	half.(*fakeContainer).set(func(c *fakeContainer) { delete(c.props, garden.PropertyState) })
	first.Close()
	for {
		_, err := sub.Next(ctx)
		if err == nil {
			continue // events buffered before the close come first
		}
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("subscription after close: %v", err)
		}
		break
	}
	gc := g.container("running")
	action := gc.process("running-action-0")
	if action.exited() || len(action.gotSignals()) != 0 {
		t.Fatal("closing the executor touched the running process")
	}

	second := newExecutor(t, g, cfg)
	list, _ := second.ListContainers(ctx, nil)
	if len(list) != 2 {
		t.Fatalf("restored %d containers: %+v", len(list), list)
	}
	r, _ := second.GetContainer(ctx, "running")
	if r.State != StateRunning || r.Tags["domain"] != "apps" || r.Resource.MemoryMB != 100 || r.RunInfo.Action.GetRun().GetPath() != "block" ||
		r.InternalIP != "10.254.0.2" || len(r.Ports) != 1 {
		t.Fatalf("restored running container = %+v", r)
	}
	d, _ := second.GetContainer(ctx, "done")
	if d.State != StateCompleted || d.RunResult.FailureReason != "exit status 3" {
		t.Fatalf("restored completed container = %+v", d)
	}
	if rem, _ := second.RemainingResources(ctx); rem.MemoryMB != 1024-150 || rem.Containers != 2 {
		t.Fatalf("remaining after restore = %+v", rem)
	}
	if g.container("half") != nil || g.container("foreign") == nil {
		t.Fatal("restore must destroy our half-created container and leave foreign ones")
	}
	// The restored lifecycle is attached to the same process: its exit
	// completes the container. Setup (done) was not run again.
	deadline := time.Now().Add(10 * time.Second)
	for {
		gc.mu.Lock()
		n := gc.attaches
		gc.mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("restored container never re-attached")
		}
		time.Sleep(time.Millisecond)
	}
	sub2, _ := second.SubscribeToEvents(ctx)
	defer sub2.Close()
	action.exit(9)
	if res := nextEvent(t, sub2, "running", EventCompleted).Container.RunResult; res.FailureReason != "exit status 9" {
		t.Fatalf("restored container result = %+v", res)
	}
	gc.mu.Lock()
	started := len(gc.started)
	gc.mu.Unlock()
	setups := 0
	for _, s := range gc.started[:started] {
		if strings.HasPrefix(s.ID, "running-setup-") {
			setups++
		}
	}
	if setups != 1 {
		t.Fatalf("setup ran %d times, want 1", setups)
	}
}

func TestSubscriptionOverflow(t *testing.T) {
	cfg := testConfig(t)
	cfg.EventBuffer, cfg.MaxContainers = 2, 10
	e := newExecutor(t, newFakeGarden(), cfg)
	ctx := testCtx(t)
	slow, _ := e.SubscribeToEvents(ctx)
	for i := range 3 {
		allocate(t, e, fmt.Sprintf("c%d", i), 1)
	}
	for range 2 {
		if _, err := slow.Next(ctx); err != nil {
			t.Fatalf("buffered event lost: %v", err)
		}
	}
	if _, err := slow.Next(ctx); !errors.Is(err, ErrSubscriptionOverflow) {
		t.Fatalf("err = %v, want overflow", err)
	}
}

func TestConfigValidate(t *testing.T) {
	bad := Config{MemoryMB: -1, ReservedExpiration: -time.Second, Owner: "a b"}
	err := bad.Validate()
	for _, want := range []string{"memory_mb must not be negative", "reserved_expiration must not be negative", "download_cache_dir must be set", "owner must match"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %q", err, want)
		}
	}
	if _, err := New(context.Background(), bad, newFakeGarden()); err == nil {
		t.Fatal("New accepted a bad config")
	}
	// Auto capacity comes from Garden.
	cfg := testConfig(t)
	cfg.MemoryMB, cfg.DiskMB = 0, 0
	e := newExecutor(t, newFakeGarden(), cfg)
	if total, _ := e.TotalResources(context.Background()); total.MemoryMB != 8192 || total.DiskMB != 16384 {
		t.Fatalf("auto total = %+v", total)
	}
}

func BenchmarkAllocateAndDelete(b *testing.B) {
	cfg := testConfig(b)
	cfg.MaxContainers = 250
	e := newExecutor(b, newFakeGarden(), cfg)
	ctx := context.Background()
	for i := range 200 {
		allocate(b, e, fmt.Sprintf("resident-%d", i), 1)
	}
	req := []AllocationRequest{{Guid: "bench", Resource: Resource{MemoryMB: 1, DiskMB: 1}, Tags: Tags{"lifecycle": "lrp", "domain": "apps"}}}
	b.ReportAllocs()
	for b.Loop() {
		if failed, _ := e.AllocateContainers(ctx, req); len(failed) != 0 {
			b.Fatal(failed[0].Err)
		}
		if err := e.DeleteContainer(ctx, "bench"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAllocateBatch100(b *testing.B) {
	cfg := testConfig(b)
	cfg.MaxContainers, cfg.MemoryMB = 250, 1<<20
	e := newExecutor(b, newFakeGarden(), cfg)
	ctx := context.Background()
	reqs := make([]AllocationRequest, 100)
	for i := range reqs {
		reqs[i] = AllocationRequest{Guid: fmt.Sprintf("g-%d", i), Resource: Resource{MemoryMB: 64, DiskMB: 1}}
	}
	b.ReportAllocs()
	for b.Loop() {
		if failed, _ := e.AllocateContainers(ctx, reqs); len(failed) != 0 {
			b.Fatal(failed[0].Err)
		}
		for _, r := range reqs {
			e.DeleteContainer(ctx, r.Guid)
		}
	}
}
