package debugserver

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tedsuo/ifrit"
)

// start runs srv as an ifrit process and stops it when the test ends.
func start(t *testing.T, srv *Server) string {
	t.Helper()
	proc := ifrit.Invoke(srv)
	t.Cleanup(func() {
		proc.Signal(os.Interrupt)
		select {
		case err := <-proc.Wait():
			if err != nil {
				t.Errorf("debug server exited with %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("debug server did not stop within 10s of a signal")
		}
	})
	addr := srv.Addr()
	if !strings.HasPrefix(addr, "127.0.0.1:") || strings.HasSuffix(addr, ":0") {
		t.Fatalf("Addr() = %q after ready, want 127.0.0.1 with a real port", addr)
	}
	return "http://" + addr
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

func TestEndpoints(t *testing.T) {
	reg := NewRegistry()
	placements := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "gavel_test_placements_total",
		Help: "Placements made by the test.",
	})
	reg.MustRegister(placements)
	placements.Add(3)

	srv := New(Config{}, reg, nil, nil)
	if srv.Addr() != "" {
		t.Fatalf("Addr() = %q before Run", srv.Addr())
	}
	base := start(t, srv)

	tests := []struct {
		path string
		want string // a substring of the body
	}{
		{"/metrics", "gavel_test_placements_total 3"},
		{"/metrics", "go_goroutines"},
		{"/metrics", "process_open_fds"},
		{"/debug/pprof/", "goroutine"},
		{"/debug/pprof/goroutine?debug=1", "goroutine profile"},
		{"/debug/pprof/cmdline", ""},
		{"/debug/pprof/symbol", "num_symbols"},
		{"/debug/vars", "memstats"},
		{"/healthz", "ok"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			code, body := get(t, base+tt.path)
			if code != http.StatusOK {
				t.Fatalf("status %d, body %q", code, body)
			}
			if !strings.Contains(body, tt.want) {
				t.Fatalf("body does not contain %q:\n%.500s", tt.want, body)
			}
		})
	}

	if code, _ := get(t, base+"/nope"); code != http.StatusNotFound {
		t.Fatalf("unknown path: status %d, want 404", code)
	}
}

func TestHealthFailure(t *testing.T) {
	var healthy atomic.Bool
	health := func(context.Context) error {
		if !healthy.Load() {
			return errors.New("etcd unreachable")
		}
		return nil
	}
	base := start(t, New(Config{Address: "127.0.0.1:0"}, nil, health, nil))

	code, body := get(t, base+"/healthz")
	if code != http.StatusServiceUnavailable || strings.TrimSpace(body) != "etcd unreachable" {
		t.Fatalf("unhealthy: status %d, body %q", code, body)
	}
	healthy.Store(true)
	if code, body := get(t, base+"/healthz"); code != http.StatusOK || strings.TrimSpace(body) != "ok" {
		t.Fatalf("healthy again: status %d, body %q", code, body)
	}
}

func TestRunFailsWhenAddressIsTaken(t *testing.T) {
	first := New(Config{}, nil, nil, nil)
	start(t, first)
	second := New(Config{Address: first.Addr()}, nil, nil, nil)
	ready := make(chan struct{})
	err := second.Run(make(chan os.Signal), ready)
	if err == nil {
		t.Fatal("Run succeeded on an address already in use")
	}
	select {
	case <-ready:
		t.Fatal("ready closed although listening failed")
	default:
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr bool
	}{
		{"zero value", Config{}, false},
		{"explicit", Config{Address: "127.0.0.1:17017", ShutdownTimeout: time.Second}, false},
		{"no port", Config{Address: "127.0.0.1"}, true},
		{"negative timeout", Config{ShutdownTimeout: -time.Second}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.cfg.Validate(); (err != nil) != tt.wantErr {
				t.Fatalf("Validate() = %v, wantErr %v", err, tt.wantErr)
			}
		})
	}
}
