package bbs

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"

	"github.com/gavel-scheduler/gavel/bbs/db"
	"github.com/gavel-scheduler/gavel/internal/clientconfig"
	"github.com/gavel-scheduler/gavel/internal/etcdembed"
	"github.com/gavel-scheduler/gavel/internal/tlsutil"
	"github.com/gavel-scheduler/gavel/proto/models"
)

// testCluster is an embedded etcd plus certificates; BBS servers started on
// it share the store, as several BBS processes would.
type testCluster struct {
	t     testing.TB
	etcd  *clientv3.Client
	certs tlsutil.Paths
}

func newCluster(t testing.TB, fsync bool) *testCluster {
	t.Helper()
	_, client := etcdembed.StartForTestOpts(t, etcdembed.Options{NoFsync: !fsync})
	certs, err := tlsutil.WriteDir(t.TempDir(), tlsutil.DefaultHosts())
	if err != nil {
		t.Fatal(err)
	}
	return &testCluster{t: t, etcd: client, certs: certs}
}

type testBBS struct {
	addr      string
	store     *db.Store
	callbacks *TaskCallbacks
	metrics   *prometheus.Registry
}

type bbsOptions struct {
	insecure  bool
	callbacks CallbackConfig
	cells     CellClient
}

// start runs one BBS server on 127.0.0.1 until the test ends.
func (c *testCluster) start(o bbsOptions) *testBBS {
	c.t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	reg := prometheus.NewRegistry()
	store := db.New(c.etcd, db.Config{Logger: logger, Registerer: reg})
	callbacks := NewTaskCallbacks(store, o.callbacks, nil, logger)
	svc := NewServer(ServerDeps{Store: store, Callbacks: callbacks, Cells: o.cells, Logger: logger})
	var tc *tls.Config
	if !o.insecure {
		bc := c.certs.Components["bbs"]
		var err error
		if tc, err = tlsutil.ServerConfig(c.certs.CACert, bc.Cert, bc.Key); err != nil {
			c.t.Fatal(err)
		}
	}
	srv, _ := NewGRPCServer(svc, tc, nil, logger)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		c.t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = srv.Serve(lis) }()
	c.t.Cleanup(func() {
		srv.Stop()
		wg.Wait()
		callbacks.Close()
	})
	return &testBBS{addr: lis.Addr().String(), store: store, callbacks: callbacks, metrics: reg}
}

// dial returns an mTLS client of b using the "client" certificate.
func (c *testCluster) dial(b *testBBS) models.BBSClient {
	c.t.Helper()
	cc := c.certs.Components["client"]
	return c.dialConfig(&clientconfig.Config{BBSAddress: b.addr, CACert: c.certs.CACert, ClientCert: cc.Cert, ClientKey: cc.Key})
}

func (c *testCluster) dialConfig(cfg *clientconfig.Config, opts ...grpc.DialOption) models.BBSClient {
	c.t.Helper()
	conn, err := cfg.Dial(context.Background(), opts...)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { conn.Close() })
	return models.NewBBSClient(conn)
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func testDesired(guid string, instances int32) *models.DesiredLRP {
	return &models.DesiredLRP{
		ProcessGuid: guid,
		Domain:      "apps",
		LogGuid:     guid,
		Instances:   instances,
		Rootfs:      "preloaded:cflinuxfs4",
		MemoryMb:    128,
		DiskMb:      256,
		Ports:       []uint32{8080},
		MetricTags: map[string]*models.MetricTagValue{
			"index": {Dynamic: models.MetricTagValue_INDEX},
		},
		Action: &models.Action{Kind: &models.Action_Run{Run: &models.RunAction{
			Path: "/bin/httpd", Args: []string{"-f", "-p", "8080"}, User: "root",
		}}},
	}
}

func testTask(guid, callback string) *models.DesireTaskRequest {
	return &models.DesireTaskRequest{
		TaskGuid: guid,
		Domain:   "jobs",
		TaskDefinition: &models.TaskDefinition{
			Rootfs:                "preloaded:cflinuxfs4",
			MemoryMb:              64,
			ResultFile:            "/tmp/result",
			CompletionCallbackUrl: callback,
			Action: &models.Action{Kind: &models.Action_Run{Run: &models.RunAction{
				Path: "/bin/sh", Args: []string{"-c", "echo hi > /tmp/result"}, User: "root",
			}}},
		},
	}
}

// snapshot returns every key and value under the store's prefix.
func snapshot(t testing.TB, c *clientv3.Client) map[string]string {
	t.Helper()
	resp, err := c.Get(context.Background(), db.DefaultPrefix+"/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]string, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		out[string(kv.Key)] = string(kv.Value)
	}
	return out
}
