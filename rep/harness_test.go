package rep

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/gavel-scheduler/gavel/executor"
	"github.com/gavel-scheduler/gavel/executor/garden"
	"github.com/gavel-scheduler/gavel/internal/gardentest"
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
	sock := gardentest.Start(t, gardentest.Options{Tag: o.tag, NetworkPool: o.pool, PortPoolStart: o.portStart})
	cache := t.TempDir()
	exec, err := executor.New(context.Background(), executor.Config{MemoryMB: 64000, DiskMB: 64000, MaxContainers: o.containers,
		Owner: o.tag, DownloadCacheDir: cache, Logger: quietLogger()}, garden.NewClient("unix", sock))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(exec.Close)
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
