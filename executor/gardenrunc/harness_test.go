package gardenrunc

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gavel-scheduler/gavel/executor/garden"
	"github.com/gavel-scheduler/gavel/internal/roottest"
	"github.com/gavel-scheduler/gavel/internal/testrootfs"
)

// Test host resources: a tag, pool and port range derived from the test
// process's pid, so this package's tests never touch a real server's, and
// two runs at once (two developers, or go test ./... beside a focused run)
// do not collide.
var (
	testSlot      = os.Getpid() % 120
	testTag       = fmt.Sprintf("t%03x", os.Getpid()%4096)
	testPool      = fmt.Sprintf("10.252.%d.0/23", 2*testSlot)
	testPortStart = 40000 + 100*testSlot
)

var (
	testDir    string // holds the rootfs, depot and runc root
	testRootfs string
)

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	if roottest.Check("runc", "iptables", testrootfs.DefaultBusybox) != "" {
		return m.Run() // the integration tests skip or fail themselves
	}
	dir, err := os.MkdirTemp("", "gardenrunc-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	testDir, testRootfs = dir, filepath.Join(dir, "busybox")
	if err := testrootfs.Build(testRootfs, ""); err != nil {
		fmt.Fprintln(os.Stderr, "build busybox rootfs:", err)
		return 1
	}
	code := m.Run()
	// Whatever a failed test left: remove it all.
	b, err := New(testConfig(), nil)
	if err == nil {
		ctx := context.Background()
		if err = b.Start(ctx); err == nil {
			err = b.Teardown(ctx)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "teardown:", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

func testConfig() Config {
	return Config{
		Depot:         filepath.Join(testDir, "depot"),
		RuncRoot:      filepath.Join(testDir, "runc"),
		DefaultRootFS: testRootfs,
		Preloaded:     map[string]string{"busybox": testRootfs},
		ImageStore:    filepath.Join(testDir, "images"),
		NetworkPool:   testPool,
		Tag:           testTag,
		PortPoolStart: testPortStart,
		PortPoolSize:  100,
		StopTimeout:   2 * time.Second,
	}
}

// requireHost gates integration tests.
func requireHost(t testing.TB) {
	t.Helper()
	roottest.Require(t, "runc", "iptables", testrootfs.DefaultBusybox)
}

// server is a running Garden server over the runc backend.
type server struct {
	backend *Backend
	garden  *garden.Server
	client  *garden.HTTPClient
	stop    func()
}

// startServer runs a Garden server on network ("unix" or "tcp") over a
// fresh backend on the shared depot; it stops (leaving containers) at
// the end of the test unless stopped before.
func startServer(t testing.TB, network string, mutate ...func(*Config)) *server {
	t.Helper()
	cfg := testConfig()
	for _, m := range mutate {
		m(&cfg)
	}
	b, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	scfg := garden.ServerConfig{Network: network, Address: "127.0.0.1:0"}
	if network == "unix" {
		scfg.Address = filepath.Join(t.TempDir(), "garden.sock")
	}
	gs := garden.NewServer(scfg, b, nil)
	signals := make(chan os.Signal, 1)
	ready := make(chan struct{})
	errc := make(chan error, 1)
	go func() { errc <- gs.Run(signals, ready) }()
	select {
	case <-ready:
	case err := <-errc:
		t.Fatalf("garden server: %v", err)
	}
	s := &server{backend: b, garden: gs, client: garden.NewClient(network, gs.Addr())}
	stopped := false
	s.stop = func() {
		if stopped {
			return
		}
		stopped = true
		signals <- os.Interrupt
		if err := <-errc; err != nil {
			t.Errorf("garden server: %v", err)
		}
	}
	t.Cleanup(s.stop)
	return s
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// bothNetworks runs an integration test through the API on a unix socket
// and on TCP.
func bothNetworks(t *testing.T, test func(t *testing.T, network string)) {
	for _, network := range []string{"unix", "tcp"} {
		t.Run(network, func(t *testing.T) { test(t, network) })
	}
}
