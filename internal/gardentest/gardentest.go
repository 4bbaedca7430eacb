// Package gardentest runs gavel's Garden server on runc inside a test
// process: a busybox rootfs built from Debian's busybox-static (the default
// rootfs, and preloaded:busybox), a unix socket, and at cleanup every
// container, the bridge and the iptables chains removed. Tests that use it
// need root, runc, iptables and busybox: they skip without them, or fail
// when GAVEL_REQUIRE_ROOT=1.
package gardentest

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gavel-scheduler/gavel/executor/garden"
	"github.com/gavel-scheduler/gavel/executor/gardenrunc"
	"github.com/gavel-scheduler/gavel/internal/roottest"
	"github.com/gavel-scheduler/gavel/internal/testrootfs"
)

// Options name the host resources of one server, so that tests running at
// once share none: the tag prefixing its bridge, veths and chains, its
// address pool and the first of its 100 host ports.
type Options struct {
	Tag           string
	NetworkPool   string
	PortPoolStart int
}

// Start runs the server until the test ends and returns its socket path.
func Start(tb testing.TB, o Options) string {
	tb.Helper()
	roottest.Require(tb, "runc", "iptables", "busybox")
	dir, err := os.MkdirTemp("", "gvl-"+o.Tag+"-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	rootfs := filepath.Join(dir, "rootfs")
	if err := testrootfs.Build(rootfs, ""); err != nil {
		tb.Fatal(err)
	}
	backend, err := gardenrunc.New(gardenrunc.Config{
		Depot: filepath.Join(dir, "depot"), RuncRoot: filepath.Join(dir, "runc"), DefaultRootFS: rootfs,
		Preloaded: map[string]string{"busybox": rootfs}, Tag: o.Tag, NetworkPool: o.NetworkPool, ExternalIP: "127.0.0.1",
		PortPoolStart: o.PortPoolStart, PortPoolSize: 100, StopTimeout: 2 * time.Second,
	}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	sock := filepath.Join(dir, "garden.sock")
	srv := garden.NewServer(garden.ServerConfig{Network: "unix", Address: sock}, backend, nil)
	signals, ready, done := make(chan os.Signal, 1), make(chan struct{}), make(chan error, 1)
	go func() { done <- srv.Run(signals, ready) }()
	select {
	case <-ready:
	case err := <-done:
		tb.Fatalf("garden server: %v", err)
	case <-time.After(60 * time.Second):
		tb.Fatal("garden server not ready")
	}
	tb.Cleanup(func() {
		signals <- os.Interrupt
		<-done
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		if err := backend.Teardown(ctx); err != nil {
			tb.Errorf("garden teardown: %v", err)
		}
	})
	return sock
}
