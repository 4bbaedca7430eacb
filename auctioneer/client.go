package auctioneer

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"sync"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/gavel-scheduler/gavel/internal/election"
	"github.com/gavel-scheduler/gavel/proto/models"
)

// ElectionKey is the auctioneers' election under an installation's etcd
// key prefix.
func ElectionKey(prefix string) string { return prefix + "/elections/auctioneer" }

// Client sends auction requests to the elected auctioneer, which it finds
// in the election in etcd. It remembers the leader and looks again when
// the one it knows stops answering or says it is on standby. It is the
// BBS's AuctionRequester.
type Client struct {
	etcd  *clientv3.Client
	key   string
	creds grpc.DialOption

	mu   sync.Mutex // guards addr, conn
	addr string
	conn *grpc.ClientConn
}

// NewClient returns a client for the auctioneers elected under key
// (ElectionKey), dialling with tlsConfig (nil: plaintext).
func NewClient(etcd *clientv3.Client, key string, tlsConfig *tls.Config) *Client {
	creds := grpc.WithTransportCredentials(insecure.NewCredentials())
	if tlsConfig != nil {
		creds = grpc.WithTransportCredentials(credentials.NewTLS(tlsConfig))
	}
	return &Client{etcd: etcd, key: key, creds: creds}
}

// RequestLRPAuctions asks the elected auctioneer to place instances.
func (c *Client) RequestLRPAuctions(ctx context.Context, reqs []*models.LRPStartRequest) error {
	return c.call(ctx, func(a models.AuctioneerClient) error {
		_, err := a.RequestLRPAuctions(ctx, &models.RequestLRPAuctionsRequest{Requests: reqs})
		return err
	})
}

// RequestTaskAuctions asks the elected auctioneer to place tasks.
func (c *Client) RequestTaskAuctions(ctx context.Context, reqs []*models.TaskStartRequest) error {
	return c.call(ctx, func(a models.AuctioneerClient) error {
		_, err := a.RequestTaskAuctions(ctx, &models.RequestTaskAuctionsRequest{Requests: reqs})
		return err
	})
}

// call runs fn against the known leader, and once more against a freshly
// looked-up one if the first is unreachable or on standby.
func (c *Client) call(ctx context.Context, fn func(models.AuctioneerClient) error) error {
	var err error
	for attempt := range 2 {
		var a models.AuctioneerClient
		if a, err = c.leader(ctx, attempt > 0); err != nil {
			return err
		}
		if err = fn(a); status.Code(err) != codes.Unavailable {
			return models.FromStatus(err)
		}
	}
	return fmt.Errorf("auctioneer: %w", err)
}

func (c *Client) leader(ctx context.Context, refresh bool) (models.AuctioneerClient, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != nil && !refresh {
		return models.NewAuctioneerClient(c.conn), nil
	}
	addr, err := election.Leader(ctx, c.etcd, c.key)
	if errors.Is(err, election.ErrNoLeader) {
		return nil, models.NewError(models.TypeUnavailable, "no auctioneer is elected")
	}
	if err != nil {
		return nil, err
	}
	if c.conn != nil && addr == c.addr {
		return models.NewAuctioneerClient(c.conn), nil
	}
	conn, err := grpc.NewClient(addr, c.creds)
	if err != nil {
		return nil, fmt.Errorf("auctioneer %s: %w", addr, err)
	}
	if c.conn != nil {
		_ = c.conn.Close()
	}
	c.addr, c.conn = addr, conn
	return models.NewAuctioneerClient(conn), nil
}

// Close closes the connection to the leader.
func (c *Client) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != nil {
		_ = c.conn.Close()
		c.conn = nil
	}
}
