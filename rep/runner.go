package rep

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tedsuo/ifrit"
	"google.golang.org/grpc"

	"github.com/gavel-scheduler/gavel/internal/gossip"
	"github.com/gavel-scheduler/gavel/internal/grpcserver"
	"github.com/gavel-scheduler/gavel/proto/models"
)

// HealthService is the name the rep reports under in the gRPC health service.
const HealthService = "gavel.models.v1.Rep"

// RunnerConfig is what one rep process (or one simulated cell) runs with.
type RunnerConfig struct {
	// Info describes the cell; an empty RepAddress is filled with the
	// bound listen address.
	Info CellInfo
	// ListenAddress is where the rep API listens (port 0: kernel's choice).
	ListenAddress string
	// TLS is the API's mutual-TLS config; nil serves plaintext.
	TLS        *tls.Config
	Containers Containers
	// Cell and Executor, when set, give the API evacuation and logs.
	Cell     *Cell
	Executor Executor
	// Gossip, when set, announces the cell in the pool (Name and Meta are
	// filled in from Info).
	Gossip *gossip.Config
	// BBS, when set, keeps the cell's presence in etcd.
	BBS         models.BBSClient
	PresenceTTL time.Duration
	Registerer  prometheus.Registerer
	Logger      *slog.Logger
}

// Runner runs a rep: its gRPC API, its gossip membership and its presence.
type Runner struct {
	cfg    RunnerConfig
	logger *slog.Logger

	mu     sync.Mutex
	server *Server
	pool   *gossip.Pool
}

// NewRunner returns a rep runner.
func NewRunner(cfg RunnerConfig) *Runner {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	return &Runner{cfg: cfg, logger: logger.With("component", "rep", "cell_id", cfg.Info.CellID)}
}

// Server is the rep API once the runner is ready.
func (r *Runner) Server() *Server {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.server
}

// Pool is the rep's gossip membership once the runner is ready (nil
// without gossip).
func (r *Runner) Pool() *gossip.Pool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pool
}

// Run implements ifrit.Runner: ready once the API listens and the cell is
// announced.
func (r *Runner) Run(signals <-chan os.Signal, ready chan<- struct{}) error {
	lis, err := net.Listen("tcp", r.cfg.ListenAddress)
	if err != nil {
		return fmt.Errorf("rep listen: %w", err)
	}
	info := r.cfg.Info
	if info.RepAddress == "" {
		info.RepAddress = lis.Addr().String()
	}
	svc := NewServer(info, r.cfg.Containers, r.logger)
	if r.cfg.Cell != nil {
		svc.SetCell(r.cfg.Cell, r.cfg.Executor)
	}
	srv, _ := grpcserver.New(grpcserver.Options{Component: "rep", HealthService: HealthService,
		TLS: r.cfg.TLS, Registerer: r.cfg.Registerer, Logger: r.logger})
	models.RegisterRepServer(srv, svc)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(lis) }()
	defer grpcserver.Stop(srv, 5*time.Second)

	var pool *gossip.Pool
	if r.cfg.Gossip != nil {
		gc := *r.cfg.Gossip
		gc.Name = info.CellID
		gc.Meta = gossip.Meta{Role: gossip.RoleCell, CellID: info.CellID, RepAddress: info.RepAddress, Zone: info.Zone}
		if gc.Logger == nil {
			gc.Logger = r.logger
		}
		if pool, err = gossip.Join(gc); err != nil {
			return err
		}
		defer func() { _ = pool.Leave(time.Second) }()
	}
	var presence ifrit.Process
	if r.cfg.BBS != nil {
		presence = ifrit.Invoke(&Presence{BBS: r.cfg.BBS, Cell: info.Presence(r.cfg.Containers.Total()), TTL: r.cfg.PresenceTTL, Logger: r.logger})
		defer func() { presence.Signal(os.Interrupt); <-presence.Wait() }()
	}
	r.mu.Lock()
	r.server, r.pool = svc, pool
	r.mu.Unlock()
	r.logger.Info("rep serving", "address", info.RepAddress, "zone", info.Zone)
	close(ready)

	select {
	case err := <-errc:
		if errors.Is(err, grpc.ErrServerStopped) {
			return nil
		}
		return fmt.Errorf("rep serve: %w", err)
	case <-signals:
		return nil
	}
}

// Presence is the cell's presence record.
func (c *CellInfo) Presence(capacity *models.CellCapacity) *models.CellPresence {
	return &models.CellPresence{
		CellId: c.CellID, RepAddress: c.RepAddress, Zone: c.Zone, Capacity: capacity,
		RootfsProviders: c.RootFSProviders, PlacementTags: c.PlacementTags,
		OptionalPlacementTags: c.OptionalPlacementTags, VolumeDrivers: c.VolumeDrivers,
	}
}
