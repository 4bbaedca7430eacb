package etcdembed

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Options tunes StartForTestOpts.
type Options struct {
	// NoFsync trades durability for speed. Leave it off in benchmarks and
	// anything that measures write latency: they must see this machine's
	// real fsync cost, as production does.
	NoFsync bool
}

// startAttempts bounds retries when another process grabs a port between
// freePorts releasing it and etcd binding it.
const startAttempts = 5

// StartForTest starts a fresh member in tb.TempDir() on free 127.0.0.1
// ports, with fsync on, and returns it with a connected client. Both are
// closed by tb.Cleanup. It is a plain (non _test) file so tests of any
// package can use it.
func StartForTest(tb testing.TB) (*Server, *clientv3.Client) {
	tb.Helper()
	return StartForTestOpts(tb, Options{})
}

// StartForTestOpts is StartForTest with options.
func StartForTestOpts(tb testing.TB, opts Options) (*Server, *clientv3.Client) {
	tb.Helper()
	var (
		srv     *Server
		lastErr error
	)
	for range startAttempts {
		ports, err := freePorts(2)
		if err != nil {
			tb.Fatalf("embedded etcd: %v", err)
		}
		cfg := Config{
			// A fresh directory per attempt: a failed bind must not leave
			// a half-initialised member for the next attempt to trip on.
			DataDir:       tb.TempDir(),
			ClientURL:     fmt.Sprintf("http://127.0.0.1:%d", ports[0]),
			PeerURL:       fmt.Sprintf("http://127.0.0.1:%d", ports[1]),
			UnsafeNoFsync: opts.NoFsync,
			StartTimeout:  30 * time.Second,
		}
		srv, lastErr = Start(context.Background(), cfg)
		if lastErr == nil {
			break
		}
		if !isAddrInUse(lastErr) {
			tb.Fatalf("embedded etcd: %v", lastErr)
		}
	}
	if lastErr != nil {
		tb.Fatalf("embedded etcd: no free ports after %d attempts: %v", startAttempts, lastErr)
	}
	tb.Cleanup(srv.Close)

	client, err := srv.Client()
	if err != nil {
		tb.Fatalf("embedded etcd: %v", err)
	}
	// Registered after srv.Close, so it runs first: the client goes away
	// before the member it talks to.
	tb.Cleanup(func() { _ = client.Close() })
	return srv, client
}

// freePorts returns n distinct ports that were free on 127.0.0.1 a moment
// ago. All n listeners are held open together so the kernel cannot hand
// out the same port twice; the ports may still be taken by someone else
// once released, which is why callers retry.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		defer ln.Close()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func isAddrInUse(err error) bool {
	// etcd passes the net.OpError through, but match the text as well in
	// case a future version wraps it without %w.
	return errors.Is(err, syscall.EADDRINUSE) || strings.Contains(err.Error(), "address already in use")
}
