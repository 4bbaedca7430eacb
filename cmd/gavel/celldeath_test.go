package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gavel-scheduler/gavel/executor/gardenrunc"
	"github.com/gavel-scheduler/gavel/internal/roottest"
	"github.com/gavel-scheduler/gavel/internal/testrootfs"
)

// cellProcs is one cell run as separate processes: `gavel garden` and
// `gavel rep`, so that it can be killed on its own.
type cellProcs struct {
	id, dir, socket string
	garden, rep     *devProcess
}

// cellGarden is the Garden configuration of cell n.
func cellGarden(n int, dir, rootfs string) gardenrunc.Config {
	return gardenrunc.Config{
		Depot: filepath.Join(dir, "depot"), RuncRoot: filepath.Join(dir, "runc"), DefaultRootFS: rootfs,
		Preloaded: map[string]string{"busybox": rootfs}, NetworkPool: fmt.Sprintf("10.250.%d.0/24", n),
		Tag: fmt.Sprintf("gkc%d", n), ExternalIP: "127.0.0.1", PortPoolStart: 63200 + 100*n, PortPoolSize: 100,
		StopTimeout: 2 * time.Second,
	}
}

// startCellProcs starts (or restarts, over the same depot) cell n.
func startCellProcs(t testing.TB, home, bbs, gossip, rootfs string, n int, dir string) *cellProcs {
	t.Helper()
	c := &cellProcs{id: fmt.Sprintf("cell-%d", n), dir: dir, socket: filepath.Join(dir, "garden.sock")}
	g := cellGarden(n, dir, rootfs)
	c.garden = startProc(t, c.id+"-garden", "garden", "--bind-socket", c.socket,
		"--depot", g.Depot, "--runc-root", g.RuncRoot, "--default-rootfs", rootfs, "--preloaded", "busybox="+rootfs,
		"--network-pool", g.NetworkPool, "--tag", g.Tag, "--external-ip", g.ExternalIP,
		"--port-pool-start", fmt.Sprint(g.PortPoolStart), "--port-pool-size", fmt.Sprint(g.PortPoolSize),
		"--stop-timeout", "2s", "--debug-address", "")
	pollUntil(t, c.id+" garden socket", 60*time.Second, func() bool { _, err := os.Stat(c.socket); return err == nil })
	c.rep = startRep(t, home, bbs, gossip, c.id, c.socket, filepath.Join(dir, "cache"))
	return c
}

// startProc runs a gavel subcommand, killed at the end of the test.
func startProc(t testing.TB, name string, args ...string) *devProcess {
	t.Helper()
	cmd := exec.Command(gavelBin, args...)
	log := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &devProcess{cmd: cmd, log: log}
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			left := descendants(p.cmd.Process.Pid)
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			_ = p.cmd.Wait()
			reapLater(left)
		}
		if t.Failed() {
			t.Logf("%s log:\n%s", name, log.String())
		}
	})
	return p
}

// kill sends SIGKILL and reaps what the process leaves to this one.
func (p *devProcess) kill(t testing.TB) {
	t.Helper()
	left := descendants(p.cmd.Process.Pid)
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = p.cmd.Wait()
	reapLater(left)
}

