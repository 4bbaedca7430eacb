package rep

import (
	"context"
	"crypto/tls"
	"fmt"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/gavel-scheduler/gavel/proto/models"
)

// Client reaches reps by address, keeping one connection per rep. The
// auctioneer uses it for State and Perform, the BBS (as its CellClient) to
// stop and update instances and cancel tasks, the converger to update
// instances whose internal routes or metric tags drifted, the CLI for cell
// states.
type Client struct {
	creds grpc.DialOption

	mu    sync.Mutex // guards conns
	conns map[string]*grpc.ClientConn
}

// NewClient returns a client using tlsConfig (mutual TLS); nil dials
// plaintext, for reps started with --insecure.
func NewClient(tlsConfig *tls.Config) *Client {
	creds := grpc.WithTransportCredentials(insecure.NewCredentials())
	if tlsConfig != nil {
		creds = grpc.WithTransportCredentials(credentials.NewTLS(tlsConfig))
	}
	return &Client{creds: creds, conns: map[string]*grpc.ClientConn{}}
}

func (c *Client) rep(addr string) (models.RepClient, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if conn, ok := c.conns[addr]; ok {
		return models.NewRepClient(conn), nil
	}
	conn, err := grpc.NewClient(addr, c.creds, grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		return nil, fmt.Errorf("rep %s: %w", addr, err)
	}
	c.conns[addr] = conn
	return models.NewRepClient(conn), nil
}

// State asks the rep at addr for its cell's state.
func (c *Client) State(ctx context.Context, addr string) (*models.CellState, error) {
	r, err := c.rep(addr)
	if err != nil {
		return nil, err
	}
	st, err := r.State(ctx, &models.CellStateRequest{})
	if err != nil {
		return nil, fmt.Errorf("state of rep %s: %w", addr, err)
	}
	return st, nil
}

// Perform sends work to the rep at addr.
func (c *Client) Perform(ctx context.Context, addr string, req *models.PerformRequest) (*models.PerformResponse, error) {
	r, err := c.rep(addr)
	if err != nil {
		return nil, err
	}
	resp, err := r.Perform(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("perform on rep %s: %w", addr, err)
	}
	return resp, nil
}

// StopLRPInstance asks the cell to stop one instance.
func (c *Client) StopLRPInstance(ctx context.Context, cell *models.CellPresence, key *models.ActualLRPKey, ik *models.ActualLRPInstanceKey) error {
	r, err := c.rep(cell.RepAddress)
	if err != nil {
		return err
	}
	if _, err := r.StopLRPInstance(ctx, &models.StopLRPInstanceRequest{ActualLrpKey: key, ActualLrpInstanceKey: ik}); err != nil {
		return fmt.Errorf("stop %s/%d on cell %s: %w", key.GetProcessGuid(), key.GetIndex(), cell.CellId, err)
	}
	return nil
}

// UpdateLRPInstance gives one instance on the cell new internal routes
// and metric tags.
func (c *Client) UpdateLRPInstance(ctx context.Context, cell *models.CellPresence, key *models.ActualLRPKey, ik *models.ActualLRPInstanceKey,
	routes []*models.ActualLRPInternalRoute, tags map[string]string) error {
	r, err := c.rep(cell.RepAddress)
	if err != nil {
		return err
	}
	if _, err := r.UpdateLRPInstance(ctx, &models.UpdateLRPInstanceRequest{ActualLrpKey: key, ActualLrpInstanceKey: ik,
		ActualLrpInternalRoutes: routes, MetricTags: tags}); err != nil {
		return fmt.Errorf("update %s/%d on cell %s: %w", key.GetProcessGuid(), key.GetIndex(), cell.CellId, err)
	}
	return nil
}

// CancelTask asks the cell to cancel a task.
func (c *Client) CancelTask(ctx context.Context, cell *models.CellPresence, taskGuid string) error {
	r, err := c.rep(cell.RepAddress)
	if err != nil {
		return err
	}
	if _, err := r.CancelTask(ctx, &models.CancelTaskRequest{TaskGuid: taskGuid}); err != nil {
		return fmt.Errorf("cancel task %s on cell %s: %w", taskGuid, cell.CellId, err)
	}
	return nil
}

// Retain closes the connections to every rep not in addrs (cells that left).
func (c *Client) Retain(addrs map[string]bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for a, conn := range c.conns {
		if !addrs[a] {
			_ = conn.Close()
			delete(c.conns, a)
		}
	}
}

// Close closes every connection.
func (c *Client) Close() { c.Retain(nil) }
