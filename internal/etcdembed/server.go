// Package etcdembed runs an in-process, single-member etcd: the store of
// `gavel dev` and of every integration test. It listens on loopback only
// and enforces the same request limits as a production etcd cluster, so
// what works against it works against the real thing. StartForTest gives
// tests a fresh member on free ports.
package etcdembed

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tedsuo/ifrit"
	"go.etcd.io/etcd/client/pkg/v3/logutil"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
)

// ErrStartTimeout is returned (wrapped) when the member is not ready
// within the start timeout.
var ErrStartTimeout = errors.New("embedded etcd did not become ready in time")

// Server is a running embedded etcd member.
type Server struct {
	cfg       Config
	etcd      *embed.Etcd
	closeOnce sync.Once
	// closing tells etcd's logger that listener stops are expected.
	closing *atomic.Bool
}

// Start launches a member and waits until it serves clients. It gives up
// when ctx ends or after cfg.StartTimeout, whichever comes first, and
// leaves nothing running on failure.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("etcd data dir: %w", err)
	}
	closing := new(atomic.Bool)
	lg, err := newZapLogger(cfg.LogLevel, closing)
	if err != nil {
		return nil, err
	}
	e, err := embed.StartEtcd(cfg.embedConfig(lg))
	if err != nil {
		return nil, fmt.Errorf("start embedded etcd in %s: %w", cfg.DataDir, err)
	}
	s := &Server{cfg: cfg, etcd: e, closing: closing}

	timer := time.NewTimer(cfg.StartTimeout)
	defer timer.Stop()
	select {
	case <-e.Server.ReadyNotify():
		return s, nil
	case err := <-e.Err():
		s.Close()
		return nil, fmt.Errorf("embedded etcd in %s failed while starting: %w", cfg.DataDir, err)
	case <-e.Server.StopNotify():
		s.Close()
		return nil, fmt.Errorf("embedded etcd in %s stopped while starting", cfg.DataDir)
	case <-timer.C:
		s.Close()
		return nil, fmt.Errorf("embedded etcd in %s: %w after %s", cfg.DataDir, ErrStartTimeout, cfg.StartTimeout)
	case <-ctx.Done():
		s.Close()
		return nil, fmt.Errorf("embedded etcd in %s: start abandoned: %w", cfg.DataDir, ctx.Err())
	}
}

// Config returns the configuration the server runs with, defaults applied.
func (s *Server) Config() Config { return s.cfg }

// Endpoints returns the client URLs, for clientv3.Config.Endpoints and for
// other components' --etcd-endpoints.
func (s *Server) Endpoints() []string { return []string{s.cfg.ClientURL} }

// Client returns a new client connected to this member. The caller closes
// it. Its logging follows the server's LogLevel so a quiet member does not
// come with a chatty client.
func (s *Server) Client() (*clientv3.Client, error) {
	lg, err := logutil.CreateDefaultZapLogger(logutil.ConvertToZapLevel(s.cfg.LogLevel))
	if err != nil {
		return nil, fmt.Errorf("etcd client logger: %w", err)
	}
	c, err := clientv3.New(clientv3.Config{
		Endpoints:   s.Endpoints(),
		DialTimeout: 5 * time.Second,
		Logger:      lg,
	})
	if err != nil {
		return nil, fmt.Errorf("etcd client for %v: %w", s.Endpoints(), err)
	}
	return c, nil
}

// Err reports errors the member hits while serving after Start returned.
// It is closed by Close.
func (s *Server) Err() <-chan error { return s.etcd.Err() }

// Done is closed when the member has stopped, through Close or on its own.
func (s *Server) Done() <-chan struct{} { return s.etcd.Server.StopNotify() }

// Close stops the member gracefully and releases its ports. It is safe to
// call more than once.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		s.closing.Store(true)
		s.etcd.Close()
	})
}

// Runner wraps an embedded member as an ifrit.Runner for the `gavel dev`
// process tree: ready is closed once the member serves clients, a signal
// stops it, and a member that fails or stops on its own ends the process
// with an error.
func Runner(cfg Config) ifrit.Runner {
	return ifrit.RunFunc(func(signals <-chan os.Signal, ready chan<- struct{}) error {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()

		type result struct {
			srv *Server
			err error
		}
		started := make(chan result, 1)
		go func() {
			srv, err := Start(ctx, cfg)
			started <- result{srv, err}
		}()

		var srv *Server
		select {
		case r := <-started:
			if r.err != nil {
				return r.err
			}
			srv = r.srv
		case <-signals:
			// Stopped before ready: abandon the start and wait for it, so
			// no member outlives this runner.
			cancel()
			if r := <-started; r.err == nil {
				r.srv.Close()
			}
			return nil
		}
		defer srv.Close()
		close(ready)

		select {
		case <-signals:
			return nil
		case err := <-srv.Err():
			return fmt.Errorf("embedded etcd: %w", err)
		case <-srv.Done():
			return errors.New("embedded etcd stopped unexpectedly")
		}
	})
}
