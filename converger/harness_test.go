package converger

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tedsuo/ifrit"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/gavel-scheduler/gavel/auctioneer"
	"github.com/gavel-scheduler/gavel/bbs"
	"github.com/gavel-scheduler/gavel/internal/election"
	"github.com/gavel-scheduler/gavel/internal/etcdembed"
	"github.com/gavel-scheduler/gavel/internal/tlsutil"
	"github.com/gavel-scheduler/gavel/proto/models"
	"github.com/gavel-scheduler/gavel/rep"
)

// env is a real system without cells: an embedded etcd, a BBS and an
// auctioneer over mutual TLS on 127.0.0.1, and a converger (reaching reps
// over mutual TLS) whose clock runs ahead of the real one by an offset the
// test sets.
type env struct {
	t       testing.TB
	etcd    *clientv3.Client
	certs   tlsutil.Paths
	bbsAddr string
	bbs     models.BBSClient
	conv    *Converger
	metrics *Metrics
	offset  atomic.Int64
}

type envOptions struct {
	callbackAttempts int
	// fsync keeps etcd durable (benchmarks measure this machine's real
	// store).
	fsync bool
	// noAuctioneer runs no auctioneer; auction requests then fail.
	noAuctioneer bool
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newEnv(t testing.TB, o envOptions) *env {
	t.Helper()
	_, client := etcdembed.StartForTestOpts(t, etcdembed.Options{NoFsync: !o.fsync})
	certs, err := tlsutil.WriteDir(t.TempDir(), tlsutil.DefaultHosts())
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, etcd: client, certs: certs}
	logger := quietLogger()

	clientTLS := func(component string) *grpc.ClientConn {
		t.Helper()
		c := certs.Components[component]
		tc, err := tlsutil.ClientConfig(certs.CACert, c.Cert, c.Key, "")
		if err != nil {
			t.Fatal(err)
		}
		conn, err := grpc.NewClient(e.bbsAddr, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	bc := certs.Components["bbs"]
	bcTLS, err := tlsutil.ClientConfig(certs.CACert, bc.Cert, bc.Key, "")
	if err != nil {
		t.Fatal(err)
	}
	bcfg := bbs.DefaultConfig()
	bcfg.ListenAddress = "127.0.0.1:0"
	bcfg.CACert, bcfg.ServerCert, bcfg.ServerKey = certs.CACert, bc.Cert, bc.Key
	if o.callbackAttempts > 0 {
		bcfg.CallbackAttempts = o.callbackAttempts
	}
	bbsAuctions := auctioneer.NewClient(client, auctioneer.ElectionKey(bcfg.KeyPrefix), bcTLS)
	t.Cleanup(bbsAuctions.Close)
	runner := bbs.NewRunner(bcfg, client, prometheus.NewRegistry(), logger, bbs.WithAuctioneer(bbsAuctions))
	bbsProc := ifrit.Invoke(runner)
	t.Cleanup(func() { bbsProc.Signal(os.Interrupt); <-bbsProc.Wait() })
	e.bbsAddr = runner.Addr()

	if !o.noAuctioneer {
		ac := certs.Components["auctioneer"]
		acfg := auctioneer.DefaultConfig()
		acfg.ListenAddress = "127.0.0.1:0"
		acfg.BBSAddress = e.bbsAddr
		acfg.CACert, acfg.Cert, acfg.Key = certs.CACert, ac.Cert, ac.Key
		acfg.GossipBindPort, acfg.GossipLocal = 0, true
		acfg.ElectionTTL = acfg.ElectionTTL / 3
		aproc := ifrit.Invoke(auctioneer.NewProcess(acfg, client, prometheus.NewRegistry(), logger))
		t.Cleanup(func() { aproc.Signal(os.Interrupt); <-aproc.Wait() })
		e.pollUntil("an elected auctioneer", func() bool {
			v, err := election.Leader(context.Background(), client, auctioneer.ElectionKey(acfg.KeyPrefix))
			return err == nil && v != ""
		})
	}

	cc := certs.Components["converger"]
	ccTLS, err := tlsutil.ClientConfig(certs.CACert, cc.Cert, cc.Key, "")
	if err != nil {
		t.Fatal(err)
	}
	auctions := auctioneer.NewClient(client, auctioneer.ElectionKey("/gavel/v1"), ccTLS)
	t.Cleanup(auctions.Close)
	reps := rep.NewClient(ccTLS)
	t.Cleanup(reps.Close)
	e.bbs = models.NewBBSClient(clientTLS("converger"))
	e.metrics = NewMetrics(prometheus.NewRegistry())
	var requester AuctionRequester = auctions
	if o.noAuctioneer {
		requester = nil
	}
	e.conv = &Converger{
		BBS:      e.bbs,
		Executor: &Executor{BBS: e.bbs, Auctions: requester, Cells: reps, Metrics: e.metrics, Logger: logger},
		Settings: DefaultSettings(), Name: "test", Metrics: e.metrics, Logger: logger,
		Now: func() time.Time { return time.Now().Add(time.Duration(e.offset.Load())) },
	}
	return e
}

func (e *env) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	e.t.Cleanup(cancel)
	return ctx
}

// later moves the converger's clock d ahead of the real one.
func (e *env) later(d time.Duration) { e.offset.Store(int64(d)) }

func (e *env) pollUntil(what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pass runs one convergence pass and fails the test on an error.
func (e *env) pass() (*Plan, *Report) {
	e.t.Helper()
	p, r, err := e.conv.Pass(e.ctx())
	if err != nil {
		e.t.Fatalf("pass: %v", err)
	}
	if r.AuctionError != nil {
		e.t.Fatalf("pass could not reach the auctioneer: %v", r.AuctionError)
	}
	return p, r
}

// cell announces a present cell under a lease of ttl and returns the lease.
func (e *env) cell(id string, ttl time.Duration) clientv3.LeaseID {
	e.t.Helper()
	resp, err := e.bbs.SetCellPresence(e.ctx(), &models.SetCellPresenceRequest{
		Cell: &models.CellPresence{CellId: id, RepAddress: "127.0.0.1:1", Zone: "z1"}, TtlSeconds: int64(ttl / time.Second)})
	if err != nil {
		e.t.Fatal(err)
	}
	return clientv3.LeaseID(resp.LeaseId)
}

// lose ends cells' presences at once, as their leases lapsing would.
func (e *env) lose(leases ...clientv3.LeaseID) {
	e.t.Helper()
	for _, l := range leases {
		if _, err := e.etcd.Revoke(e.ctx(), l); err != nil {
			e.t.Fatal(err)
		}
	}
}

func desiredLRP(guid string, instances int32) *models.DesiredLRP {
	return &models.DesiredLRP{
		ProcessGuid: guid, Domain: "apps", LogGuid: guid, Instances: instances,
		Rootfs: "preloaded:busybox", MemoryMb: 64, DiskMb: 64, Ports: []uint32{8080},
		MetricTags: map[string]*models.MetricTagValue{"index": {Dynamic: models.MetricTagValue_INDEX}},
		Action: &models.Action{Kind: &models.Action_Run{Run: &models.RunAction{
			Path: "/bin/httpd", Args: []string{"-f", "-p", "8080"}, User: "root"}}},
	}
}

func (e *env) desire(guid string, instances int32) {
	e.t.Helper()
	if _, err := e.bbs.DesireLRP(e.ctx(), &models.DesireLRPRequest{DesiredLrp: desiredLRP(guid, instances)}); err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.bbs.UpsertDomain(e.ctx(), &models.UpsertDomainRequest{Domain: "apps"}); err != nil {
		e.t.Fatal(err)
	}
}

func instanceKey(guid string, index int32, cell string) *models.ActualLRPInstanceKey {
	return &models.ActualLRPInstanceKey{InstanceGuid: fmt.Sprintf("%s-%d-%s", guid, index, cell), CellId: cell}
}

// start claims and starts an instance on cell, as its rep would.
func (e *env) start(guid string, index int32, cell string) {
	e.t.Helper()
	key := instanceKey(guid, index, cell)
	if _, err := e.bbs.ClaimActualLRP(e.ctx(), &models.ClaimActualLRPRequest{ProcessGuid: guid, Index: index, ActualLrpInstanceKey: key}); err != nil {
		e.t.Fatal(err)
	}
	e.startRunning(guid, index, cell)
}

// startRunning starts an instance on cell with the metric tags desiredLRP
// gives it, as its rep would.
func (e *env) startRunning(guid string, index int32, cell string) {
	e.t.Helper()
	if _, err := e.bbs.StartActualLRP(e.ctx(), &models.StartActualLRPRequest{
		ActualLrpKey: &models.ActualLRPKey{ProcessGuid: guid, Index: index, Domain: "apps"}, ActualLrpInstanceKey: instanceKey(guid, index, cell),
		ActualLrpNetInfo: &models.ActualLRPNetInfo{Address: "127.0.0.1", Ports: []*models.PortMapping{{ContainerPort: 8080, HostPort: uint32(61000 + index)}}},
		MetricTags:       map[string]string{"index": fmt.Sprint(index)},
	}); err != nil {
		e.t.Fatal(err)
	}
}

// rows returns the rows of one index by presence.
func (e *env) rows(guid string, index int32) map[models.ActualLRP_Presence]*models.ActualLRP {
	e.t.Helper()
	resp, err := e.bbs.ListActualLRPs(e.ctx(), &models.ListActualLRPsRequest{ProcessGuid: guid, Index: &index})
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[models.ActualLRP_Presence]*models.ActualLRP{}
	for _, a := range resp.ActualLrps {
		out[a.Presence] = a
	}
	return out
}

func (e *env) task(guid string) *models.Task {
	e.t.Helper()
	resp, err := e.bbs.GetTask(e.ctx(), &models.TaskGuidRequest{TaskGuid: guid})
	if err != nil {
		e.t.Fatalf("task %s: %v", guid, err)
	}
	return resp.Task
}

// applied is how many actions of a kind a pass applied.
func applied(r *Report, action string) int {
	if c := r.Actions[action]; c != nil {
		return c.Applied
	}
	return 0
}
