package checks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gavel-scheduler/gavel/executor/garden"
	"github.com/gavel-scheduler/gavel/proto/models"
)

// probeFunc adapts a function to a Probe.
type probeFunc func(ctx context.Context) error

func (f probeFunc) Probe(ctx context.Context) error { return f(ctx) }

// closedPort returns a loopback port nothing listens on.
func closedPort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return p
}

func TestTCPProbe(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	if err := (TCP{Addr: l.Addr().String(), Timeout: time.Second}).Probe(context.Background()); err != nil {
		t.Fatalf("open port: %v", err)
	}
	p := closedPort(t)
	err = TCP{Addr: "127.0.0.1:" + strconv.Itoa(p), Timeout: time.Second}.Probe(context.Background())
	want := fmt.Sprintf("failed to make TCP connection to port %d: connection refused", p)
	if err == nil || err.Error() != want {
		t.Fatalf("closed port: %v, want %q", err, want)
	}
}

func TestHTTPProbe(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/healthy":
		case "/sick":
			w.WriteHeader(http.StatusServiceUnavailable)
		case "/slow":
			<-r.Context().Done()
		}
	}))
	defer srv.Close()
	_, p, _ := net.SplitHostPort(srv.Listener.Addr().String())
	tests := []struct{ path, wantErr string }{
		{"/healthy", ""},
		{"/sick", "HTTP request to /sick on port " + p + " returned status 503"},
		{"/slow", "failed to make HTTP request to /slow: timed out"},
	}
	for _, tt := range tests {
		err := HTTP{URL: srv.URL + tt.path, Timeout: 200 * time.Millisecond}.Probe(context.Background())
		if (tt.wantErr == "" && err != nil) || (tt.wantErr != "" && (err == nil || err.Error() != tt.wantErr)) {
			t.Errorf("%s: err = %v, want %q", tt.path, err, tt.wantErr)
		}
	}
}

// execContainer runs "true" (exit 0), "false" (exit 1) and "hang" (until
// signalled); it implements steps.Container.
type execContainer struct{ runs atomic.Int32 }

type execProcess struct {
	done   chan struct{}
	once   sync.Once
	status int
}

func (p *execProcess) ID() string                  { return "p" }
func (p *execProcess) Wait() (int, error)          { <-p.done; return p.status, nil }
func (p *execProcess) SetTTY(garden.TTYSpec) error { return nil }
func (p *execProcess) Signal(garden.Signal) error {
	p.once.Do(func() { p.status = 143; close(p.done) })
	return nil
}

func (c *execContainer) Run(ctx context.Context, spec garden.ProcessSpec, _ garden.ProcessIO) (garden.Process, error) {
	c.runs.Add(1)
	p := &execProcess{done: make(chan struct{})}
	switch spec.Path {
	case "true":
		close(p.done)
	case "false":
		p.status = 1
		close(p.done)
	}
	return p, nil
}
func (c *execContainer) Attach(context.Context, string, garden.ProcessIO) (garden.Process, error) {
	return nil, garden.ProcessNotFoundError{}
}
func (c *execContainer) StreamIn(context.Context, garden.StreamInSpec) error { return nil }
func (c *execContainer) StreamOut(context.Context, garden.StreamOutSpec) (io.ReadCloser, error) {
	return nil, errors.New("no")
}
func (c *execContainer) Info(context.Context) (garden.ContainerInfo, error) {
	return garden.ContainerInfo{}, nil
}

func TestExecProbe(t *testing.T) {
	c := &execContainer{}
	tests := []struct{ path, wantErr string }{
		{"true", ""},
		{"false", "command false failed: exit status 1"},
		{"hang", "command hang failed: exceeded 50ms timeout"},
	}
	for _, tt := range tests {
		err := Exec{Container: c, Spec: garden.ProcessSpec{Path: tt.path}, Timeout: 50 * time.Millisecond}.Probe(context.Background())
		if (tt.wantErr == "" && err != nil) || (tt.wantErr != "" && (err == nil || err.Error() != tt.wantErr)) {
			t.Errorf("%s: err = %v, want %q", tt.path, err, tt.wantErr)
		}
	}
}

