package rep

import (
	"context"
	"log/slog"
	"os"
	"time"

	"github.com/gavel-scheduler/gavel/proto/models"
)

// DefaultPresenceTTL is the lease of a cell's presence: a rep that stops
// refreshing it is gone from etcd this long after its last refresh.
const DefaultPresenceTTL = 15 * time.Second

// Presence keeps the cell's presence in etcd, through the BBS, under a
// lease refreshed every third of its TTL. It is an ifrit runner, ready at
// once: a BBS that is briefly away delays the presence, not the cell.
type Presence struct {
	BBS    models.BBSClient
	Cell   *models.CellPresence
	TTL    time.Duration
	Logger *slog.Logger
}

// Run implements ifrit.Runner.
func (p *Presence) Run(signals <-chan os.Signal, ready chan<- struct{}) error {
	ttl := p.TTL
	if ttl <= 0 {
		ttl = DefaultPresenceTTL
	}
	logger := p.Logger
	if logger == nil {
		logger = slog.Default()
	}
	close(ready)
	var lease int64
	failing := false
	refresh := func() {
		ctx, cancel := context.WithTimeout(context.Background(), ttl/3)
		defer cancel()
		resp, err := p.BBS.SetCellPresence(ctx, &models.SetCellPresenceRequest{
			Cell: p.Cell, TtlSeconds: int64((ttl + time.Second - 1) / time.Second), LeaseId: lease})
		if err != nil {
			if !failing {
				logger.Warn("cell presence not refreshed", "error", err)
			}
			failing = true
			return
		}
		if failing || resp.LeaseId != lease {
			logger.Info("cell presence set", "lease_id", resp.LeaseId)
		}
		failing = false
		lease = resp.LeaseId
	}
	refresh()
	t := time.NewTicker(ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-signals:
			return nil
		case <-t.C:
			refresh()
		}
	}
}
