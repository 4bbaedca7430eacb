package executor_test

// Acceptance tests of the executor against the real Garden server on runc
// (executor/gardenrunc) with a busybox rootfs built from Debian's
// busybox-static. They need root and runc: without them they skip, unless
// GAVEL_REQUIRE_ROOT=1 (CI), where they fail. All traffic goes to 127.0.0.1
// (the download server) and to the containers' own addresses.

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gavel-scheduler/gavel/executor"
	"github.com/gavel-scheduler/gavel/proto/models"
)

func appTgz(t *testing.T) []byte {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	script := "#!/bin/sh\nmkdir -p /tmp/www && echo ok > /tmp/www/index.html\nexec httpd -f -p 8080 -h /tmp/www\n"
	tw.WriteHeader(&tar.Header{Name: "start.sh", Mode: 0o755, Size: int64(len(script)), Typeflag: tar.TypeReg})
	tw.Write([]byte(script))
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

func newAcceptanceExecutor(t *testing.T, g executor.GardenClient, owner string, tune func(*executor.Config)) *executor.Executor {
	t.Helper()
	cfg := executor.Config{
		MemoryMB: 4096, DiskMB: 8192, MaxContainers: 20, Owner: owner, DownloadCacheDir: t.TempDir(),
		UnhealthyMonitoringInterval: 50 * time.Millisecond, HealthyMonitoringInterval: 100 * time.Millisecond,
		GracefulShutdown: 2 * time.Second, CheckTimeout: 2 * time.Second, DefaultStartTimeout: 30 * time.Second,
	}
	if tune != nil {
		tune(&cfg)
	}
	e, err := executor.New(context.Background(), cfg, g)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		list, _ := e.ListContainers(ctx, nil)
		for _, c := range list {
			if err := e.DeleteContainer(ctx, c.Guid); err != nil {
				t.Errorf("cleanup %s: %v", c.Guid, err)
			}
		}
		e.Close()
	})
	return e
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func reserve(t *testing.T, e *executor.Executor, guid string) {
	t.Helper()
	failed, err := e.AllocateContainers(ctxFor(t, 10*time.Second), []executor.AllocationRequest{{Guid: guid, Resource: executor.Resource{MemoryMB: 128, DiskMB: 256, MaxPids: 100}}})
	if err != nil || len(failed) > 0 {
		t.Fatalf("allocate %s: %v %v", guid, err, failed)
	}
}

// waitFor returns the next event of guid with type typ.
func waitFor(t *testing.T, sub *executor.Subscription, guid string, typ executor.EventType) executor.Container {
	t.Helper()
	ctx := ctxFor(t, 90*time.Second)
	for {
		ev, err := sub.Next(ctx)
		if err != nil {
			t.Fatalf("waiting for %s of %s: %v", typ, guid, err)
		}
		if ev.Container.Guid == guid && ev.Type == typ {
			return ev.Container
		}
		if ev.Container.Guid == guid && ev.Type == executor.EventCompleted {
			t.Fatalf("%s completed while waiting for %s: %+v", guid, typ, ev.Container.RunResult)
		}
	}
}

func sh(script string) *models.Action {
	return &models.Action{Kind: &models.Action_Run{Run: &models.RunAction{Path: "sh", Args: []string{"-c", script}}}}
}

func logText(t *testing.T, e *executor.Executor, guid string) string {
	ring, err := e.Logs(guid)
	if err != nil {
		t.Fatal(err)
	}
	lines, _ := ring.Read(0, 0)
	var b strings.Builder
	for _, l := range lines {
		fmt.Fprintf(&b, "%s/%s: %s\n", l.Source, l.Stream, l.Text)
	}
	return b.String()
}

