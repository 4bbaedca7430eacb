package rep

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tedsuo/ifrit"
	"github.com/tedsuo/ifrit/grouper"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/gavel-scheduler/gavel/executor"
	"github.com/gavel-scheduler/gavel/executor/garden"
	"github.com/gavel-scheduler/gavel/internal/gossip"
	"github.com/gavel-scheduler/gavel/proto/models"
)

// Process is a cell's rep: the executor over the cell's Garden server, the
// reconciliation with the BBS (Cell), and the rep API with its gossip
// membership and presence (Runner). It is an ifrit runner, ready once the
// cell is announced.
type Process struct {
	cfg    Config
	reg    prometheus.Registerer
	base   *slog.Logger // the caller's logger; components add their own attributes
	logger *slog.Logger

	mu     sync.Mutex
	runner *Runner
	cell   *Cell
}

// NewProcess returns the rep of one cell.
func NewProcess(cfg Config, reg prometheus.Registerer, logger *slog.Logger) *Process {
	if logger == nil {
		logger = slog.Default()
	}
	return &Process{cfg: cfg, reg: reg, base: logger, logger: logger.With("component", "rep", "cell_id", cfg.CellID)}
}

// Evacuate starts the cell's evacuation (SIGUSR2, `gavel evacuate`); it
// reports false before the process is ready.
func (p *Process) Evacuate() bool {
	p.mu.Lock()
	r := p.runner
	p.mu.Unlock()
	if r == nil || r.Server() == nil {
		return false
	}
	_, _ = r.Server().Evacuate(context.Background(), &models.EvacuateRequest{})
	return true
}

// Cell is the cell's reconciler once ready.
func (p *Process) Cell() *Cell {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cell
}

// Addr is the rep API's address once ready.
func (p *Process) Addr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.runner == nil || p.runner.Server() == nil {
		return ""
	}
	return p.runner.Server().info.RepAddress
}

// Run implements ifrit.Runner.
func (p *Process) Run(signals <-chan os.Signal, ready chan<- struct{}) error {
	serverTLS, clientTLS, err := p.cfg.Files.Configs()
	if err != nil {
		return fmt.Errorf("rep %w", err)
	}
	creds := grpc.WithTransportCredentials(insecure.NewCredentials())
	if clientTLS != nil {
		creds = grpc.WithTransportCredentials(credentials.NewTLS(clientTLS))
	}
	conn, err := grpc.NewClient(p.cfg.BBSAddress, creds)
	if err != nil {
		return fmt.Errorf("bbs %s: %w", p.cfg.BBSAddress, err)
	}
	defer conn.Close()
	bbsClient := models.NewBBSClient(conn)

	gardenClient := garden.NewClient(p.cfg.GardenNetwork, p.cfg.GardenAddress)
	if !p.waitForGarden(signals, gardenClient) {
		return nil
	}
	exec, err := executor.New(context.Background(), executor.Config{
		MemoryMB: p.cfg.MemoryMB, DiskMB: p.cfg.DiskMB, MaxContainers: p.cfg.MaxContainers,
		Owner: p.cfg.CellID, DownloadCacheDir: p.cfg.CacheDir, Logger: p.base.With("cell_id", p.cfg.CellID),
	}, gardenClient)
	if err != nil {
		return fmt.Errorf("rep: %w", err)
	}
	defer exec.Close()

	cell := NewCell(CellConfig{CellID: p.cfg.CellID, Zone: p.cfg.Zone, PollInterval: p.cfg.PollInterval.D(),
		EvacuationPollInterval: p.cfg.EvacuationPollInterval.D(), EvacuationTimeout: p.cfg.EvacuationTimeout.D()},
		bbsClient, exec, p.reg, p.logger)
	// The runner names the node and sets what it announces.
	gc, err := p.cfg.PoolConfig.Node("", gossip.Meta{}, nil)
	if err != nil {
		return err
	}
	runner := NewRunner(RunnerConfig{
		Info: p.cfg.Info(), ListenAddress: p.cfg.ListenAddress, TLS: serverTLS,
		Containers: ExecutorContainers{Executor: exec}, Cell: cell, Executor: exec,
		Gossip: &gc, BBS: bbsClient, PresenceTTL: p.cfg.PresenceTTL.D(), Registerer: p.reg, Logger: p.base,
	})
	p.mu.Lock()
	p.runner, p.cell = runner, cell
	p.mu.Unlock()

	// The API and presence come up once the first bulk sync has queued the
	// reconciliation of what a previous rep left.
	group := ifrit.Invoke(grouper.NewOrdered(os.Interrupt, grouper.Members{
		{Name: "reconcile", Runner: cell},
		{Name: "api", Runner: runner},
	}))
	select {
	case <-group.Ready():
		close(ready)
	case err := <-group.Wait():
		return err
	}
	select {
	case sig := <-signals:
		group.Signal(sig)
		return <-group.Wait()
	case err := <-group.Wait():
		return err
	}
}

// waitForGarden waits until the cell's Garden server answers, so the rep
// and its Garden server can start in any order; false means the rep was
// signalled first.
func (p *Process) waitForGarden(signals <-chan os.Signal, client *garden.HTTPClient) bool {
	for attempt := 0; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := client.Ping(ctx)
		cancel()
		if err == nil {
			return true
		}
		if attempt%10 == 0 {
			p.logger.Warn("waiting for the Garden server", "garden_address", p.cfg.GardenAddress, "error", err)
		}
		select {
		case <-signals:
			return false
		case <-time.After(500 * time.Millisecond):
		}
	}
}
