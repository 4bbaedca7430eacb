package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/gavel-scheduler/gavel/internal/gardentest"
	"github.com/gavel-scheduler/gavel/internal/roottest"
)

// devCluster is a `gavel dev` with real cells (Garden on runc), reached
// through the CLI as a user would.
type devCluster struct {
	t            testing.TB
	home         string
	proc         *devProcess
	routeEmitter string
}

func startDevCells(t testing.TB, cells int) *devCluster {
	t.Helper()
	roottest.Require(t, "runc", "iptables", "busybox")
	home := t.TempDir()
	emitter := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	args := []string{
		"--bbs-address", fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		"--auctioneer-address", fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		"--route-emitter-address", emitter,
		"--gossip-address", fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		"--etcd-client-url", fmt.Sprintf("http://127.0.0.1:%d", freePort(t)),
		"--etcd-peer-url", fmt.Sprintf("http://127.0.0.1:%d", freePort(t)),
		"--debug-address", fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		"--cells", fmt.Sprint(cells), "--rep-poll-interval", "2s", "--destroy-on-exit",
	}
	c := &devCluster{t: t, home: home, routeEmitter: emitter}
	c.proc = startDev(t, home, args)
	waitForCLI(t, home, c.proc)
	pollUntil(t, "every cell present", 60*time.Second, func() bool {
		out, err := gavel(t, home, "cells")
		return err == nil && strings.Count(out, `"cell_id"`) == cells
	})
	return c
}

// gavel runs the CLI and fails the test on error.
func (c *devCluster) gavel(args ...string) string {
	c.t.Helper()
	out, err := gavel(c.t, c.home, args...)
	if err != nil {
		c.t.Fatalf("gavel %s: %v\n%s\n--- gavel dev log ---\n%s", strings.Join(args, " "), err, out, c.proc.log.String())
	}
	return out
}

type actual struct {
	Key struct {
		ProcessGuid string `json:"process_guid"`
		Index       int32  `json:"index"`
	} `json:"actual_lrp_key"`
	Instance struct {
		InstanceGuid string `json:"instance_guid"`
		CellID       string `json:"cell_id"`
	} `json:"actual_lrp_instance_key"`
	Net struct {
		Address string `json:"address"`
		Ports   []struct {
			ContainerPort uint32 `json:"container_port"`
			HostPort      uint32 `json:"host_port"`
		} `json:"ports"`
	} `json:"actual_lrp_net_info"`
	State          string            `json:"state"`
	Presence       string            `json:"presence"`
	CrashCount     int32             `json:"crash_count"`
	PlacementError string            `json:"placement_error"`
	MetricTags     map[string]string `json:"metric_tags"`
}

func (a actual) url() string {
	if len(a.Net.Ports) == 0 {
		return ""
	}
	return fmt.Sprintf("http://%s:%d/", a.Net.Address, a.Net.Ports[0].HostPort)
}

func (c *devCluster) actuals(guid string) []actual {
	c.t.Helper()
	out, err := gavel(c.t, c.home, "actual-lrps", "-p", guid)
	if err != nil {
		return nil
	}
	var list []actual
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var a actual
		if err := json.Unmarshal([]byte(line), &a); err != nil {
			c.t.Fatalf("actual-lrps line %q: %v", line, err)
		}
		list = append(list, a)
	}
	return list
}

// running returns the RUNNING ordinary instances by index once exactly n
// are running (and no other ordinary row exists), else nil.
func running(list []actual, n int) map[int32]actual {
	out := map[int32]actual{}
	for _, a := range list {
		if a.Presence != "" && a.Presence != "ORDINARY" { // JSON leaves the default out
			continue
		}
		if a.State != "RUNNING" {
			return nil
		}
		out[a.Key.Index] = a
	}
	if len(out) != n {
		return nil
	}
	return out
}

