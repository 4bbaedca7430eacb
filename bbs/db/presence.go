package db

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/gavel-scheduler/gavel/proto/models"
)

// DefaultCellPresenceTTL is how long a cell stays present without a refresh.
const DefaultCellPresenceTTL = 15 * time.Second

// UpsertDomain marks a domain fresh for ttl (forever when 0). Freshness is an
// etcd lease, so an expired domain disappears by itself.
func (s *Store) UpsertDomain(ctx context.Context, domain string, ttl time.Duration) error {
	now := s.now()
	d := &models.Domain{Domain: domain, Ttl: int64(ttl / time.Second)}
	var opts []clientv3.OpOption
	if ttl > 0 {
		lease, err := s.client.Grant(ctx, int64((ttl+time.Second-1)/time.Second))
		if err != nil {
			return fmt.Errorf("upsert domain %s: grant lease: %w", domain, err)
		}
		d.ExpiresAt = now.Add(ttl).UnixNano()
		opts = append(opts, clientv3.WithLease(lease.ID))
	}
	key := s.keys.Domain(domain)
	resp, err := s.client.Txn(ctx).Then(clientv3.OpGet(key), clientv3.OpPut(key, string(marshal(d)), opts...)).Commit()
	if err != nil {
		return fmt.Errorf("upsert domain %s: %w", domain, err)
	}
	// The previous lease of this domain now holds nothing; revoke it rather
	// than leave it to expire.
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 && kvs[0].Lease != 0 {
		if _, err := s.client.Revoke(ctx, clientv3.LeaseID(kvs[0].Lease)); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
			s.logger.Warn("revoke old domain lease", "domain", domain, "error", err)
		}
	}
	return nil
}

// Domains lists the fresh domains.
func (s *Store) Domains(ctx context.Context) ([]*models.Domain, error) {
	resp, err := s.client.Get(ctx, s.keys.Domains(), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("list domains: %w", err)
	}
	now := s.nowNanos()
	out := make([]*models.Domain, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		d, err := decode[models.Domain](kv)
		if err != nil {
			s.logger.Warn("skipping undecodable domain", "key", string(kv.Key), "error", err)
			continue
		}
		// A lease rounds up to whole seconds and is revoked a little late;
		// the recorded expiry is the truth.
		if d.ExpiresAt != 0 && d.ExpiresAt <= now {
			continue
		}
		out = append(out, d)
	}
	return out, nil
}

// SetCellPresence writes a cell's presence under a lease of ttl. Passing the
// lease id from the previous call refreshes it; a lease that expired (or is
// unknown) is replaced by a new one, whose id is returned.
func (s *Store) SetCellPresence(ctx context.Context, cell *models.CellPresence, ttl time.Duration, leaseID int64) (int64, error) {
	if ttl <= 0 {
		ttl = DefaultCellPresenceTTL
	}
	if leaseID != 0 {
		if _, err := s.client.KeepAliveOnce(ctx, clientv3.LeaseID(leaseID)); err == nil {
			if err := s.putCell(ctx, cell, clientv3.LeaseID(leaseID)); err == nil {
				return leaseID, nil
			} else if !errors.Is(err, rpctypes.ErrLeaseNotFound) {
				return 0, err
			}
		} else if !errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return 0, fmt.Errorf("refresh presence of cell %s: %w", cell.CellId, err)
		}
	}
	lease, err := s.client.Grant(ctx, int64((ttl+time.Second-1)/time.Second))
	if err != nil {
		return 0, fmt.Errorf("presence of cell %s: grant lease: %w", cell.CellId, err)
	}
	if err := s.putCell(ctx, cell, lease.ID); err != nil {
		return 0, err
	}
	return int64(lease.ID), nil
}

func (s *Store) putCell(ctx context.Context, cell *models.CellPresence, lease clientv3.LeaseID) error {
	if _, err := s.client.Put(ctx, s.keys.Cell(cell.CellId), string(marshal(cell)), clientv3.WithLease(lease)); err != nil {
		return fmt.Errorf("presence of cell %s: %w", cell.CellId, err)
	}
	return nil
}

// Cells lists the present cells.
func (s *Store) Cells(ctx context.Context) ([]*models.CellPresence, error) {
	resp, err := s.client.Get(ctx, s.keys.Cells(), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("list cells: %w", err)
	}
	out := make([]*models.CellPresence, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		c, err := decode[models.CellPresence](kv)
		if err != nil {
			s.logger.Warn("skipping undecodable cell presence", "key", string(kv.Key), "error", err)
			continue
		}
		out = append(out, c)
	}
	return out, nil
}

// Cell returns one present cell.
func (s *Store) Cell(ctx context.Context, cellID string) (*models.CellPresence, error) {
	resp, err := s.client.Get(ctx, s.keys.Cell(cellID))
	if err != nil {
		return nil, fmt.Errorf("read cell %s: %w", cellID, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, models.NewError(models.TypeResourceNotFound, "cell %q is not present", cellID)
	}
	return decode[models.CellPresence](resp.Kvs[0])
}
