// Package election runs gavel's singletons (the auctioneer, the converger,
// the route emitter in global mode) active/standby through an etcd
// election: every process campaigns, one leads, the others wait. The
// leader's key lives under a lease, so when the leader dies its lease
// lapses within the TTL and a standby takes over; a leader that loses its
// lease (a partition from etcd) stops leading before anyone else starts.
// The election value is the leader's address, which is how clients find it.
package election

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// DefaultTTL is the leader lease: the longest a dead leader holds the
// election (Diego's lock TTL).
const DefaultTTL = 15 * time.Second

// ErrNoLeader means nobody holds the election now.
var ErrNoLeader = errors.New("no leader elected")

// Config configures one candidate.
type Config struct {
	Client *clientv3.Client
	// Key is the election's etcd prefix, e.g. "/gavel/elections/auctioneer".
	Key string
	// Value is published while this candidate leads (its address).
	Value string
	// TTL: see DefaultTTL. Whole seconds; at least one.
	TTL    time.Duration
	Logger *slog.Logger
}

// Validate names the first bad field.
func (c *Config) Validate() error {
	switch {
	case c.Client == nil:
		return errors.New("election: etcd client must be set")
	case c.Key == "":
		return errors.New("election key: must be set")
	case c.Value == "":
		return errors.New("election value: must be set")
	case c.TTL != 0 && c.TTL < time.Second:
		return fmt.Errorf("election ttl: %s is under a second", c.TTL)
	}
	return nil
}

// Runner campaigns until it leads, runs Lead while it leads, and campaigns
// again when it loses the lease. It is an ifrit runner, ready at once: a
// standby is a working state.
type Runner struct {
	cfg Config
	// lead runs while this candidate leads; its context ends when the
	// lease is lost or the runner is signalled. An error from lead ends
	// the runner.
	lead   func(ctx context.Context) error
	logger *slog.Logger
}

// NewRunner returns a candidate that runs lead while it holds the election.
func NewRunner(cfg Config, lead func(ctx context.Context) error) (*Runner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.TTL == 0 {
		cfg.TTL = DefaultTTL
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	return &Runner{cfg: cfg, lead: lead, logger: logger.With("election", cfg.Key)}, nil
}

// Run implements ifrit.Runner.
func (r *Runner) Run(signals <-chan os.Signal, ready chan<- struct{}) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	close(ready)
	go func() {
		select {
		case <-signals:
			cancel()
		case <-ctx.Done():
		}
	}()
	for {
		err := r.term(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil && !errors.Is(err, errLeaseLost) {
			return err
		}
		// Lost the lease (or could not get one): back off a little so a
		// flapping etcd does not become a busy loop, then stand again.
		r.logger.Warn("election: standing again", "error", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

var errLeaseLost = errors.New("election lease lost")

// term is one session: campaign, lead until the lease is lost or ctx ends.
func (r *Runner) term(ctx context.Context) error {
	session, err := concurrency.NewSession(r.cfg.Client,
		concurrency.WithTTL(int((r.cfg.TTL+time.Second-1)/time.Second)), concurrency.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("%w: new session: %v", errLeaseLost, err)
	}
	defer func() {
		// Closing revokes the lease: a clean stop hands over at once
		// instead of after the TTL.
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_, _ = r.cfg.Client.Revoke(closeCtx, session.Lease())
		_ = session.Close()
	}()
	e := concurrency.NewElection(session, r.cfg.Key)
	r.logger.Info("election: campaigning", "value", r.cfg.Value)
	campaignCtx, stopCampaign := context.WithCancel(ctx)
	defer stopCampaign()
	go func() {
		select {
		case <-session.Done():
			stopCampaign()
		case <-campaignCtx.Done():
		}
	}()
	if err := e.Campaign(campaignCtx, r.cfg.Value); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("%w: campaign: %v", errLeaseLost, err)
	}
	r.logger.Info("election: leading", "value", r.cfg.Value)
	leadCtx, stopLeading := context.WithCancel(ctx)
	defer stopLeading()
	done := make(chan error, 1)
	go func() { done <- r.lead(leadCtx) }()
	select {
	case <-session.Done():
		stopLeading()
		<-done
		r.logger.Warn("election: lease lost, stopped leading")
		return errLeaseLost
	case <-ctx.Done():
		stopLeading()
		<-done
		r.logger.Info("election: stepping down")
		return nil
	case err := <-done:
		if err == nil {
			err = errors.New("stopped leading on its own")
		}
		return fmt.Errorf("election %s: leader: %w", r.cfg.Key, err)
	}
}

// Leader returns the current leader's value, or ErrNoLeader.
func Leader(ctx context.Context, client *clientv3.Client, key string) (string, error) {
	// Campaign keys sit under key + "/"; the oldest one leads.
	resp, err := client.Get(ctx, key+"/", clientv3.WithFirstCreate()...)
	if err != nil {
		return "", fmt.Errorf("read election %s: %w", key, err)
	}
	if len(resp.Kvs) == 0 {
		return "", ErrNoLeader
	}
	return string(resp.Kvs[0].Value), nil
}
