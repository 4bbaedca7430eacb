package routeemitter

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"github.com/tedsuo/ifrit"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/gavel-scheduler/gavel/bbs"
	"github.com/gavel-scheduler/gavel/internal/config"
	"github.com/gavel-scheduler/gavel/internal/etcdembed"
	"github.com/gavel-scheduler/gavel/internal/tlsutil"
	"github.com/gavel-scheduler/gavel/proto/models"
)

// harness is a real BBS over a real embedded etcd, with mutual TLS from a
// `gavel certs`-style directory, and helpers that drive instances the way
// a rep does.
type harness struct {
	t     testing.TB
	etcd  *clientv3.Client
	certs tlsutil.Paths
	bbs   models.BBSClient
	// bbsAddr is where the BBS listens; stopBBS stops it.
	bbsAddr string
	stopBBS func()
}

func quietLogger() *slog.Logger {
	if os.Getenv("ROUTE_EMITTER_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func newHarness(t testing.TB, opts etcdembed.Options) *harness {
	t.Helper()
	_, etcd := etcdembed.StartForTestOpts(t, opts)
	certs, err := tlsutil.WriteDir(t.TempDir(), tlsutil.DefaultHosts())
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, etcd: etcd, certs: certs}
	h.startBBS("127.0.0.1:0")
	h.bbs = models.NewBBSClient(h.dial(h.bbsAddr, "client"))
	ctx := context.Background()
	if _, err := h.bbs.UpsertDomain(ctx, &models.UpsertDomainRequest{Domain: "apps"}); err != nil {
		t.Fatal(err)
	}
	return h
}

// startBBS serves a BBS on addr ("127.0.0.1:0" for any port).
func (h *harness) startBBS(addr string) {
	h.t.Helper()
	bc := h.certs.Components["bbs"]
	cfg := bbs.DefaultConfig()
	cfg.ListenAddress, cfg.DebugAddress = addr, ""
	cfg.CACert, cfg.ServerCert, cfg.ServerKey = h.certs.CACert, bc.Cert, bc.Key
	cfg.ShutdownTimeout = config.Duration(time.Second)
	runner := bbs.NewRunner(cfg, h.etcd, nil, quietLogger())
	proc := ifrit.Invoke(runner)
	h.bbsAddr = runner.Addr()
	stopped := false
	h.stopBBS = func() {
		if !stopped {
			stopped = true
			proc.Signal(os.Interrupt)
			<-proc.Wait()
		}
	}
	h.t.Cleanup(h.stopBBS)
}

// dial connects with a component's certificate.
func (h *harness) dial(addr, component string) *grpc.ClientConn {
	h.t.Helper()
	cp := h.certs.Components[component]
	tc, err := tlsutil.ClientConfig(h.certs.CACert, cp.Cert, cp.Key, "")
	if err != nil {
		h.t.Fatal(err)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(tc)),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(512<<20)))
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { conn.Close() })
	return conn
}

// emitterConfig is a global-mode route emitter on a free loopback port.
func (h *harness) emitterConfig() Config {
	rc := h.certs.Components["route-emitter"]
	cfg := DefaultConfig()
	cfg.ListenAddress, cfg.DebugAddress = "127.0.0.1:0", ""
	cfg.BBSAddress = h.bbsAddr
	cfg.CACert, cfg.Cert, cfg.Key = h.certs.CACert, rc.Cert, rc.Key
	cfg.ElectionTTL = config.Duration(2 * time.Second)
	cfg.ShutdownTimeout = config.Duration(2 * time.Second)
	return cfg
}

// startEmitter runs a route emitter until the test ends (or stop).
func (h *harness) startEmitter(cfg Config, opts ...Option) (*Process, func()) {
	h.t.Helper()
	p := NewProcess(cfg, h.etcd, nil, quietLogger(), opts...)
	proc := ifrit.Background(p)
	select {
	case <-proc.Ready():
	case err := <-proc.Wait():
		h.t.Fatalf("route emitter exited: %v", err)
	case <-time.After(30 * time.Second):
		h.t.Fatal("route emitter not ready")
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			proc.Signal(os.Interrupt)
			if err := <-proc.Wait(); err != nil {
				h.t.Errorf("route emitter: %v", err)
			}
		}
	}
	h.t.Cleanup(stop)
	return p, stop
}

// waitServing polls until the emitter serves xDS.
func waitServing(t testing.TB, p *Process) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !p.Serving() {
		if time.Now().After(deadline) {
			t.Fatal("route emitter never started serving")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (h *harness) desire(guid string, instances int32, routes string) {
	h.t.Helper()
	_, err := h.bbs.DesireLRP(context.Background(), &models.DesireLRPRequest{DesiredLrp: &models.DesiredLRP{
		ProcessGuid: guid, Domain: "apps", LogGuid: guid, Instances: instances, Rootfs: "preloaded:cflinuxfs4", MemoryMb: 128, DiskMb: 256,
		Ports:      []uint32{8080},
		Routes:     routesJSON(h.t, routes),
		Action:     &models.Action{Kind: &models.Action_Run{Run: &models.RunAction{Path: "/bin/app", User: "vcap"}}},
		MetricTags: map[string]*models.MetricTagValue{"source_id": {Static: guid}},
	}})
	if err != nil {
		h.t.Fatalf("desire %s: %v", guid, err)
	}
}

// run claims and starts one index the way a rep does, with the instance
// listening on 127.0.0.1:hostPort for container port 8080.
func (h *harness) run(guid string, index int32, cell string, hostPort uint32) *models.ActualLRPInstanceKey {
	h.t.Helper()
	ctx := context.Background()
	ik := &models.ActualLRPInstanceKey{InstanceGuid: fmt.Sprintf("%s-%d-%d", guid, index, hostPort), CellId: cell}
	if _, err := h.bbs.ClaimActualLRP(ctx, &models.ClaimActualLRPRequest{ProcessGuid: guid, Index: index, ActualLrpInstanceKey: ik}); err != nil {
		h.t.Fatalf("claim %s/%d: %v", guid, index, err)
	}
	h.startClaimed(guid, index, ik, hostPort)
	return ik
}

func (h *harness) startClaimed(guid string, index int32, ik *models.ActualLRPInstanceKey, hostPort uint32) {
	h.t.Helper()
	_, err := h.bbs.StartActualLRP(context.Background(), &models.StartActualLRPRequest{
		ActualLrpKey:         &models.ActualLRPKey{ProcessGuid: guid, Index: index, Domain: "apps"},
		ActualLrpInstanceKey: ik,
		ActualLrpNetInfo: &models.ActualLRPNetInfo{Address: "127.0.0.1", InstanceAddress: "10.255.0.2",
			Ports: []*models.PortMapping{{ContainerPort: 8080, HostPort: hostPort}}},
	})
	if err != nil {
		h.t.Fatalf("start %s/%d: %v", guid, index, err)
	}
}

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
