package converger

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tedsuo/ifrit"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/gavel-scheduler/gavel/auctioneer"
	"github.com/gavel-scheduler/gavel/bbs/db"
	"github.com/gavel-scheduler/gavel/internal/election"
	"github.com/gavel-scheduler/gavel/internal/gossip"
	"github.com/gavel-scheduler/gavel/proto/models"
	"github.com/gavel-scheduler/gavel/rep"
)

// Process is one converger daemon: its gossip node and its candidacy; while
// it leads it runs passes every interval, and early when a cell's presence
// disappears from etcd, when gossip reports a cell dead, when a cell's
// presence (re)appears and when an operator confirms a cell loss. It is an
// ifrit runner, ready once the node has joined and the candidacy started.
type Process struct {
	cfg    Config
	etcd   *clientv3.Client
	reg    prometheus.Registerer
	logger *slog.Logger

	mu        sync.Mutex
	pool      *gossip.Pool
	converger *Converger
}

// NewProcess returns a converger over the given etcd client.
func NewProcess(cfg Config, etcd *clientv3.Client, reg prometheus.Registerer, logger *slog.Logger) *Process {
	if logger == nil {
		logger = slog.Default()
	}
	return &Process{cfg: cfg, etcd: etcd, reg: reg, logger: logger.With("component", "converger")}
}

// GossipAddr is the node's gossip address (host:port) once ready.
func (p *Process) GossipAddr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pool == nil {
		return ""
	}
	return p.pool.Addr()
}

// Converger is the pass runner once ready (for `gavel dev` and tests).
func (p *Process) Converger() *Converger {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.converger
}

// Run implements ifrit.Runner.
func (p *Process) Run(signals <-chan os.Signal, ready chan<- struct{}) error {
	clientTLS, err := p.cfg.Files.Client()
	if err != nil {
		return fmt.Errorf("converger %w", err)
	}
	if clientTLS == nil {
		p.logger.Warn("dialling plaintext gRPC")
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
	auctions := auctioneer.NewClient(p.etcd, auctioneer.ElectionKey(p.cfg.KeyPrefix), clientTLS)
	defer auctions.Close()
	reps := rep.NewClient(clientTLS)
	defer reps.Close()

	name := p.cfg.name()
	node, err := p.cfg.PoolConfig.Node("converger-"+name, gossip.Meta{Role: gossip.RoleConverger}, p.logger)
	if err != nil {
		return err
	}
	pool, err := gossip.Join(node)
	if err != nil {
		return err
	}
	defer func() { _ = pool.Leave(time.Second) }()

	metrics := NewMetrics(p.reg)
	bbs := models.NewBBSClient(bbsConn)
	conv := &Converger{
		BBS:      bbs,
		Executor: &Executor{BBS: bbs, Auctions: auctions, Cells: reps, Metrics: metrics, Logger: p.logger},
		Settings: p.cfg.Settings(), Name: name, PassTimeout: p.cfg.CommunicationTimeout.D(),
		Metrics: metrics, Logger: p.logger,
	}
	candidate, err := election.NewRunner(election.Config{
		Client: p.etcd, Key: ElectionKey(p.cfg.KeyPrefix), Value: name, TTL: p.cfg.ElectionTTL.D(), Logger: p.logger,
	}, func(ctx context.Context) error {
		metrics.Leader.Set(1)
		defer metrics.Leader.Set(0)
		p.logger.Info("converger leading", "name", name)
		return p.lead(ctx, conv, pool)
	})
	if err != nil {
		return err
	}
	campaign := ifrit.Invoke(candidate)

	p.mu.Lock()
	p.pool, p.converger = pool, conv
	p.mu.Unlock()
	p.logger.Info("converger standing", "name", name, "gossip", pool.Addr(), "tls", clientTLS != nil)
	close(ready)

	select {
	case sig := <-signals:
		p.logger.Info("converger stopping", "signal", sig.String())
		campaign.Signal(sig)
		return <-campaign.Wait()
	case err := <-campaign.Wait():
		return err
	}
}

// lead runs passes while this converger leads, fed by the signals of cells
// coming and going.
func (p *Process) lead(ctx context.Context, conv *Converger, pool *gossip.Pool) error {
	losses := make(chan struct{}, 1)
	nudges := make(chan struct{}, 1)
	keys := db.NewKeys(p.cfg.KeyPrefix)
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	wg.Add(3)
	go func() {
		defer wg.Done()
		p.watch(ctx, keys.Cells(), true, func(ev *clientv3.Event) {
			switch {
			case ev.Type == mvccpb.DELETE:
				p.logger.Info("cell presence gone", "cell_id", string(ev.Kv.Key[len(keys.Cells()):]))
				signal(losses)
			case ev.IsCreate():
				signal(nudges)
			}
		})
	}()
	go func() {
		defer wg.Done()
		p.watch(ctx, keys.CellLossConfirmation(), false, func(ev *clientv3.Event) {
			if ev.Type == mvccpb.PUT {
				signal(nudges)
			}
		})
	}()
	go func() {
		defer wg.Done()
		for ev := range pool.Subscribe(ctx, 64) {
			if ev.Kind == gossip.NodeLeft && ev.Meta.Role == gossip.RoleCell {
				p.logger.Info("gossip reports a cell gone", "cell_id", ev.Meta.CellID)
				signal(losses)
			}
		}
	}()
	return conv.Run(ctx, Loop{Interval: p.cfg.ConvergenceInterval.D(), LossDelay: p.cfg.CellLossDelay.D()}, losses, nudges)
}

func signal(ch chan<- struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// watch follows key (a prefix when prefix is set) until ctx ends, calling fn
// for every event and watching again after an error.
func (p *Process) watch(ctx context.Context, key string, prefix bool, fn func(*clientv3.Event)) {
	var opts []clientv3.OpOption
	if prefix {
		opts = append(opts, clientv3.WithPrefix())
	}
	for ctx.Err() == nil {
		for resp := range p.etcd.Watch(clientv3.WithRequireLeader(ctx), key, opts...) {
			if err := resp.Err(); err != nil {
				p.logger.Warn("watch failed; watching again", "key", key, "error", err)
				break
			}
			for _, ev := range resp.Events {
				fn(ev)
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}
