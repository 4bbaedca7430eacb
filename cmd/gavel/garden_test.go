package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gavel-scheduler/gavel/executor/garden"
	"github.com/gavel-scheduler/gavel/internal/roottest"
	"github.com/gavel-scheduler/gavel/internal/testrootfs"
)

// `gavel garden` serves the Garden API over TCP on 127.0.0.1 with a debug
// address; a container survives a restart of the daemon.
func TestGardenDaemon(t *testing.T) {
	roottest.Require(t, "runc", "iptables", testrootfs.DefaultBusybox)
	dir := t.TempDir()
	rootfs := filepath.Join(dir, "rootfs")
	if err := testrootfs.Build(rootfs, ""); err != nil {
		t.Fatal(err)
	}
	slot := os.Getpid() % 120
	cfgPath := filepath.Join(dir, "garden.yaml")
	yaml := fmt.Sprintf("depot: %s\nrunc_root: %s\ndefault_rootfs: %s\nnetwork_pool: 10.250.%d.0/23\ntag: c%03x\nport_pool_start: %d\nport_pool_size: 100\nlog_level: warn\n",
		filepath.Join(dir, "depot"), filepath.Join(dir, "runc"), rootfs, 2*slot, os.Getpid()%4096, 52000+100*slot)
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	// Whatever the daemon left on the host goes when the test ends.
	t.Cleanup(func() {
		if out, err := exec.Command(gavelBin, "garden", "--config", cfgPath, "--teardown").CombinedOutput(); err != nil {
			t.Errorf("gavel garden --teardown: %v %s", err, out)
		}
	})
	port, debugPort := freePort(t), freePort(t)
	start := func() (*exec.Cmd, *bytes.Buffer) {
		cmd := exec.Command(gavelBin, "garden", "--config", cfgPath, "--bind-ip", "127.0.0.1", "--bind-port", fmt.Sprint(port),
			"--debug-address", fmt.Sprintf("127.0.0.1:%d", debugPort))
		var log bytes.Buffer
		cmd.Stdout, cmd.Stderr = &log, &log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd, &log
	}
	stop := func(cmd *exec.Cmd, log *bytes.Buffer) {
		cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			t.Errorf("gavel garden exit: %v\n%s", err, log.String())
		}
	}
	client := garden.NewClient("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	ctx := context.Background()
	waitPing := func(log *bytes.Buffer) {
		deadline := time.Now().Add(30 * time.Second)
		for client.Ping(ctx) != nil {
			if time.Now().After(deadline) {
				t.Fatalf("gavel garden never answered:\n%s", log.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	cmd, log := start()
	waitPing(log)
	c, err := client.Create(ctx, garden.ContainerSpec{Handle: "daemon-test", Properties: garden.Properties{"owner": "test"}})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	p, err := c.Run(ctx, garden.ProcessSpec{Path: "echo", Args: []string{"from", "gavel", "garden"}}, garden.ProcessIO{Stdout: &out})
	if err != nil {
		t.Fatal(err)
	}
	if code, err := p.Wait(); err != nil || code != 0 || out.String() != "from gavel garden\n" {
		t.Fatalf("echo = %d, %v, %q", code, err, out.String())
	}
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/debug/vars", debugPort))
	if err != nil {
		t.Fatal(err)
	}
	var vars map[string]json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&vars); err != nil || vars["cmdline"] == nil {
		t.Fatalf("/debug/vars: %v", err)
	}
	resp.Body.Close()
	resp, err = http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", debugPort))
	if err != nil {
		t.Fatal(err)
	}
	var metrics bytes.Buffer
	metrics.ReadFrom(resp.Body)
	resp.Body.Close()
	if !strings.Contains(metrics.String(), "gavel_garden_containers 1") {
		t.Fatalf("metrics lack the container gauge:\n%s", metrics.String())
	}
	stop(cmd, log)

	cmd, log = start()
	waitPing(log)
	list, err := client.Containers(ctx, garden.Properties{"owner": "test"})
	if err != nil || len(list) != 1 || list[0].Handle() != "daemon-test" {
		t.Fatalf("after restart: %v, %v", list, err)
	}
	stop(cmd, log)
	// Restarted with --destroy-containers-on-startup, the depot is wiped.
	cmd = exec.Command(gavelBin, "garden", "--config", cfgPath, "--bind-ip", "127.0.0.1", "--bind-port", fmt.Sprint(port), "--debug-address", "", "--destroy-containers-on-startup")
	var wipeLog bytes.Buffer
	cmd.Stdout, cmd.Stderr = &wipeLog, &wipeLog
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer stop(cmd, &wipeLog)
	waitPing(&wipeLog)
	if list, err := client.Containers(ctx, nil); err != nil || len(list) != 0 {
		t.Fatalf("after --destroy-containers-on-startup: %v, %v", list, err)
	}
	depot, _ := os.ReadDir(filepath.Join(dir, "depot"))
	for _, e := range depot {
		if !strings.HasPrefix(e.Name(), ".") {
			t.Errorf("depot still holds %s", e.Name())
		}
	}
}

func TestGardenDaemonRefusesBadConfig(t *testing.T) {
	out, err := exec.Command(gavelBin, "garden", "--bind-socket", "relative.sock").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "bind_socket") {
		t.Fatalf("gavel garden --bind-socket relative.sock: %v %s", err, out)
	}
	out, err = exec.Command(gavelBin, "garden", "--network-pool", "nonsense").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "network-pool") {
		t.Fatalf("gavel garden --network-pool nonsense: %v %s", err, out)
	}
}
