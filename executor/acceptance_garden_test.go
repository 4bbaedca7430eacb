package executor_test

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

// startGarden runs the runc-backed Garden server on a unix socket over a
// fresh busybox rootfs and returns a client. Everything it made is
// destroyed at cleanup.
func startGarden(t *testing.T) garden.Client {
	roottest.Require(t, "runc", "iptables", "busybox")
	dir, err := os.MkdirTemp("", "gvl-exec-")
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
		Tag: "gvx", NetworkPool: "10.254.40.0/24", PortPoolStart: 62001, PortPoolSize: 100, StopTimeout: 2 * time.Second,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "garden.sock")
	srv := garden.NewServer(garden.ServerConfig{Network: "unix", Address: sock}, backend, nil)
	signals := make(chan os.Signal, 1)
	ready := make(chan struct{})
	exited := make(chan error, 1)
	go func() { exited <- srv.Run(signals, ready) }()
	select {
	case <-ready:
	case err := <-exited:
		t.Fatalf("garden server: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("garden server not ready")
	}
	client := garden.NewClient("unix", sock)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if list, err := client.Containers(ctx, garden.Properties{garden.PropertyState: garden.StateAll}); err == nil {
			for _, c := range list {
				client.Destroy(ctx, c.Handle())
			}
		}
		signals <- os.Interrupt
		<-exited
		if err := backend.Teardown(ctx); err != nil {
			t.Errorf("garden teardown: %v", err)
		}
	})
	return client
}
