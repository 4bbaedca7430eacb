package rep

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gavel-scheduler/gavel/executor"
	"github.com/gavel-scheduler/gavel/executor/garden"
	"github.com/gavel-scheduler/gavel/executor/gardenrunc"
	"github.com/gavel-scheduler/gavel/internal/testrootfs"
)

// runcOptions name the host resources of one test's Garden server, so
// tests and benchmarks running at once do not share any.
type runcOptions struct {
	tag        string
	pool       string
	portStart  int
	containers int
}

// startRuncExecutor runs a Garden server over runc (busybox rootfs as
// preloaded:busybox) on a unix socket and an executor over it, until the
// test ends.
func startRuncExecutor(t testing.TB, o runcOptions) *executor.Executor {
	t.Helper()
	dir, err := os.MkdirTemp("", "gvl-rep-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	rootfs := filepath.Join(dir, "rootfs")
	if err := testrootfs.Build(rootfs, ""); err != nil {
		t.Fatal(err)
	}
	backend, err := gardenrunc.New(gardenrunc.Config{
		Depot: filepath.Join(dir, "depot"), RuncRoot: filepath.Join(dir, "runc"), DefaultRootFS: rootfs,
		Preloaded: map[string]string{"busybox": rootfs}, Tag: o.tag, NetworkPool: o.pool, ExternalIP: "127.0.0.1",
		PortPoolStart: o.portStart, PortPoolSize: 100, StopTimeout: 2 * time.Second,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "garden.sock")
	srv := garden.NewServer(garden.ServerConfig{Network: "unix", Address: sock}, backend, nil)
	signals, ready, done := make(chan os.Signal, 1), make(chan struct{}), make(chan error, 1)
	go func() { done <- srv.Run(signals, ready) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatal(err)
	}
	exec, err := executor.New(context.Background(), executor.Config{MemoryMB: 64000, DiskMB: 64000, MaxContainers: o.containers,
		Owner: o.tag, DownloadCacheDir: filepath.Join(dir, "cache"), Logger: quietLogger()}, garden.NewClient("unix", sock))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		exec.Close()
		signals <- os.Interrupt
		<-done
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		if err := backend.Teardown(ctx); err != nil {
			t.Errorf("garden teardown: %v", err)
		}
	})
	return exec
}

// startCellRunner runs the cell's reconciliation until stop is called or
// the test ends.
func startCellRunner(t testing.TB, cell *Cell) (stop func(), err error) {
	signals, ready, done := make(chan os.Signal, 1), make(chan struct{}), make(chan error, 1)
	go func() { done <- cell.Run(signals, ready) }()
	select {
	case <-ready:
	case err := <-done:
		return nil, fmt.Errorf("cell: %w", err)
	}
	var once sync.Once
	stop = func() { once.Do(func() { signals <- os.Interrupt; <-done }) }
	t.Cleanup(stop)
	return stop, nil
}