// TestCellDeathIsRepaired: 3 cells as separate processes, an LRP of 6;
// SIGKILL of one cell's rep and Garden server. The converger replaces the
// lost instances on the other cells (kept as SUSPECT until then), no index
// ever runs twice outside SUSPECT, and the killed cell, restarted, has its
// leftovers cleaned.
func TestCellDeathIsRepaired(t *testing.T) {
	roottest.Require(t, "runc", "iptables", "busybox")
	home := t.TempDir()
	bbs := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	gossip := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	dev := startDev(t, home, []string{
		"--bbs-address", bbs, "--auctioneer-address", fmt.Sprintf("127.0.0.1:%d", freePort(t)), "--gossip-address", gossip,
		"--route-emitter-address", fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		"--etcd-client-url", fmt.Sprintf("http://127.0.0.1:%d", freePort(t)), "--etcd-peer-url", fmt.Sprintf("http://127.0.0.1:%d", freePort(t)),
		"--debug-address", fmt.Sprintf("127.0.0.1:%d", freePort(t)), "--cells", "0",
	})
	waitForCLI(t, home, dev)
	c := &devCluster{t: t, home: home, proc: dev}
	rootfs := filepath.Join(t.TempDir(), "rootfs")
	if err := testrootfs.Build(rootfs, ""); err != nil {
		t.Fatal(err)
	}
	base := t.TempDir()
	// Registered first, so it runs last: once every process has stopped,
	// destroy what the cells' Garden servers left (containers outlive
	// their server) and their networks.
	t.Cleanup(func() {
		for n := 1; n <= 3; n++ {
			teardownGarden(t, cellGarden(n, filepath.Join(base, fmt.Sprintf("cell-%d", n)), rootfs))
		}
	})
	cells := make([]*cellProcs, 3)
	for i := range cells {
		cells[i] = startCellProcs(t, home, bbs, gossip, rootfs, i+1, filepath.Join(base, fmt.Sprintf("cell-%d", i+1)))
	}
	pollUntil(t, "3 cells present", 60*time.Second, func() bool { return strings.Count(c.gavel("cells"), `"cell_id"`) == 3 })

	c.gavel("create-desired-lrp", "--wait", `{"process_guid":"six","domain":"apps","instances":6,"rootfs":"preloaded:busybox",
	  "memory_mb":32,"disk_mb":32,"ports":[8080],
	  "action":{"run":{"path":"/bin/sh","args":["-c","mkdir -p /www && echo $INSTANCE_INDEX > /www/index.html && exec httpd -f -p 8080 -h /www"],"user":"root"}},
	  "check_definition":{"checks":[{"http_check":{"port":8080,"path":"/"}}]}}`)
	var before map[int32]actual
	pollUntil(t, "6 RUNNING instances", 60*time.Second, func() bool { before = running(c.actuals("six"), 6); return before != nil })
	victim := cells[0]
	var lost []int32
	for i, a := range before {
		if a.Instance.CellID == victim.id {
			lost = append(lost, i)
		}
	}
	if len(lost) == 0 {
		t.Fatalf("no instance on %s: %+v", victim.id, before)
	}

	victim.rep.kill(t)
	victim.garden.kill(t)
	killed := time.Now()
	// Until every lost index runs elsewhere: never two ORDINARY RUNNING
	// rows for one index (the old one turns SUSPECT first).
	var after map[int32]actual
	pollUntil(t, "the lost instances RUNNING on the other cells", 90*time.Second, func() bool {
		list := c.actuals("six")
		ordinaryRunning := map[int32]int{}
		for _, a := range list {
			if (a.Presence == "" || a.Presence == "ORDINARY") && a.State == "RUNNING" {
				ordinaryRunning[a.Key.Index]++
			}
		}
		for i, n := range ordinaryRunning {
			if n > 1 {
				t.Fatalf("index %d runs twice outside SUSPECT: %+v", i, list)
			}
		}
		now := map[int32]actual{}
		for _, a := range list {
			if (a.Presence == "" || a.Presence == "ORDINARY") && a.State == "RUNNING" {
				now[a.Key.Index] = a
			}
		}
		if len(now) != 6 {
			return false
		}
		for _, i := range lost {
			if now[i].Instance.CellID == victim.id {
				return false
			}
		}
		after = now
		return true
	})
	t.Logf("cell death to every replacement RUNNING: %s (presence TTL 15s)", time.Since(killed).Round(100*time.Millisecond))
	for i, a := range after {
		if code, _ := get(a.url()); code != 200 {
			t.Fatalf("instance %d at %s answers %d", i, a.url(), code)
		}
	}

	// The killed cell comes back: its old containers (restored by its
	// Garden server) are not the instances any more, and go.
	victim = startCellProcs(t, home, bbs, gossip, rootfs, 1, victim.dir)
	cells[0] = victim
	pollUntil(t, "the returned cell to clean its leftovers", 90*time.Second, func() bool {
		st, err := gavel(t, home, "cell-state", victim.id)
		if err != nil || strings.Contains(st, `"process_guid":"six"`) {
			return false
		}
		for _, a := range c.actuals("six") {
			if a.Instance.CellID == victim.id || a.Presence == "SUSPECT" {
				return false
			}
		}
		return len(c.actuals("six")) == 6
	})
	if now := running(c.actuals("six"), 6); now == nil {
		t.Fatalf("after the cell's return: %+v", c.actuals("six"))
	}
	c.gavel("delete-desired-lrp", "six")
	pollUntil(t, "the instances to go", 60*time.Second, func() bool { return len(c.actuals("six")) == 0 })
}

// teardownGarden restores a stopped Garden server's containers from its
// depot and destroys them, with its bridge and chains.
func teardownGarden(t testing.TB, cfg gardenrunc.Config) {
	backend, err := gardenrunc.New(cfg, nil)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err = backend.Start(ctx); err == nil {
			err = backend.Teardown(ctx)
		}
	}
	if err != nil {
		t.Errorf("teardown of garden %s: %v", cfg.Tag, err)
	}
}