func get(url string) (int, string) {
	client := http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// hostPorts lists the instances' host:port, sorted.
func hostPorts(inst map[int32]actual) []string {
	var out []string
	for _, a := range inst {
		out = append(out, fmt.Sprintf("%s:%d", a.Net.Address, a.Net.Ports[0].HostPort))
	}
	slices.Sort(out)
	return out
}

// pidOf finds the host pid of the process of an instance: the one whose
// environment carries its instance guid and whose command is name.
func pidOf(t *testing.T, instanceGuid, name string) int {
	t.Helper()
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		env, err := os.ReadFile(p + "/environ")
		if err != nil || !strings.Contains(string(env), "INSTANCE_GUID="+instanceGuid+"\x00") {
			continue
		}
		comm, _ := os.ReadFile(p + "/comm")
		if strings.TrimSpace(string(comm)) != name {
			continue
		}
		var pid int
		fmt.Sscanf(filepath.Base(p), "%d", &pid)
		return pid
	}
	return 0
}

// TestWalkthrough is the README's walkthrough: desire a busybox httpd LRP
// of 3 instances on 2 cells, reach one, scale to 5, kill a container's
// process and see it restart, evacuate a cell without downtime, delete it.
func TestWalkthrough(t *testing.T) {
	c := startDevCells(t, 2)
	xds := watchXDS(t, c.home, c.routeEmitter)
	lrp, err := os.ReadFile("../../manifests/examples/busybox-httpd-lrp.json")
	if err != nil {
		t.Fatal(err)
	}
	out := c.gavel("create-desired-lrp", "--wait", "-o", "table", string(lrp))
	if !strings.Contains(out, "web: all 3 instances running") {
		t.Fatalf("create --wait said:\n%s", out)
	}
	var inst map[int32]actual
	pollUntil(t, "3 RUNNING instances", 60*time.Second, func() bool { inst = running(c.actuals("web"), 3); return inst != nil })
	cells := map[string]int{}
	for _, a := range inst {
		cells[a.Instance.CellID]++
	}
	if len(cells) != 2 {
		t.Fatalf("instances on %v: want both cells", cells)
	}
	for i, a := range inst {
		if code, body := get(a.url()); code != 200 || strings.TrimSpace(body) != fmt.Sprintf("hello from instance %d", i) {
			t.Fatalf("instance %d at %s: %d %q", i, a.url(), code, body)
		}
		if len(a.MetricTags) != 1 || a.MetricTags["index"] != fmt.Sprint(i) { // metric_tags index: dynamic INDEX
			t.Fatalf("instance %d metric tags %v", i, a.MetricTags)
		}
	}
	// The route emitter serves them to Envoy (an ADS client here): the
	// HTTP listener, the web.gavel.local virtual host, and one endpoint
	// per instance.
	pollUntil(t, "xDS to carry the 3 endpoints and the route", 30*time.Second, func() bool {
		return slices.Equal(xds.addresses("web"), hostPorts(inst)) && xds.hasVirtualHost("web.gavel.local")
	})
	if routes := c.gavel("routes", "-o", "table"); !strings.Contains(routes, "web.gavel.local") {
		t.Fatalf("gavel routes:\n%s", routes)
	}
	cdsBefore, ldsBefore := xds.count(resource.ClusterType), xds.count(resource.ListenerType)

	// Scale to 5.
	c.gavel("update-desired-lrp", "web", `{"instances":5}`)
	pollUntil(t, "5 RUNNING instances", 60*time.Second, func() bool { inst = running(c.actuals("web"), 5); return inst != nil })
	pollUntil(t, "xDS to carry the 5 endpoints", 30*time.Second, func() bool { return slices.Equal(xds.addresses("web"), hostPorts(inst)) })

	// Kill the process of instance 2: it crashes and is restarted at once.
	victim := inst[2]
	pid := pidOf(t, victim.Instance.InstanceGuid, "httpd")
	if pid == 0 {
		t.Fatalf("no httpd process for instance 2 (%s)", victim.Instance.InstanceGuid)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, "instance 2 restarted after its crash", 60*time.Second, func() bool {
		inst = running(c.actuals("web"), 5)
		return inst != nil && inst[2].CrashCount == 1 && inst[2].Instance.InstanceGuid != victim.Instance.InstanceGuid
	})
	if code, _ := get(inst[2].url()); code != 200 {
		t.Fatalf("restarted instance 2 answers %d", code)
	}
	pollUntil(t, "xDS to swap the crashed endpoint for the restarted one", 30*time.Second, func() bool {
		return slices.Equal(xds.addresses("web"), hostPorts(inst))
	})
	if xds.count(resource.ClusterType) != cdsBefore || xds.count(resource.ListenerType) != ldsBefore {
		t.Fatalf("endpoint changes touched CDS/LDS: clusters %d->%d, listeners %d->%d",
			cdsBefore, xds.count(resource.ClusterType), ldsBefore, xds.count(resource.ListenerType))
	}

	// Evacuate the cell with the most instances, polling the app all
	// along: every index must answer through some instance at every poll.
	cells = map[string]int{}
	for _, a := range inst {
		cells[a.Instance.CellID]++
	}
	evacuated := "cell-1"
	if cells["cell-2"] > cells["cell-1"] {
		evacuated = "cell-2"
	}
	// Like a router, the poller keeps a view of the RUNNING instances
	// (refreshed all along) and polls the app often through it; an index
	// that does not answer is retried once on a fresh view before it
	// counts as downtime.
	var polls, gaps int
	var gapLog []string
	var mu sync.Mutex
	view := c.actuals("web")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			fresh := c.actuals("web")
			mu.Lock()
			view = fresh
			mu.Unlock()
		}
	})
	serving := func(list []actual) map[int32]bool {
		up := map[int32]bool{}
		for _, a := range list {
			if a.State == "RUNNING" && !up[a.Key.Index] {
				if code, _ := get(a.url()); code == 200 {
					up[a.Key.Index] = true
				}
			}
		}
		return up
	}
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			mu.Lock()
			list := view
			mu.Unlock()
			up := serving(list)
			if len(up) < 5 {
				up = serving(c.actuals("web"))
			}
			polls++
			if len(up) < 5 {
				gaps++
				gapLog = append(gapLog, fmt.Sprintf("poll %d: serving %v", polls, up))
			}
		}
	})
	c.gavel("evacuate", evacuated)
	pollUntil(t, "every instance off "+evacuated, 90*time.Second, func() bool {
		inst = running(c.actuals("web"), 5)
		if inst == nil {
			return false
		}
		for _, a := range inst {
			if a.Instance.CellID == evacuated {
				return false
			}
		}
		return len(c.actuals("web")) == 5 // no EVACUATING rows left
	})
	close(stop)
	wg.Wait()
	t.Logf("evacuation of %s: %d polls of the app, %d with an index not answering", evacuated, polls, gaps)
	if gaps > 0 || polls < 20 {
		t.Fatalf("downtime during evacuation (%d polls):\n%s", polls, strings.Join(gapLog, "\n"))
	}
	states := c.gavel("cell-state", evacuated)
	if !strings.Contains(states, `"evacuating":true`) || strings.Contains(states, `"lrps"`) {
		t.Fatalf("evacuated cell state: %s", states)
	}

	// Delete: every instance and container goes.
	c.gavel("delete-desired-lrp", "web")
	pollUntil(t, "no instance left", 60*time.Second, func() bool { return len(c.actuals("web")) == 0 })
	pollUntil(t, "no container left", 60*time.Second, func() bool {
		out := c.gavel("cell-states")
		return !strings.Contains(out, `"lrps"`)
	})
	for _, a := range inst {
		if code, _ := get(a.url()); code == 200 {
			t.Fatalf("instance %d still answers at %s after the delete", a.Key.Index, a.url())
		}
	}
}