func TestFromDefinition(t *testing.T) {
	def := &models.CheckDefinition{
		Checks: []*models.Check{
			{TcpCheck: &models.TCPCheck{Port: 8080, ConnectTimeoutMs: 300}},
			{HttpCheck: &models.HTTPCheck{Port: 9090, Path: "healthz", IntervalMs: 5000}},
			{ExecCheck: &models.ExecCheck{Path: "/bin/check", Args: []string{"-q"}, TimeoutMs: 700}},
		},
		ReadinessChecks: []*models.Check{{TcpCheck: &models.TCPCheck{Port: 8081}}},
	}
	target := Target{IP: "10.254.0.2", Container: &execContainer{}, User: "vcap"}
	d := Defaults{Interval: 30 * time.Second, Timeout: time.Second}
	list, err := FromDefinition(def, false, target, d)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range list {
		got = append(got, fmt.Sprintf("%s %s %+v", c.Name, c.Interval, c.Probe))
	}
	want := []string{
		"tcp:8080 30s {Addr:10.254.0.2:8080 Timeout:300ms}",
		"http:9090/healthz 5s {URL:http://10.254.0.2:9090/healthz Timeout:1s Client:<nil>}",
	}
	if got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("checks =\n%s\nwant\n%s", strings.Join(got[:2], "\n"), strings.Join(want, "\n"))
	}
	if e := list[2].Probe.(Exec); e.Spec.Path != "/bin/check" || e.Spec.User != "vcap" || e.Timeout != 700*time.Millisecond {
		t.Fatalf("exec check = %+v", e)
	}
	ready, err := FromDefinition(def, true, target, d)
	if err != nil || len(ready) != 1 || ready[0].Name != "tcp:8081" {
		t.Fatalf("readiness = %v, %v", ready, err)
	}
	if _, err := FromDefinition(&models.CheckDefinition{Checks: []*models.Check{{}}}, false, target, d); err == nil {
		t.Fatal("empty check accepted")
	}
}

// flaky fails until it has been probed n times.
func flaky(n int32, reason string) (Probe, *atomic.Int32) {
	var count atomic.Int32
	return probeFunc(func(ctx context.Context) error {
		if count.Add(1) <= n {
			return errors.New(reason)
		}
		return nil
	}), &count
}

func TestMonitorStartup(t *testing.T) {
	slow, slowCount := flaky(3, "not yet")
	quick, quickCount := flaky(0, "")
	m := Monitor{Checks: []Check{{Name: "slow", Probe: slow}, {Name: "quick", Probe: quick}}, StartInterval: time.Millisecond, StartTimeout: 10 * time.Second}
	if err := m.WaitHealthy(context.Background()); err != nil {
		t.Fatal(err)
	}
	if slowCount.Load() != 4 || quickCount.Load() != 1 {
		t.Fatalf("probes: slow %d (want 4), quick %d (want 1: a passed check is not probed again)", slowCount.Load(), quickCount.Load())
	}

	never, _ := flaky(1<<30, "connection refused")
	m = Monitor{Checks: []Check{{Name: "never", Probe: never}}, StartInterval: 5 * time.Millisecond, StartTimeout: 50 * time.Millisecond}
	err := m.WaitHealthy(context.Background())
	var nh *NeverHealthyError
	if !errors.As(err, &nh) || err.Error() != "Instance never healthy after 50ms: connection refused" {
		t.Fatalf("err = %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := m.WaitHealthy(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled startup = %v", err)
	}
}

func TestMonitorRunThenLivenessFailure(t *testing.T) {
	var healthyAt atomic.Int32
	var probes atomic.Int32
	// Healthy on probes 1..3, then failing.
	p := probeFunc(func(context.Context) error {
		if probes.Add(1) > 3 {
			return errors.New("connection refused")
		}
		return nil
	})
	m := Monitor{Checks: []Check{{Name: "tcp", Probe: p, Interval: time.Millisecond}}, StartInterval: time.Millisecond}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := m.Run(ctx, func() { healthyAt.Store(probes.Load()) })
	var u *UnhealthyError
	if !errors.As(err, &u) || err.Error() != "health check failed: connection refused" {
		t.Fatalf("err = %v", err)
	}
	if healthyAt.Load() != 1 {
		t.Fatalf("healthy called after probe %d, want 1", healthyAt.Load())
	}
}

func TestMonitorWatchStopsOnCancel(t *testing.T) {
	ok := probeFunc(func(context.Context) error { return nil })
	m := Monitor{Checks: []Check{{Probe: ok, Interval: time.Millisecond}, {Probe: ok, Interval: 2 * time.Millisecond}}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Watch(ctx) }()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Watch = %v", err)
	}
	if err := (Monitor{}).Watch(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Watch without checks = %v", err)
	}
}

func TestWatchReadiness(t *testing.T) {
	var up atomic.Bool
	p := probeFunc(func(context.Context) error {
		if up.Load() {
			return nil
		}
		return errors.New("down")
	})
	ctx, cancel := context.WithCancel(context.Background())
	changes := make(chan bool, 10)
	done := make(chan struct{})
	go func() {
		defer close(done)
		WatchReadiness(ctx, []Check{{Probe: p}}, time.Millisecond, func(r bool) { changes <- r })
	}()
	up.Store(true)
	if r := <-changes; !r {
		t.Fatal("first change should be to ready")
	}
	up.Store(false)
	if r := <-changes; r {
		t.Fatal("second change should be to not ready")
	}
	cancel()
	<-done
}
