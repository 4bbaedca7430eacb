package bbs

import (
	"context"
	"log/slog"
	"time"

	"github.com/gavel-scheduler/gavel/bbs/db"
	"github.com/gavel-scheduler/gavel/bbs/events"
	"github.com/gavel-scheduler/gavel/proto/models"
)

// Server implements the BBS gRPC service over a store.
type Server struct {
	models.UnimplementedBBSServer

	store     *db.Store
	events    *events.Source
	auctions  AuctionRequester
	cells     CellClient
	callbacks *TaskCallbacks
	logger    *slog.Logger

	// closing ends every event stream when the server shuts down: streams
	// never end on their own, and a graceful stop waits for them.
	closing context.Context
	stop    context.CancelFunc
}

// ServerDeps are what a Server talks to. Auctions and Cells may be nil until
// the auctioneer and reps exist; the BBS then leaves placement and stopping
// to convergence and the reps' own sync, and logs that it could not ask.
type ServerDeps struct {
	Store     *db.Store
	Auctions  AuctionRequester
	Cells     CellClient
	Callbacks *TaskCallbacks
	Logger    *slog.Logger
}

// NewServer returns a BBS service.
func NewServer(d ServerDeps) *Server {
	logger := d.Logger
	if logger == nil {
		logger = slog.Default()
	}
	closing, stop := context.WithCancel(context.Background())
	return &Server{
		closing:   closing,
		stop:      stop,
		store:     d.Store,
		events:    &events.Source{Client: d.Store.Client(), Keys: d.Store.Keys(), Logger: logger},
		auctions:  d.Auctions,
		cells:     d.Cells,
		callbacks: d.Callbacks,
		logger:    logger,
	}
}

// Close stops what the server runs beside its handlers: it ends every open
// event stream (clients see Unavailable and resume elsewhere) and stops the
// event hubs and their etcd watches. Call it when shutdown begins, before
// the gRPC server's graceful stop, which would otherwise wait for streams
// that never end.
func (s *Server) Close() {
	s.stop()
	s.events.Close()
}

// streamContext is a stream's context, also ended when the server closes.
func (s *Server) streamContext(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.closing, cancel)
	return ctx, func() { stop(); cancel() }
}

// requestTimeout bounds the follow-up calls a handler makes after its own
// change is stored (auction requests, rep stops), so a slow peer does not
// hold the client's call.
const requestTimeout = 10 * time.Second

// requestLRPAuctions asks for placements; failures are logged, since
// convergence re-sends anything still unclaimed.
func (s *Server) requestLRPAuctions(ctx context.Context, sched *models.DesiredLRPSchedulingInfo, indices []int32) {
	if len(indices) == 0 {
		return
	}
	if s.auctions == nil {
		s.logger.Debug("no auctioneer configured; instances wait for convergence",
			"process_guid", sched.ProcessGuid(), "instances", len(indices))
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), requestTimeout)
	defer cancel()
	if err := s.auctions.RequestLRPAuctions(ctx, []*models.LRPStartRequest{sched.LRPStartRequest(indices...)}); err != nil {
		s.logger.Warn("request LRP auctions", "process_guid", sched.ProcessGuid(), "instances", len(indices), "error", err)
	}
}

func (s *Server) requestTaskAuction(ctx context.Context, task *models.Task) {
	if s.auctions == nil {
		s.logger.Debug("no auctioneer configured; task waits for convergence", "task_guid", task.TaskGuid)
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), requestTimeout)
	defer cancel()
	if err := s.auctions.RequestTaskAuctions(ctx, []*models.TaskStartRequest{task.TaskStartRequest()}); err != nil {
		s.logger.Warn("request task auction", "task_guid", task.TaskGuid, "error", err)
	}
}
