package election

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tedsuo/ifrit"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/gavel-scheduler/gavel/internal/etcdembed"
)

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// candidate counts whether it is leading now.
type candidate struct {
	leading atomic.Int32
	terms   atomic.Int32
}

func (c *candidate) lead(ctx context.Context) error {
	c.leading.Add(1)
	c.terms.Add(1)
	<-ctx.Done()
	c.leading.Add(-1)
	return nil
}

func start(t *testing.T, client *clientv3.Client, value string, c *candidate) ifrit.Process {
	t.Helper()
	r, err := NewRunner(Config{Client: client, Key: "/test/elections/x", Value: value, TTL: time.Second}, c.lead)
	if err != nil {
		t.Fatal(err)
	}
	p := ifrit.Invoke(r)
	t.Cleanup(func() { p.Signal(os.Interrupt); <-p.Wait() })
	return p
}

func leader(t *testing.T, client *clientv3.Client) string {
	t.Helper()
	v, err := Leader(context.Background(), client, "/test/elections/x")
	if errors.Is(err, ErrNoLeader) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestOneLeaderAndHandOver(t *testing.T) {
	_, client := etcdembed.StartForTest(t)
	if got := leader(t, client); got != "" {
		t.Fatalf("leader %q before any campaign", got)
	}
	var a, b candidate
	pa := start(t, client, "a:1", &a)
	eventually(t, "a leads", func() bool { return a.leading.Load() == 1 && leader(t, client) == "a:1" })
	start(t, client, "b:1", &b)
	// b campaigns but must not lead while a holds the election.
	eventually(t, "b campaigning", func() bool {
		resp, err := client.Get(context.Background(), "/test/elections/x/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		return err == nil && resp.Count == 2
	})
	if b.leading.Load() != 0 {
		t.Fatal("two leaders")
	}

	// A clean stop resigns: b leads at once (well before any TTL).
	pa.Signal(os.Interrupt)
	if err := <-pa.Wait(); err != nil {
		t.Fatal(err)
	}
	if a.leading.Load() != 0 {
		t.Fatal("a still leading after it stopped")
	}
	eventually(t, "b leads", func() bool { return b.leading.Load() == 1 && leader(t, client) == "b:1" })
}

// TestLeaseLossStopsLeading: when the leader's lease goes (revoked here, as
// an expiry would), it stops leading, and stands again.
func TestLeaseLossStopsLeading(t *testing.T) {
	_, client := etcdembed.StartForTest(t)
	var a candidate
	start(t, client, "a:1", &a)
	eventually(t, "a leads", func() bool { return a.leading.Load() == 1 })
	resp, err := client.Get(context.Background(), "/test/elections/x/", clientv3.WithPrefix())
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("campaign keys %v, %v", resp, err)
	}
	if _, err := client.Revoke(context.Background(), clientv3.LeaseID(resp.Kvs[0].Lease)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a leads a second term", func() bool { return a.terms.Load() == 2 && a.leading.Load() == 1 })
}

func TestLeadErrorEndsRunner(t *testing.T) {
	_, client := etcdembed.StartForTest(t)
	r, err := NewRunner(Config{Client: client, Key: "/test/elections/y", Value: "v", TTL: time.Second},
		func(context.Context) error { return errors.New("boom") })
	if err != nil {
		t.Fatal(err)
	}
	p := ifrit.Invoke(r)
	select {
	case err := <-p.Wait():
		if err == nil || !strings.Contains(err.Error(), "boom") {
			t.Fatalf("runner ended with %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("runner did not end")
	}
	if v, err := Leader(context.Background(), client, "/test/elections/y"); !errors.Is(err, ErrNoLeader) {
		t.Fatalf("leader %q (%v) after the leader failed", v, err)
	}
}

func TestConfigValidate(t *testing.T) {
	_, client := etcdembed.StartForTest(t)
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Key: "k", Value: "v"}, "etcd client"},
		{Config{Client: client, Value: "v"}, "election key"},
		{Config{Client: client, Key: "k"}, "election value"},
		{Config{Client: client, Key: "k", Value: "v", TTL: time.Millisecond}, "election ttl"},
	} {
		if _, err := NewRunner(tc.cfg, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want %q", tc.cfg, err, tc.want)
		}
	}
}
