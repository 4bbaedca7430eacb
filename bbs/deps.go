package bbs

import (
	"context"

	"github.com/gavel-scheduler/gavel/proto/models"
)

// AuctionRequester sends work to the auctioneer. The BBS asks for an auction
// whenever it creates or frees an instance slot or desires a task. Requests
// are best effort: a lost request is re-sent by convergence.
type AuctionRequester interface {
	RequestLRPAuctions(ctx context.Context, reqs []*models.LRPStartRequest) error
	RequestTaskAuctions(ctx context.Context, reqs []*models.TaskStartRequest) error
}

// CellClient reaches the rep of a present cell, to stop or update an
// instance or cancel a task it runs.
type CellClient interface {
	StopLRPInstance(ctx context.Context, cell *models.CellPresence, key *models.ActualLRPKey, ik *models.ActualLRPInstanceKey) error
	// UpdateLRPInstance gives a running instance new internal routes and
	// metric tags, which the cell then reports in its StartActualLRP.
	UpdateLRPInstance(ctx context.Context, cell *models.CellPresence, key *models.ActualLRPKey, ik *models.ActualLRPInstanceKey,
		routes []*models.ActualLRPInternalRoute, tags map[string]string) error
	CancelTask(ctx context.Context, cell *models.CellPresence, taskGuid string) error
}
