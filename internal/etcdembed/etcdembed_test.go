package etcdembed

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tedsuo/ifrit"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

func put(t *testing.T, c *clientv3.Client, key, value string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Put(ctx, key, value); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

func getValue(t *testing.T, c *clientv3.Client, key string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.Get(ctx, key)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	if len(resp.Kvs) != 1 {
		t.Fatalf("get %s: %d keys, want 1", key, len(resp.Kvs))
	}
	return string(resp.Kvs[0].Value)
}

func TestStartPutGet(t *testing.T) {
	srv, client := StartForTest(t)
	eps := srv.Endpoints()
	if len(eps) != 1 || !strings.HasPrefix(eps[0], "http://127.0.0.1:") {
		t.Fatalf("Endpoints() = %v, want one 127.0.0.1 URL", eps)
	}
	put(t, client, "/gavel/test", "hello")
	if got := getValue(t, client, "/gavel/test"); got != "hello" {
		t.Fatalf("got %q", got)
	}
}

func TestLimitsMatchProduction(t *testing.T) {
	_, client := StartForTestOpts(t, Options{NoFsync: true})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	ops := func(n int) []clientv3.Op {
		out := make([]clientv3.Op, n)
		for i := range out {
			out[i] = clientv3.OpPut(fmt.Sprintf("/limits/%d", i), "v")
		}
		return out
	}
	if _, err := client.Txn(ctx).Then(ops(MaxTxnOps)...).Commit(); err != nil {
		t.Fatalf("transaction of %d ops refused: %v", MaxTxnOps, err)
	}
	if _, err := client.Txn(ctx).Then(ops(MaxTxnOps + 1)...).Commit(); err == nil {
		t.Fatalf("transaction of %d ops accepted", MaxTxnOps+1)
	}
	if _, err := client.Put(ctx, "/limits/big", strings.Repeat("x", MaxRequestBytes)); err == nil {
		t.Fatal("put larger than MaxRequestBytes accepted")
	}
}

func TestRestartKeepsData(t *testing.T) {
	// Reuse one set of ports and one data dir across both runs, as
	// `gavel dev` does on restart.
	ports, err := freePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		DataDir:   t.TempDir(),
		ClientURL: fmt.Sprintf("http://127.0.0.1:%d", ports[0]),
		PeerURL:   fmt.Sprintf("http://127.0.0.1:%d", ports[1]),
	}
	run := func(f func(*clientv3.Client)) {
		t.Helper()
		srv, err := Start(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		client, err := srv.Client()
		if err != nil {
			t.Fatal(err)
		}
		defer client.Close()
		f(client)
	}
	run(func(c *clientv3.Client) { put(t, c, "/gavel/persist", "kept") })
	run(func(c *clientv3.Client) {
		if got := getValue(t, c, "/gavel/persist"); got != "kept" {
			t.Fatalf("after restart got %q, want %q", got, "kept")
		}
	})
}

func TestConcurrentInstancesDoNotCollide(t *testing.T) {
	t.Run("alive together", func(t *testing.T) {
		// Two live members, same key, different values: shared ports or a
		// shared data dir would make one read the other's value.
		srvA, clientA := StartForTestOpts(t, Options{NoFsync: true})
		srvB, clientB := StartForTestOpts(t, Options{NoFsync: true})
		if srvA.Endpoints()[0] == srvB.Endpoints()[0] || srvA.Config().PeerURL == srvB.Config().PeerURL {
			t.Fatalf("members share URLs: %+v and %+v", srvA.Config(), srvB.Config())
		}
		if srvA.Config().DataDir == srvB.Config().DataDir {
			t.Fatalf("members share data dir %s", srvA.Config().DataDir)
		}
		put(t, clientA, "/gavel/who", "a")
		put(t, clientB, "/gavel/who", "b")
		if got := getValue(t, clientA, "/gavel/who"); got != "a" {
			t.Fatalf("member a holds %q", got)
		}
		if got := getValue(t, clientB, "/gavel/who"); got != "b" {
			t.Fatalf("member b holds %q", got)
		}
	})
	t.Run("started in parallel", func(t *testing.T) {
		// Parallel starts race for ports; each must still come up and
		// hold only what it wrote.
		for i := range 4 {
			t.Run(fmt.Sprintf("member%d", i), func(t *testing.T) {
				t.Parallel()
				srv, client := StartForTestOpts(t, Options{NoFsync: true})
				put(t, client, "/gavel/who", srv.Endpoints()[0])
				if got := getValue(t, client, "/gavel/who"); got != srv.Endpoints()[0] {
					t.Fatalf("member at %s holds %q", srv.Endpoints()[0], got)
				}
			})
		}
	})
}

func TestRunner(t *testing.T) {
	ports, err := freePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		DataDir:       t.TempDir(),
		ClientURL:     fmt.Sprintf("http://127.0.0.1:%d", ports[0]),
		PeerURL:       fmt.Sprintf("http://127.0.0.1:%d", ports[1]),
		UnsafeNoFsync: true,
	}
	proc := ifrit.Invoke(Runner(cfg))
	client, err := clientv3.New(clientv3.Config{Endpoints: []string{cfg.ClientURL}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	put(t, client, "/gavel/runner", "up")

	proc.Signal(os.Interrupt)
	select {
	case err := <-proc.Wait():
		if err != nil {
			t.Fatalf("runner exited with %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("runner did not stop within 30s of a signal")
	}
}

func TestRunnerFailsOnBadConfig(t *testing.T) {
	proc := ifrit.Background(Runner(Config{}))
	select {
	case err := <-proc.Wait():
		if err == nil || !strings.Contains(err.Error(), "data dir") {
			t.Fatalf("runner error %v, want a data dir error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("runner with no data dir did not fail")
	}
}

func TestStartHonoursContext(t *testing.T) {
	ports, err := freePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = Start(ctx, Config{
		DataDir:   t.TempDir(),
		ClientURL: fmt.Sprintf("http://127.0.0.1:%d", ports[0]),
		PeerURL:   fmt.Sprintf("http://127.0.0.1:%d", ports[1]),
	})
	// The member may win the race and be ready at once; either way no
	// error other than cancellation is acceptable.
	if err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("Start with a cancelled context: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	base := Config{DataDir: "/var/lib/gavel/etcd"}
	with := func(f func(*Config)) Config {
		c := base
		f(&c)
		return c
	}
	tests := []struct {
		name    string
		cfg     Config
		wantErr string // substring naming the field; empty for valid
	}{
		{"defaults", base, ""},
		{"no data dir", Config{}, "data dir"},
		{"port zero", with(func(c *Config) { c.ClientURL = "http://127.0.0.1:0" }), "client URL"},
		{"non-loopback client", with(func(c *Config) { c.ClientURL = "http://10.0.0.1:2379" }), "client URL"},
		{"hostname peer", with(func(c *Config) { c.PeerURL = "http://localhost:2380" }), "peer URL"},
		{"https", with(func(c *Config) { c.ClientURL = "https://127.0.0.1:2379" }), "client URL"},
		{"same address", with(func(c *Config) { c.PeerURL = DefaultClientURL }), "peer URL"},
		{"ipv6 loopback", with(func(c *Config) { c.ClientURL = "http://[::1]:2379" }), ""},
		{"negative quota", with(func(c *Config) { c.QuotaBackendBytes = -1 }), "quota"},
		{"revision mode", with(func(c *Config) { c.AutoCompactionMode = "revision"; c.AutoCompactionRetention = "10000" }), ""},
		{"revision mode with duration", with(func(c *Config) { c.AutoCompactionMode = "revision" }), "retention"},
		{"periodic hours", with(func(c *Config) { c.AutoCompactionRetention = "2" }), ""},
		{"bad retention", with(func(c *Config) { c.AutoCompactionRetention = "soon" }), "retention"},
		{"bad mode", with(func(c *Config) { c.AutoCompactionMode = "never" }), "mode"},
		{"bad log level", with(func(c *Config) { c.LogLevel = "loud" }), "log level"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Validate() = %v, want an error naming %q", err, tt.wantErr)
			}
		})
	}
}

func TestEmbedConfig(t *testing.T) {
	ec := Config{DataDir: "/tmp/x"}.WithDefaults().embedConfig(zap.NewNop())
	if ec.MaxTxnOps != 128 || ec.MaxRequestBytes != 1572864 {
		t.Fatalf("limits %d ops, %d bytes; want etcd's production defaults", ec.MaxTxnOps, ec.MaxRequestBytes)
	}
	if ec.QuotaBackendBytes != 8<<30 || ec.AutoCompactionMode != "periodic" || ec.AutoCompactionRetention != "1h" {
		t.Fatalf("quota %d, compaction %s/%s", ec.QuotaBackendBytes, ec.AutoCompactionMode, ec.AutoCompactionRetention)
	}
	if ec.LogLevel != "error" || ec.UnsafeNoFsync {
		t.Fatalf("log level %q, no-fsync %v", ec.LogLevel, ec.UnsafeNoFsync)
	}
	if got := ec.AdvertiseClientUrls[0].Host; got != "127.0.0.1:2379" {
		t.Fatalf("advertised client host %q", got)
	}
	if got := ec.AdvertisePeerUrls[0].Host; got != "127.0.0.1:2380" {
		t.Fatalf("advertised peer host %q", got)
	}
}
