package executor

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gavel-scheduler/gavel/executor/garden"
)

// serveFake puts g behind a real garden.Server on a unix socket and returns
// a real client of it.
func serveFake(t *testing.T, g *fakeGarden) garden.Client {
	t.Helper()
	dir, err := os.MkdirTemp("", "gvl-wire-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "garden.sock")
	srv := garden.NewServer(garden.ServerConfig{Network: "unix", Address: sock}, g, nil)
	signals := make(chan os.Signal, 1)
	ready := make(chan struct{})
	exited := make(chan error, 1)
	go func() { exited <- srv.Run(signals, ready) }()
	select {
	case <-ready:
	case err := <-exited:
		t.Fatalf("garden server: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("garden server not ready")
	}
	t.Cleanup(func() {
		signals <- os.Interrupt
		<-exited
	})
	return garden.NewClient("unix", sock)
}

// TestOverTheWire runs a container's whole life, a restore and a result
// file read through the real Garden client and server (over the fake
// backend): process streams, attach by ID, properties and stream-out.
func TestOverTheWire(t *testing.T) {
	g := newFakeGarden()
	client := serveFake(t, g)
	cfg := testConfig(t)
	ctx := testCtx(t)
	first := newExecutor(t, client, cfg)
	sub, _ := first.SubscribeToEvents(ctx)
	allocate(t, first, "wire", 10)
	if err := first.RunContainer(ctx, RunRequest{Guid: "wire", Tags: Tags{"k": "v"}, RunInfo: RunInfo{
		Setup: runAction("exit", "0"), Action: runAction("block"), CheckDefinition: execCheck("check"), Ports: []uint32{8080},
	}}); err != nil {
		t.Fatal(err)
	}
	running := nextEvent(t, sub, "wire", EventRunning).Container
	if running.InternalIP != "10.254.0.2" || len(running.Ports) != 1 {
		t.Fatalf("running = %+v", running)
	}
	ring, _ := first.Logs("wire")
	if lines, _ := ring.Read(0, 0); len(lines) == 0 || lines[0].Text != "exiting 0" {
		t.Fatalf("setup output did not come through the process stream: %+v", lines)
	}
	// RUNNING waits for the action's process: the restore below is about
	// a process that did start.
	if !g.container("wire").hasProcess("wire-action-0") {
		t.Fatal("RUNNING before the action's process started")
	}
	first.Close()

	second := newExecutor(t, client, cfg)
	c, err := second.GetContainer(ctx, "wire")
	if err != nil || c.State != StateRunning || c.Tags["k"] != "v" {
		t.Fatalf("restored over the wire = %+v, %v", c, err)
	}
	sub2, _ := second.SubscribeToEvents(ctx)
	defer sub2.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		gc := g.container("wire")
		gc.mu.Lock()
		n := gc.attaches
		gc.mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("never re-attached over the wire")
		}
		time.Sleep(time.Millisecond)
	}
	g.container("wire").process("wire-action-0").exit(4)
	if r := nextEvent(t, sub2, "wire", EventCompleted).Container.RunResult; r.FailureReason != "exit status 4" {
		t.Fatalf("result = %+v", r)
	}
	g.container("wire").set(func(c *fakeContainer) { c.files["/tmp/result"] = "over the wire" })
	if b, err := second.ReadFile(ctx, "wire", "/tmp/result", 100); err != nil || string(b) != "over the wire" {
		t.Fatalf("ReadFile = %q, %v", b, err)
	}
	if err := second.DeleteContainer(ctx, "wire"); err != nil {
		t.Fatal(err)
	}
	if _, err := second.GetContainer(ctx, "wire"); !errors.Is(err, ErrContainerNotFound) {
		t.Fatalf("after delete: %v", err)
	}
	if err := client.Destroy(ctx, "wire"); err == nil {
		t.Fatal("garden container still there")
	}
}
