package auctioneer

import (
	"context"
	"sync/atomic"

	"github.com/gavel-scheduler/gavel/proto/models"
)

// HealthService is the name the auctioneer reports under in the gRPC
// health service.
const HealthService = "gavel.models.v1.Auctioneer"

// Server is the auctioneer's gRPC API: it queues work for the engine while
// this auctioneer leads, and refuses it (Unavailable) on standby, so a
// client that reached a stale leader looks the leader up again.
type Server struct {
	models.UnimplementedAuctioneerServer
	engine  *Engine
	leading atomic.Bool
}

// NewServer returns the API over an engine.
func NewServer(engine *Engine) *Server { return &Server{engine: engine} }

// SetLeading says whether this auctioneer is the elected one.
func (s *Server) SetLeading(on bool) { s.leading.Store(on) }

var errStandby = models.NewError(models.TypeUnavailable, "this auctioneer is on standby; ask the elected one")

// RequestLRPAuctions implements models.AuctioneerServer.
func (s *Server) RequestLRPAuctions(_ context.Context, req *models.RequestLRPAuctionsRequest) (*models.RequestAuctionsResponse, error) {
	if !s.leading.Load() {
		return nil, errStandby
	}
	s.engine.AddLRPs(req.Requests)
	return &models.RequestAuctionsResponse{}, nil
}

// RequestTaskAuctions implements models.AuctioneerServer.
func (s *Server) RequestTaskAuctions(_ context.Context, req *models.RequestTaskAuctionsRequest) (*models.RequestAuctionsResponse, error) {
	if !s.leading.Load() {
		return nil, errStandby
	}
	s.engine.AddTasks(req.Requests)
	return &models.RequestAuctionsResponse{}, nil
}

// BBSReporter reports placement failures through the BBS API.
type BBSReporter struct{ BBS models.BBSClient }

// FailLRP implements Reporter.
func (r BBSReporter) FailLRP(ctx context.Context, key *models.ActualLRPKey, reason string) error {
	_, err := r.BBS.FailActualLRP(ctx, &models.FailActualLRPRequest{ActualLrpKey: key, ErrorMessage: reason})
	return models.FromStatus(err)
}

// RejectTask implements Reporter.
func (r BBSReporter) RejectTask(ctx context.Context, taskGuid, reason string) error {
	_, err := r.BBS.RejectTask(ctx, &models.RejectTaskRequest{TaskGuid: taskGuid, RejectionReason: reason})
	return models.FromStatus(err)
}