// TestTasksAndPlacementErrors: a task's result reaches its callback; a
// failing task fails with the reason; a cancelled task's container is
// gone; an LRP too big for any cell shows the placement error.
func TestTasksAndPlacementErrors(t *testing.T) {
	c := startDevCells(t, 1)
	results := make(chan map[string]any, 4)
	srv := http.Server{Addr: fmt.Sprintf("127.0.0.1:%d", freePort(t)), Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		_ = json.NewDecoder(r.Body).Decode(&body)
		results <- body
	})}
	go func() { _ = srv.ListenAndServe() }()
	t.Cleanup(func() { srv.Close() })

	c.gavel("create-task", fmt.Sprintf(`{"task_guid":"answer","domain":"jobs","task_definition":{"rootfs":"preloaded:busybox",
	  "result_file":"/tmp/result","completion_callback_url":"http://%s/done",
	  "action":{"run":{"path":"/bin/sh","args":["-c","echo 42 > /tmp/result"],"user":"root"}}}}`, srv.Addr))
	select {
	case body := <-results:
		if body["task_guid"] != "answer" || body["failed"] == true || body["result"] != "42\n" {
			t.Fatalf("callback got %v", body)
		}
	case <-time.After(90 * time.Second):
		t.Fatalf("no callback\n%s", c.proc.log.String())
	}

	c.gavel("create-task", `{"task_guid":"fails","domain":"jobs","task_definition":{"rootfs":"preloaded:busybox",
	  "action":{"run":{"path":"/bin/sh","args":["-c","exit 3"],"user":"root"}}}}`)
	pollUntil(t, "the failing task to complete", 60*time.Second, func() bool {
		out := c.gavel("task", "fails")
		return strings.Contains(out, `"state":"COMPLETED"`)
	})
	if out := c.gavel("task", "fails"); !strings.Contains(out, `"failed":true`) || !strings.Contains(out, "exit status 3") {
		t.Fatalf("failing task: %s", out)
	}

	c.gavel("create-task", `{"task_guid":"sleeper","domain":"jobs","task_definition":{"rootfs":"preloaded:busybox",
	  "action":{"run":{"path":"/bin/sleep","args":["600"],"user":"root"}}}}`)
	pollUntil(t, "the sleeper to run", 60*time.Second, func() bool {
		return strings.Contains(c.gavel("task", "sleeper"), `"state":"RUNNING"`) && strings.Contains(c.gavel("cell-state", "cell-1"), `"task_guid":"sleeper"`)
	})
	c.gavel("cancel-task", "sleeper")
	pollUntil(t, "the cancelled task's container to go", 60*time.Second, func() bool {
		return !strings.Contains(c.gavel("cell-state", "cell-1"), `"task_guid":"sleeper"`)
	})
	if out := c.gavel("task", "sleeper"); !strings.Contains(out, "task was cancelled") {
		t.Fatalf("cancelled task: %s", out)
	}

	c.gavel("create-desired-lrp", `{"process_guid":"huge","domain":"apps","instances":2,"rootfs":"preloaded:busybox","memory_mb":1000000,
	  "action":{"run":{"path":"/bin/sleep","args":["600"]}}}`)
	pollUntil(t, "the placement error on every instance", 60*time.Second, func() bool {
		list := c.actuals("huge")
		for _, a := range list {
			if a.State != "UNCLAIMED" || a.PlacementError != "insufficient resources: memory on 1 cell" {
				return false
			}
		}
		return len(list) == 2
	})
	// --wait says why it cannot come up.
	out, err := gavel(t, c.home, "create-desired-lrp", "--wait", "-o", "table",
		`{"process_guid":"huge2","domain":"apps","instances":1,"rootfs":"preloaded:busybox","memory_mb":1000000,"action":{"run":{"path":"/bin/sleep","args":["600"]}}}`)
	if err == nil || !strings.Contains(out, "instance 0 cannot be placed: insufficient resources: memory on 1 cell") {
		t.Fatalf("create --wait of an unplaceable LRP: %v\n%s", err, out)
	}
}

