package auctioneer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tedsuo/ifrit"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/gavel-scheduler/gavel/internal/election"
	"github.com/gavel-scheduler/gavel/internal/gossip"
	"github.com/gavel-scheduler/gavel/internal/grpcserver"
	"github.com/gavel-scheduler/gavel/proto/models"
	"github.com/gavel-scheduler/gavel/rep"
)

// Process is one auctioneer: its API (which refuses work on standby), its
// gossip node (its view of the cells), and its candidacy; while it leads,
// the engine runs auctions. It is an ifrit runner, ready once the API
// listens and the node has joined.
type Process struct {
	cfg    Config
	etcd   *clientv3.Client
	reg    prometheus.Registerer
	logger *slog.Logger

	mu     sync.Mutex
	addr   string
	pool   *gossip.Pool
	engine *Engine
}

// NewProcess returns an auctioneer over the given etcd client.
func NewProcess(cfg Config, etcd *clientv3.Client, reg prometheus.Registerer, logger *slog.Logger) *Process {
	if logger == nil {
		logger = slog.Default()
	}
	return &Process{cfg: cfg, etcd: etcd, reg: reg, logger: logger.With("component", "auctioneer")}
}

// Addr is the advertised API address once the process is ready.
func (p *Process) Addr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.addr
}

// GossipAddr is the address cells join (host:port) once ready.
func (p *Process) GossipAddr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pool == nil {
		return ""
	}
	return p.pool.Addr()
}

// Engine is the auction engine once ready.
func (p *Process) Engine() *Engine {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.engine
}

// poolCells lists the cells in the gossip view.
type poolCells struct{ pool *gossip.Pool }

func (c poolCells) Cells() []CellAddress {
	metas := c.pool.Cells()
	out := make([]CellAddress, len(metas))
	for i, m := range metas {
		out[i] = CellAddress{ID: m.CellID, Address: m.RepAddress}
	}
	return out
}

// Run implements ifrit.Runner.
func (p *Process) Run(signals <-chan os.Signal, ready chan<- struct{}) error {
	serverTLS, clientTLS, err := p.cfg.Files.Configs()
	if err != nil {
		return fmt.Errorf("auctioneer %w", err)
	}
	if p.cfg.Insecure {
		p.logger.Warn("serving and dialling plaintext gRPC")
	}
	creds := grpc.WithTransportCredentials(insecure.NewCredentials())
	if clientTLS != nil {
		creds = grpc.WithTransportCredentials(credentials.NewTLS(clientTLS))
	}
	bbsConn, err := grpc.NewClient(p.cfg.BBSAddress, creds)
	if err != nil {
		return fmt.Errorf("bbs %s: %w", p.cfg.BBSAddress, err)
	}
	defer bbsConn.Close()
	reps := rep.NewClient(clientTLS)
	defer reps.Close()

	lis, err := net.Listen("tcp", p.cfg.ListenAddress)
	if err != nil {
		return fmt.Errorf("auctioneer listen: %w", err)
	}
	advertise := p.cfg.AdvertiseAddress
	if advertise == "" {
		advertise = lis.Addr().String()
	}

	node, err := p.cfg.PoolConfig.Node("auctioneer-"+advertise, gossip.Meta{Role: gossip.RoleAuctioneer}, p.logger)
	if err != nil {
		return err
	}
	pool, err := gossip.Join(node)
	if err != nil {
		return err
	}
	defer func() { _ = pool.Leave(time.Second) }()

	metrics := NewMetrics(p.reg)
	engine := NewEngine(EngineConfig{
		CellStateTimeout: p.cfg.CellStateTimeout.D(), CommunicationTimeout: p.cfg.CommunicationTimeout.D(),
		MaxAttempts: p.cfg.MaxAttempts,
	}, poolCells{pool}, reps, BBSReporter{BBS: models.NewBBSClient(bbsConn)}, metrics, p.logger)
	svc := NewServer(engine)
	srv, _ := grpcserver.New(grpcserver.Options{Component: "auctioneer", HealthService: HealthService,
		TLS: serverTLS, Registerer: p.reg, Logger: p.logger, MaxRecvMsgSize: 64 << 20})
	models.RegisterAuctioneerServer(srv, svc)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(lis) }()
	defer grpcserver.Stop(srv, p.cfg.ShutdownTimeout.D())

	candidate, err := election.NewRunner(election.Config{
		Client: p.etcd, Key: ElectionKey(p.cfg.KeyPrefix), Value: advertise, TTL: p.cfg.ElectionTTL.D(), Logger: p.logger,
	}, func(ctx context.Context) error {
		svc.SetLeading(true)
		metrics.Leader.Set(1)
		p.logger.Info("auctioneer leading", "address", advertise)
		defer func() {
			svc.SetLeading(false)
			metrics.Leader.Set(0)
			engine.Clear()
		}()
		return engine.Run(ctx)
	})
	if err != nil {
		return err
	}
	campaign := ifrit.Invoke(candidate)

	p.mu.Lock()
	p.addr, p.pool, p.engine = advertise, pool, engine
	p.mu.Unlock()
	p.logger.Info("auctioneer serving", "address", advertise, "gossip", pool.Addr(), "tls", serverTLS != nil)
	close(ready)

	select {
	case sig := <-signals:
		p.logger.Info("auctioneer stopping", "signal", sig.String())
		campaign.Signal(sig)
		return <-campaign.Wait()
	case err := <-campaign.Wait():
		return err
	case err := <-errc:
		campaign.Signal(os.Interrupt)
		<-campaign.Wait()
		if errors.Is(err, grpc.ErrServerStopped) {
			return nil
		}
		return fmt.Errorf("auctioneer serve: %w", err)
	}
}
