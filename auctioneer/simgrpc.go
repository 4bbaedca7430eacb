package auctioneer

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/gavel-scheduler/gavel/internal/grpcserver"
	"github.com/gavel-scheduler/gavel/internal/tlsutil"
	"github.com/gavel-scheduler/gavel/proto/models"
	"github.com/gavel-scheduler/gavel/rep"
)

// SimulateGRPC runs the real auctioneer end to end on simulated cells: one
// rep per cell, each a gRPC server on loopback with in-memory containers,
// all over mutual TLS as in production. The workload goes in through the
// auctioneer's own gRPC API, one request per app as the BBS sends them;
// the engine batches, fetches every cell's state, schedules and commits
// through Perform. What cannot be placed is counted by reason, as the BBS
// would be told.
func SimulateGRPC(ctx context.Context, cfg SimConfig) (SimReport, error) {
	if err := cfg.Validate(); err != nil {
		return SimReport{}, err
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	dir, err := os.MkdirTemp("", "gavel-sim-certs")
	if err != nil {
		return SimReport{}, err
	}
	defer os.RemoveAll(dir)
	certs, err := tlsutil.WriteDir(dir, tlsutil.DefaultHosts())
	if err != nil {
		return SimReport{}, err
	}
	repCert, auctCert := certs.Components["rep"], certs.Components["auctioneer"]
	repTLS, err := tlsutil.ServerConfig(certs.CACert, repCert.Cert, repCert.Key)
	if err != nil {
		return SimReport{}, err
	}
	auctServerTLS, err := tlsutil.ServerConfig(certs.CACert, auctCert.Cert, auctCert.Key)
	if err != nil {
		return SimReport{}, err
	}
	clientTLS, err := tlsutil.ClientConfig(certs.CACert, auctCert.Cert, auctCert.Key, "")
	if err != nil {
		return SimReport{}, err
	}

	cells, stop, err := startSimCells(cfg, repTLS, logger)
	defer stop()
	if err != nil {
		return SimReport{}, err
	}
	list := make(staticList, len(cells))
	for i, c := range cells {
		list[i] = CellAddress{ID: c.id, Address: c.addr}
	}

	reps := rep.NewClient(clientTLS)
	defer reps.Close()
	reporter := &countingReporter{reasons: map[string]int{}}
	engine := NewEngine(EngineConfig{}, list, reps, reporter, nil, logger)
	work, sizes := simWorkload(cfg)
	report := SimReport{Mode: "grpc", Cells: cfg.Cells, Zones: cfg.Zones, Instances: len(work),
		FailuresByReason: map[string]int{}, InstancesPerZone: map[string]int{}}
	// resolved counts the work each round settled; submit waits on it to
	// pace the batches.
	resolved := make(chan int, 1024)
	engine.OnRound = func(r RoundResult) {
		n := r.LRPs + len(r.FailedLRPs) + r.Lost
		if n == 0 {
			return
		}
		report.Rounds++
		report.Placed += r.LRPs
		report.Failed += len(r.FailedLRPs)
		report.Lost += r.Lost
		if cfg.Progress != nil {
			cfg.Progress(report.Placed+report.Failed+report.Lost, len(work))
		}
		resolved <- n
	}

	// The auctioneer's API, in front of the engine.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return SimReport{}, err
	}
	svc := NewServer(engine)
	svc.SetLeading(true)
	srv, _ := grpcserver.New(grpcserver.Options{Component: "auctioneer", TLS: auctServerTLS, Logger: logger, MaxRecvMsgSize: 64 << 20})
	models.RegisterAuctioneerServer(srv, svc)
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(clientTLS)))
	if err != nil {
		return SimReport{}, err
	}
	defer conn.Close()
	api := models.NewAuctioneerClient(conn)

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	engineDone := make(chan error, 1)
	go func() { engineDone <- engine.Run(runCtx) }()

	start := time.Now()
	if err := submit(ctx, api, work, cfg.BatchSize, resolved); err != nil {
		return SimReport{}, err
	}
	wall := time.Since(start)
	cancel()
	<-engineDone

	for reason, n := range reporter.snapshot() {
		report.FailuresByReason[reason] = n
	}
	results := make([]simCell, len(cells))
	appZones := map[string]map[string]int{}
	for i, c := range cells {
		lrps, _, err := c.containers.Work(ctx)
		if err != nil {
			return SimReport{}, err
		}
		total := c.containers.Total()
		results[i] = simCell{zone: c.zone, total: total.MemoryMb, used: total.MemoryMb - c.containers.Remaining().MemoryMb}
		for _, l := range lrps {
			report.InstancesPerZone[c.zone]++
			if appZones[l.ProcessGuid] == nil {
				appZones[l.ProcessGuid] = map[string]int{}
			}
			appZones[l.ProcessGuid][c.zone]++
		}
	}
	report.finish(wall, results, appZones, sizes)
	return report, nil
}