// startGarden runs a Garden server on runc in the test process, on a unix
// socket, torn down (containers, bridge, chains) at the end.
func startGarden(t testing.TB, tag, pool string, ports int) string {
	t.Helper()
	return gardentest.Start(t, gardentest.Options{Tag: tag, NetworkPool: pool, PortPoolStart: ports})
}

// startRep runs `gavel rep` for one cell against the dev control plane.
func startRep(t testing.TB, home, bbs, gossipSeed, cellID, gardenSock, cacheDir string) *devProcess {
	t.Helper()
	certs := filepath.Join(home, ".gavel", "dev", "certs")
	cmd := exec.Command(gavelBin, "rep", "--cell-id", cellID, "--zone", "z9",
		"--listen-address", "127.0.0.1:0", "--debug-address", "", "--bbs-address", bbs,
		"--ca-cert", filepath.Join(certs, "ca.crt"), "--cert", filepath.Join(certs, "rep.crt"), "--key", filepath.Join(certs, "rep.key"),
		"--garden-address", gardenSock, "--memory-mb", "2048", "--disk-mb", "8192", "--cache-dir", cacheDir,
		"--gossip-join", gossipSeed, "--gossip-local", "--poll-interval", "2s", "--log-level", "debug")
	log := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &devProcess{cmd: cmd, log: log}
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			_ = p.cmd.Wait()
		}
		if t.Failed() {
			t.Logf("rep %s log:\n%s", cellID, log.String())
		}
	})
	return p
}