func TestAcceptance(t *testing.T) {
	g := startGarden(t)

	t.Run("download, run and a failing check crash the container", func(t *testing.T) {
		app := appTgz(t)
		var bodies atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			bodies.Add(1)
			w.Write(app)
		}))
		defer srv.Close()
		sum := sha256.Sum256(app)
		download := func(checksum string) *models.Action {
			return &models.Action{Kind: &models.Action_Download{Download: &models.DownloadAction{
				Artifact: "app", From: srv.URL + "/app.tgz", To: "/home/vcap/app", CacheKey: "app-v1",
				ChecksumAlgorithm: "sha256", ChecksumValue: checksum,
			}}}
		}
		serial := func(checksum string) *models.Action {
			return &models.Action{Kind: &models.Action_Serial{Serial: &models.SerialAction{Actions: []*models.Action{
				download(checksum), sh("exec /home/vcap/app/start.sh"),
			}}}}
		}
		// The exec check passes once (creating its marker) and fails after.
		checks := &models.CheckDefinition{Checks: []*models.Check{
			{TcpCheck: &models.TCPCheck{Port: 8080, IntervalMs: 100}},
			{ExecCheck: &models.ExecCheck{Path: "sh", Args: []string{"-c", "test ! -f /tmp/checked && touch /tmp/checked"}, IntervalMs: 200}},
		}}
		e := newAcceptanceExecutor(t, g, "accept-crash", nil)
		sub, _ := e.SubscribeToEvents(context.Background())
		defer sub.Close()

		reserve(t, e, "crash-1")
		if err := e.RunContainer(ctxFor(t, 10*time.Second), executor.RunRequest{Guid: "crash-1", RunInfo: executor.RunInfo{
			Action: serial(hex.EncodeToString(sum[:])), CheckDefinition: checks, Ports: []uint32{8080},
		}}); err != nil {
			t.Fatal(err)
		}
		running := waitFor(t, sub, "crash-1", executor.EventRunning)
		if running.InternalIP == "" || len(running.Ports) != 1 || running.Ports[0].ContainerPort != 8080 || running.Ports[0].HostPort == 0 {
			t.Fatalf("net info = %q %v", running.InternalIP, running.Ports)
		}
		done := waitFor(t, sub, "crash-1", executor.EventCompleted)
		r := done.RunResult
		if !r.Failed || r.Stopped || !strings.HasPrefix(r.FailureReason, "health check failed: command sh failed: exit status 1") {
			t.Fatalf("result = %+v\nlog:\n%s", r, logText(t, e, "crash-1"))
		}

		// The same download again comes from the cache.
		reserve(t, e, "crash-2")
		if err := e.RunContainer(ctxFor(t, 10*time.Second), executor.RunRequest{Guid: "crash-2", RunInfo: executor.RunInfo{
			Action: serial(hex.EncodeToString(sum[:])), CheckDefinition: checks,
		}}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, sub, "crash-2", executor.EventRunning)
		if n := bodies.Load(); n != 1 {
			t.Fatalf("app downloaded %d times, want 1", n)
		}
		if l := logText(t, e, "crash-2"); !strings.Contains(l, "Downloaded app (") || !strings.Contains(l, "cached)") {
			t.Fatalf("no cache hit in log:\n%s", l)
		}

		// A bad checksum is refused before anything runs.
		reserve(t, e, "crash-3")
		if err := e.RunContainer(ctxFor(t, 10*time.Second), executor.RunRequest{Guid: "crash-3", RunInfo: executor.RunInfo{
			Action: serial(strings.Repeat("0", 64)),
		}}); err != nil {
			t.Fatal(err)
		}
		r = waitFor(t, sub, "crash-3", executor.EventCompleted).RunResult
		if !r.Failed || !strings.Contains(r.FailureReason, "checksum mismatch") {
			t.Fatalf("bad checksum result = %+v", r)
		}
	})

	t.Run("healthy only after the check passes, then stop", func(t *testing.T) {
		e := newAcceptanceExecutor(t, g, "accept-lrp", nil)
		sub, _ := e.SubscribeToEvents(context.Background())
		defer sub.Close()
		reserve(t, e, "lrp-1")
		err := e.RunContainer(ctxFor(t, 10*time.Second), executor.RunRequest{Guid: "lrp-1", RunInfo: executor.RunInfo{
			// The app listens after 2 s, so the test can see it CREATED
			// and unreachable first.
			Action:          sh("sleep 2; mkdir -p /tmp/www; echo ok > /tmp/www/index.html; exec httpd -f -p 8080 -h /tmp/www"),
			CheckDefinition: &models.CheckDefinition{Checks: []*models.Check{{HttpCheck: &models.HTTPCheck{Port: 8080, Path: "/index.html"}}}},
			Ports:           []uint32{8080},
		}})
		if err != nil {
			t.Fatal(err)
		}
		// While CREATED the port is closed; RUNNING only comes after.
		sawCreated := false
		deadline := time.Now().Add(60 * time.Second)
		for time.Now().Before(deadline) {
			c, _ := e.GetContainer(context.Background(), "lrp-1")
			if c.State == executor.StateRunning {
				break
			}
			if c.State == executor.StateCreated && c.InternalIP != "" {
				if conn, err := net.DialTimeout("tcp", net.JoinHostPort(c.InternalIP, "8080"), time.Second); err == nil {
					conn.Close()
				} else {
					sawCreated = true
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
		running := waitFor(t, sub, "lrp-1", executor.EventRunning)
		if !sawCreated {
			t.Fatal("never saw the container CREATED with its port closed before RUNNING")
		}
		resp, err := http.Get("http://" + net.JoinHostPort(running.InternalIP, "8080") + "/index.html")
		if err != nil {
			t.Fatalf("RUNNING but not serving: %v", err)
		}
		resp.Body.Close()
		if err := e.StopContainer(ctxFor(t, 30*time.Second), "lrp-1"); err != nil {
			t.Fatal(err)
		}
		c, _ := e.GetContainer(context.Background(), "lrp-1")
		if c.State != executor.StateCompleted || !c.RunResult.Stopped {
			t.Fatalf("after stop: %s %+v", c.State, c.RunResult)
		}
	})

	t.Run("reservation expires", func(t *testing.T) {
		e := newAcceptanceExecutor(t, g, "accept-expiry", func(c *executor.Config) {
			c.ReservedExpiration, c.PruneInterval = 200*time.Millisecond, 50*time.Millisecond
		})
		sub, _ := e.SubscribeToEvents(context.Background())
		defer sub.Close()
		reserve(t, e, "never-run")
		if r := waitFor(t, sub, "never-run", executor.EventCompleted).RunResult; !r.Failed || r.FailureReason != "expired container" {
			t.Fatalf("result = %+v", r)
		}
	})

	t.Run("task result file and bad input", func(t *testing.T) {
		e := newAcceptanceExecutor(t, g, "accept-task", nil)
		sub, _ := e.SubscribeToEvents(context.Background())
		defer sub.Close()
		reserve(t, e, "task-1")
		if err := e.RunContainer(ctxFor(t, 10*time.Second), executor.RunRequest{Guid: "task-1", RunInfo: executor.RunInfo{
			Action: sh("echo hello from the task; printf 42 > /tmp/result"),
		}}); err != nil {
			t.Fatal(err)
		}
		if r := waitFor(t, sub, "task-1", executor.EventCompleted).RunResult; r.Failed {
			t.Fatalf("task failed: %+v\n%s", r, logText(t, e, "task-1"))
		}
		b, err := e.ReadFile(ctxFor(t, 10*time.Second), "task-1", "/tmp/result", 50<<10)
		if err != nil || string(b) != "42" {
			t.Fatalf("result file = %q, %v", b, err)
		}
		if l := logText(t, e, "task-1"); !strings.Contains(l, "APP/stdout: hello from the task") {
			t.Fatalf("log:\n%s", l)
		}
		failed, _ := e.AllocateContainers(context.Background(), []executor.AllocationRequest{
			{Guid: "task-1", Resource: executor.Resource{MemoryMB: 1}},
			{Guid: "neg", Resource: executor.Resource{MemoryMB: -1}},
			{Guid: "huge", Resource: executor.Resource{MemoryMB: 1 << 20}},
		})
		if len(failed) != 3 || !errors.Is(failed[0].Err, executor.ErrGuidNotAvailable) ||
			!errors.Is(failed[1].Err, executor.ErrInvalidRequest) || !errors.Is(failed[2].Err, executor.ErrInsufficientResources) {
			t.Fatalf("failures = %v", failed)
		}
		if _, err := e.GetContainer(context.Background(), "unknown"); !errors.Is(err, executor.ErrContainerNotFound) {
			t.Fatalf("unknown guid: %v", err)
		}
		if c, _ := e.GetContainer(context.Background(), "task-1"); c.State != executor.StateCompleted || c.RunResult.Failed {
			t.Fatalf("bad input disturbed task-1: %+v", c)
		}
	})

	t.Run("restore adopts running containers", func(t *testing.T) {
		first := newAcceptanceExecutor(t, g, "accept-restore", nil)
		reserve(t, first, "keep-1")
		if err := first.RunContainer(ctxFor(t, 10*time.Second), executor.RunRequest{Guid: "keep-1", Tags: executor.Tags{"domain": "apps"}, RunInfo: executor.RunInfo{
			Action: sh("echo started; exec sleep 1000"),
		}}); err != nil {
			t.Fatal(err)
		}
		sub, _ := first.SubscribeToEvents(context.Background())
		waitFor(t, sub, "keep-1", executor.EventRunning)
		sub.Close()
		first.Close()

		second := newAcceptanceExecutor(t, g, "accept-restore", nil)
		c, err := second.GetContainer(context.Background(), "keep-1")
		if err != nil || c.State != executor.StateRunning || c.Tags["domain"] != "apps" || c.InternalIP == "" {
			t.Fatalf("restored = %+v, %v", c, err)
		}
		// The adopted lifecycle is attached to the same process: stopping
		// it completes the container.
		if err := second.StopContainer(ctxFor(t, 30*time.Second), "keep-1"); err != nil {
			t.Fatal(err)
		}
		if c, _ := second.GetContainer(context.Background(), "keep-1"); c.State != executor.StateCompleted || !c.RunResult.Stopped {
			t.Fatalf("after stop: %+v", c)
		}
	})
}
