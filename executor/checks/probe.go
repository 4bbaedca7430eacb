// Package checks owns the executor's health checks: probes (TCP connect,
// HTTP GET, a command run in the container), their construction from a
// models.CheckDefinition, and the Monitor that gates a container's RUNNING
// state on them (startup phase) and then watches it (liveness phase).
package checks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/gavel-scheduler/gavel/executor/garden"
	"github.com/gavel-scheduler/gavel/executor/steps"
)

// Probe is one attempt at a health check: nil means healthy.
type Probe interface {
	Probe(ctx context.Context) error
}

// TCP is healthy when a TCP connection to Addr opens within Timeout.
type TCP struct {
	Addr    string
	Timeout time.Duration
}

// Probe dials once.
func (t TCP) Probe(ctx context.Context) error {
	d := net.Dialer{Timeout: t.Timeout}
	conn, err := d.DialContext(ctx, "tcp", t.Addr)
	if err != nil {
		return fmt.Errorf("failed to make TCP connection to port %s: %w", port(t.Addr), dialReason(err))
	}
	return conn.Close()
}

// HTTP is healthy when a GET of URL answers 2xx within Timeout.
type HTTP struct {
	URL     string
	Timeout time.Duration
	// Client makes the request; nil uses one without keep-alives, so
	// each probe sees a fresh connection as a new client would.
	Client *http.Client
}

var probeClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}}

// Probe requests once.
func (h HTTP) Probe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, h.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.URL, nil)
	if err != nil {
		return fmt.Errorf("invalid health check URL: %w", err)
	}
	client := h.Client
	if client == nil {
		client = probeClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("failed to make HTTP request to %s: %w", req.URL.Path, dialReason(err))
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("HTTP request to %s on port %s returned status %d", req.URL.Path, req.URL.Port(), resp.StatusCode)
	}
	return nil
}

// Exec is healthy when a command run in the container exits 0 within
// Timeout.
type Exec struct {
	Container steps.Container
	Spec      garden.ProcessSpec
	Timeout   time.Duration
}

// Probe runs the command once.
func (e Exec) Probe(ctx context.Context) error {
	run := steps.Run{Container: e.Container, Spec: e.Spec, GracefulShutdown: time.Second}
	err := steps.Timeout{Step: run, After: e.Timeout}.Run(ctx)
	if err != nil {
		return fmt.Errorf("command %s failed: %w", e.Spec.Path, err)
	}
	return nil
}

// dialReason trims net errors down to their cause ("connection refused").
func dialReason(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		var sys interface{ Unwrap() error }
		if errors.As(op.Err, &sys) && sys.Unwrap() != nil {
			return sys.Unwrap()
		}
		return op.Err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return errors.New("timed out")
	}
	return err
}

func port(addr string) string {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return p
}

// hostPort joins an IP and a port.
func hostPort(ip string, p uint32) string {
	return net.JoinHostPort(ip, strconv.FormatUint(uint64(p), 10))
}