// TestRepKillAndRestartAdoptsEverything: kill -9 of a rep while its
// instances run, then a new rep: every instance is adopted, none is lost
// or duplicated, and the BBS agrees with the cell.
func TestRepKillAndRestartAdoptsEverything(t *testing.T) {
	roottest.Require(t, "runc", "iptables", "busybox")
	home := t.TempDir()
	bbs := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	gossipSeed := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	dev := startDev(t, home, []string{
		"--bbs-address", bbs, "--auctioneer-address", fmt.Sprintf("127.0.0.1:%d", freePort(t)), "--gossip-address", gossipSeed,
		"--route-emitter-address", fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		"--etcd-client-url", fmt.Sprintf("http://127.0.0.1:%d", freePort(t)), "--etcd-peer-url", fmt.Sprintf("http://127.0.0.1:%d", freePort(t)),
		"--debug-address", fmt.Sprintf("127.0.0.1:%d", freePort(t)), "--cells", "0",
	})
	waitForCLI(t, home, dev)
	c := &devCluster{t: t, home: home, proc: dev}
	sock := startGarden(t, "gvr", "10.252.0.0/24", 63000)
	cache := t.TempDir()
	rep1 := startRep(t, home, bbs, gossipSeed, "cell-k", sock, cache)
	pollUntil(t, "the rep's presence", 60*time.Second, func() bool { return strings.Contains(c.gavel("cells"), `"cell_id":"cell-k"`) })

	lrp, err := os.ReadFile("../../manifests/examples/busybox-httpd-lrp.json")
	if err != nil {
		t.Fatal(err)
	}
	c.gavel("create-desired-lrp", "--wait", string(lrp))
	var before map[int32]actual
	pollUntil(t, "3 RUNNING instances", 60*time.Second, func() bool { before = running(c.actuals("web"), 3); return before != nil })

	if err := rep1.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = rep1.cmd.Wait()
	// The containers outlive their rep.
	for i, a := range before {
		if code, _ := get(a.url()); code != 200 {
			t.Fatalf("instance %d stopped answering when its rep died: %d", i, code)
		}
	}
	rep2 := startRep(t, home, bbs, gossipSeed, "cell-k", sock, cache)
	// Adopted: the same instances, RUNNING, on the same ports, with no
	// extra row; the cell holds exactly them.
	pollUntil(t, "the new rep to adopt the instances", 60*time.Second, func() bool {
		return strings.Contains(rep2.log.String(), `"msg":"rep serving"`)
	})
	for end := time.Now().Add(6 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		list := c.actuals("web")
		now := running(list, 3)
		if now == nil || len(list) != 3 {
			t.Fatalf("after the rep restart the BBS has %+v", list)
		}
		for i, a := range now {
			if a.Instance.InstanceGuid != before[i].Instance.InstanceGuid || a.url() != before[i].url() || a.CrashCount != 0 {
				t.Fatalf("instance %d changed across the rep restart: %+v -> %+v", i, before[i], a)
			}
		}
	}
	state := c.gavel("cell-state", "cell-k")
	for i, a := range before {
		if !strings.Contains(state, a.Instance.InstanceGuid) {
			t.Fatalf("instance %d (%s) not held by the restarted rep: %s", i, a.Instance.InstanceGuid, state)
		}
	}
	if n := strings.Count(state, `"process_guid":"web"`); n != 3 {
		t.Fatalf("the cell holds %d instances, want 3: %s", n, state)
	}
	c.gavel("delete-desired-lrp", "web")
	pollUntil(t, "the instances to go", 60*time.Second, func() bool { return len(c.actuals("web")) == 0 })
}
