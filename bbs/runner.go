package bbs

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/gavel-scheduler/gavel/bbs/db"
	"github.com/gavel-scheduler/gavel/internal/grpcserver"
	"github.com/gavel-scheduler/gavel/internal/tlsutil"
)

// Runner serves the BBS API as an ifrit runner: ready once the listener is
// bound, stopped gracefully (in-flight calls finish, streams end) on any
// signal.
type Runner struct {
	cfg      Config
	etcd     *clientv3.Client
	reg      prometheus.Registerer
	logger   *slog.Logger
	auctions AuctionRequester
	cells    CellClient

	mu   sync.Mutex
	addr string
}

// RunnerOption sets what the BBS talks to beside etcd.
type RunnerOption func(*Runner)

// WithAuctioneer sends auction requests to a (the elected auctioneer).
func WithAuctioneer(a AuctionRequester) RunnerOption { return func(r *Runner) { r.auctions = a } }

// WithCells reaches the reps, to stop instances and cancel tasks.
func WithCells(c CellClient) RunnerOption { return func(r *Runner) { r.cells = c } }

// NewRunner returns a runner serving cfg over the given etcd client.
func NewRunner(cfg Config, etcd *clientv3.Client, reg prometheus.Registerer, logger *slog.Logger, opts ...RunnerOption) *Runner {
	if logger == nil {
		logger = slog.Default()
	}
	r := &Runner{cfg: cfg, etcd: etcd, reg: reg, logger: logger.With("component", "bbs")}
	for _, o := range opts {
		o(r)
	}
	return r
}

// Addr is the bound listen address once the runner is ready.
func (r *Runner) Addr() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.addr
}

// Run implements ifrit.Runner.
func (r *Runner) Run(signals <-chan os.Signal, ready chan<- struct{}) error {
	var tlsConfig *tls.Config
	if !r.cfg.Insecure {
		var err error
		if tlsConfig, err = tlsutil.ServerConfig(r.cfg.CACert, r.cfg.ServerCert, r.cfg.ServerKey); err != nil {
			return fmt.Errorf("bbs tls: %w", err)
		}
	} else {
		r.logger.Warn("serving plaintext gRPC: anyone who reaches the port can change state")
	}
	store := db.New(r.etcd, db.Config{Prefix: r.cfg.KeyPrefix, MaxTaskRetries: r.cfg.MaxTaskRetries, Logger: r.logger, Registerer: r.reg})
	callbacks := NewTaskCallbacks(store, CallbackConfig{Attempts: r.cfg.CallbackAttempts}, r.reg, r.logger)
	defer callbacks.Close()
	svc := NewServer(ServerDeps{Store: store, Callbacks: callbacks, Auctions: r.auctions, Cells: r.cells, Logger: r.logger})
	// Closed when shutdown begins (below); deferred too for the error path.
	defer svc.Close()
	srv, hs := NewGRPCServer(svc, tlsConfig, r.reg, r.logger)

	lis, err := net.Listen("tcp", r.cfg.ListenAddress)
	if err != nil {
		return fmt.Errorf("bbs listen: %w", err)
	}
	r.mu.Lock()
	r.addr = lis.Addr().String()
	r.mu.Unlock()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(lis) }()
	r.logger.Info("bbs serving", "address", r.addr, "tls", tlsConfig != nil)
	close(ready)

	select {
	case err := <-errc:
		return fmt.Errorf("bbs serve: %w", err)
	case sig := <-signals:
		r.logger.Info("bbs stopping", "signal", sig.String())
	}
	hs.Shutdown()
	svc.Close()
	grpcserver.Stop(srv, r.cfg.ShutdownTimeout.D())
	return nil
}

// DialEtcd connects to the configured etcd endpoints.
func DialEtcd(ctx context.Context, cfg Config) (*clientv3.Client, error) { return cfg.Config.Dial(ctx) }