type staticList []CellAddress

func (s staticList) Cells() []CellAddress { return s }

type simRep struct {
	id, zone, addr string
	containers     *rep.MemoryContainers
}

// startSimCells starts one rep per simulated cell on loopback; stop stops
// every one started, also after an error.
func startSimCells(cfg SimConfig, tlsConfig *tls.Config, logger *slog.Logger) ([]simRep, func(), error) {
	var servers []*grpc.Server
	stop := func() {
		for _, s := range servers {
			s.Stop()
		}
	}
	out := make([]simRep, 0, cfg.Cells)
	for i := range cfg.Cells {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return out, stop, fmt.Errorf("simulated cell %d: %w", i, err)
		}
		c := simRep{id: fmt.Sprintf("cell-%04d", i), zone: simZone(i % cfg.Zones), addr: lis.Addr().String(),
			containers: rep.NewMemoryContainers(&models.CellCapacity{MemoryMb: cfg.Cell.MemoryMB, DiskMb: cfg.Cell.DiskMB, Containers: cfg.Cell.Containers})}
		info := rep.CellInfo{CellID: c.id, Zone: c.zone, Index: int32(i), RepAddress: c.addr,
			RootFSProviders: []*models.Provider{{Name: "preloaded", Properties: []string{"sim"}}}}
		srv, _ := grpcserver.New(grpcserver.Options{Component: "rep", TLS: tlsConfig, Logger: logger})
		models.RegisterRepServer(srv, rep.NewServer(info, c.containers, logger))
		go func() { _ = srv.Serve(lis) }()
		servers = append(servers, srv)
		out = append(out, c)
	}
	return out, stop, nil
}

// submit sends the workload to the auctioneer's API, one LRPStartRequest
// per app as the BBS sends them, about batch instances at a time: each
// batch is sent, then settled (placed, failed or lost, as the rounds report
// on resolved) before the next goes.
func submit(ctx context.Context, api models.AuctioneerClient, work []LRP, batch int, resolved <-chan int) error {
	if batch <= 0 {
		batch = len(work)
	}
	for lo := 0; lo < len(work); {
		var reqs []*models.LRPStartRequest
		hi := lo
		for hi < len(work) && (hi-lo < batch || work[hi].ProcessGuid == work[hi-1].ProcessGuid) {
			l := work[hi]
			req := &models.LRPStartRequest{ProcessGuid: l.ProcessGuid, Domain: l.Domain, PlacementConstraint: l.Constraint.proto(),
				Resource: &models.Resource{MemoryMb: l.MemoryMB, DiskMb: l.DiskMB}}
			for ; hi < len(work) && work[hi].ProcessGuid == l.ProcessGuid; hi++ {
				req.Indices = append(req.Indices, work[hi].Index)
			}
			reqs = append(reqs, req)
		}
		if _, err := api.RequestLRPAuctions(ctx, &models.RequestLRPAuctionsRequest{Requests: reqs}); err != nil {
			return fmt.Errorf("request auctions: %w", err)
		}
		for pending := hi - lo; pending > 0; {
			select {
			case n := <-resolved:
				pending -= n
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		lo = hi
	}
	return nil
}

// countingReporter counts placement failures by reason, as the BBS would
// be told them.
type countingReporter struct {
	mu      sync.Mutex
	reasons map[string]int
}

func (c *countingReporter) FailLRP(_ context.Context, _ *models.ActualLRPKey, reason string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reasons[reason]++
	return nil
}

func (c *countingReporter) RejectTask(_ context.Context, _ string, reason string) error {
	return c.FailLRP(context.Background(), nil, reason)
}

func (c *countingReporter) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.reasons))
	for k, v := range c.reasons {
		out[k] = v
	}
	return out
}
