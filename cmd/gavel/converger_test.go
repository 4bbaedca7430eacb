package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tedsuo/ifrit"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/gavel-scheduler/gavel/bbs"
	"github.com/gavel-scheduler/gavel/converger"
	"github.com/gavel-scheduler/gavel/internal/clientconfig"
	"github.com/gavel-scheduler/gavel/internal/election"
	"github.com/gavel-scheduler/gavel/internal/etcdembed"
	"github.com/gavel-scheduler/gavel/internal/gossip"
	"github.com/gavel-scheduler/gavel/internal/tlsutil"
	"github.com/gavel-scheduler/gavel/proto/models"
	"github.com/gavel-scheduler/gavel/rep"
)

// convSystem is an embedded etcd and a BBS in this process, for converger
// processes to work on; the test talks to the BBS as a client would.
type convSystem struct {
	etcdEndpoint string
	etcd         *clientv3.Client
	certs        tlsutil.Paths
	bbsAddr      string
	bbs          models.BBSClient
	clientConfig string // client.json for the CLI
}

func startConvSystem(t *testing.T) *convSystem {
	t.Helper()
	srv, etcd := etcdembed.StartForTestOpts(t, etcdembed.Options{NoFsync: true})
	dir := t.TempDir()
	certs, err := tlsutil.WriteDir(filepath.Join(dir, "certs"), tlsutil.DefaultHosts())
	if err != nil {
		t.Fatal(err)
	}
	bc := certs.Components["bbs"]
	cfg := bbs.DefaultConfig()
	cfg.ListenAddress = "127.0.0.1:0"
	cfg.CACert, cfg.ServerCert, cfg.ServerKey = certs.CACert, bc.Cert, bc.Key
	bbsTLS, err := tlsutil.ClientConfig(certs.CACert, bc.Cert, bc.Key, "")
	if err != nil {
		t.Fatal(err)
	}
	reps := rep.NewClient(bbsTLS)
	t.Cleanup(reps.Close)
	runner := bbs.NewRunner(cfg, etcd, prometheus.NewRegistry(), slog.New(slog.NewTextHandler(io.Discard, nil)), bbs.WithCells(reps))
	proc := ifrit.Invoke(runner)
	t.Cleanup(func() { proc.Signal(os.Interrupt); <-proc.Wait() })

	cc := certs.Components["client"]
	tc, err := tlsutil.ClientConfig(certs.CACert, cc.Cert, cc.Key, "")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(runner.Addr(), grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	s := &convSystem{etcdEndpoint: srv.Endpoints()[0], etcd: etcd, certs: certs, bbsAddr: runner.Addr(), bbs: models.NewBBSClient(conn),
		clientConfig: filepath.Join(dir, "client.json")}
	if err := clientconfig.Write(s.clientConfig, &clientconfig.Config{BBSAddress: s.bbsAddr, CACert: certs.CACert, ClientCert: cc.Cert, ClientKey: cc.Key}); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *convSystem) ctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// convergerProc is one `gavel converger` process.
type convergerProc struct {
	name   string
	cmd    *exec.Cmd
	log    *lockedBuffer
	debug  string
	gossip string
}

func (s *convSystem) startConverger(t *testing.T, name string, extra ...string) *convergerProc {
	t.Helper()
	cc := s.certs.Components["converger"]
	debug := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	gossipPort := freePort(t)
	args := append([]string{"converger", "--name", name,
		"--etcd-endpoints", s.etcdEndpoint, "--bbs-address", s.bbsAddr,
		"--ca-cert", s.certs.CACert, "--cert", cc.Cert, "--key", cc.Key,
		"--election-ttl", "5s", "--convergence-interval", "1s", "--cell-loss-delay", "300ms",
		"--gossip-bind-address", "127.0.0.1", "--gossip-bind-port", fmt.Sprint(gossipPort), "--gossip-local",
		"--debug-address", debug, "--log-level", "info"}, extra...)
	cmd := exec.Command(gavelBin, args...)
	log := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &convergerProc{name: name, cmd: cmd, log: log, debug: debug, gossip: fmt.Sprintf("127.0.0.1:%d", gossipPort)}
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			_ = p.cmd.Wait()
		}
		if t.Failed() {
			t.Logf("converger %s log:\n%s", name, log.String())
		}
	})
	return p
}

func (p *convergerProc) passes() int {
	return strings.Count(p.log.String(), `"msg":"convergence pass"`)
}

// metric reads one unlabelled series from the process's /metrics.
func (p *convergerProc) metric(name string) (float64, bool) {
	resp, err := http.Get("http://" + p.debug + "/metrics")
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			var f float64
			if _, err := fmt.Sscan(v, &f); err == nil {
				return f, true
			}
		}
	}
	return 0, false
}

func (s *convSystem) desire(t *testing.T, guid string, instances int32) {
	t.Helper()
	d := &models.DesiredLRP{ProcessGuid: guid, Domain: "apps", LogGuid: guid, Instances: instances,
		Rootfs: "preloaded:busybox", MemoryMb: 64, DiskMb: 64,
		MetricTags: map[string]*models.MetricTagValue{"index": {Dynamic: models.MetricTagValue_INDEX}},
		Action:     &models.Action{Kind: &models.Action_Run{Run: &models.RunAction{Path: "/bin/true", User: "root"}}}}
	if _, err := s.bbs.DesireLRP(s.ctx(t), &models.DesireLRPRequest{DesiredLrp: d}); err != nil {
		t.Fatal(err)
	}
}

func (s *convSystem) row(t *testing.T, guid string, index int32, presence models.ActualLRP_Presence) *models.ActualLRP {
	t.Helper()
	resp, err := s.bbs.ListActualLRPs(s.ctx(t), &models.ListActualLRPsRequest{ProcessGuid: guid, Index: &index})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range resp.ActualLrps {
		if a.Presence == presence {
			return a
		}
	}
	return nil
}

func (s *convSystem) remove(t *testing.T, guid string, index int32) {
	t.Helper()
	if _, err := s.bbs.RemoveActualLRP(s.ctx(t), &models.RemoveActualLRPRequest{ProcessGuid: guid, Index: index}); err != nil {
		t.Fatal(err)
	}
}

func (s *convSystem) leader(t *testing.T) string {
	v, err := election.Leader(s.ctx(t), s.etcd, converger.ElectionKey("/gavel/v1"))
	if err != nil {
		return ""
	}
	return v
}

// TestConvergerStandbyTakesOverAfterSIGKILL: two converger processes over
// one etcd; only the elected one runs passes and repairs drift; after a
// SIGKILL of the leader the standby is elected and repairs the next drift.
func TestConvergerStandbyTakesOverAfterSIGKILL(t *testing.T) {
	s := startConvSystem(t)
	procs := map[string]*convergerProc{"conv-a": s.startConverger(t, "conv-a"), "conv-b": s.startConverger(t, "conv-b")}
	pollUntil(t, "an elected converger", 30*time.Second, func() bool { return s.leader(t) != "" })
	first := s.leader(t)
	standby := "conv-a"
	if first == "conv-a" {
		standby = "conv-b"
	}

	s.desire(t, "web", 2)
	s.remove(t, "web", 1)
	pollUntil(t, "the leader to recreate the missing index", 30*time.Second, func() bool {
		return s.row(t, "web", 1, models.ActualLRP_ORDINARY) != nil
	})
	pollUntil(t, "a few passes of the leader", 30*time.Second, func() bool { return procs[first].passes() >= 3 })
	if n := procs[standby].passes(); n != 0 {
		t.Fatalf("the standby ran %d passes", n)
	}

	if err := procs[first].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = procs[first].cmd.Wait()
	killed := time.Now()
	pollUntil(t, "the standby to be elected", 30*time.Second, func() bool { return s.leader(t) == standby })
	t.Logf("standby elected %s after SIGKILL of the leader (election ttl 5s)", time.Since(killed).Round(time.Millisecond))

	s.remove(t, "web", 0)
	pollUntil(t, "the new leader to recreate the missing index", 30*time.Second, func() bool {
		return s.row(t, "web", 0, models.ActualLRP_ORDINARY) != nil
	})
	if procs[standby].passes() == 0 {
		t.Fatal("the new leader logged no pass")
	}
	if strings.Contains(procs[standby].log.String(), "another converger saved in between") {
		t.Fatalf("the new leader's passes conflicted:\n%s", procs[standby].log.String())
	}
}

// TestConvergerGuardAndCLI: a converger process over three cells; two
// cells' presences end at once; the guard metric is raised and nothing is
// replaced; `gavel converge --dry-run` shows the held cells; `gavel converge
// --confirm-cell-loss` lets the converger proceed.
func TestConvergerGuardAndCLI(t *testing.T) {
	s := startConvSystem(t)
	ctx := s.ctx(t)
	set := func(cell string, lease int64) int64 {
		resp, err := s.bbs.SetCellPresence(ctx, &models.SetCellPresenceRequest{
			Cell: &models.CellPresence{CellId: cell, RepAddress: "127.0.0.1:1"}, TtlSeconds: 15, LeaseId: lease})
		if err != nil {
			t.Fatal(err)
		}
		return resp.LeaseId
	}
	set("cell-1", 0)
	// cell-2 and cell-3 share one lease, so one revoke ends both at once.
	shared := set("cell-2", 0)
	set("cell-3", shared)
	s.desire(t, "web", 3)
	for i, cell := range []string{"cell-1", "cell-2", "cell-3"} {
		key := &models.ActualLRPInstanceKey{InstanceGuid: fmt.Sprintf("web-%d", i), CellId: cell}
		if _, err := s.bbs.StartActualLRP(ctx, &models.StartActualLRPRequest{
			ActualLrpKey: &models.ActualLRPKey{ProcessGuid: "web", Index: int32(i), Domain: "apps"}, ActualLrpInstanceKey: key,
			ActualLrpNetInfo: &models.ActualLRPNetInfo{Address: "127.0.0.1"},
			MetricTags:       map[string]string{"index": fmt.Sprint(i)}}); err != nil { // as a rep reports them
			t.Fatal(err)
		}
	}

	gavelCLI := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(gavelBin, append([]string{"--config", s.clientConfig}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("gavel %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	// Before any converger runs: a dry run plans from the store alone.
	var plan converger.Summary
	if err := json.Unmarshal([]byte(gavelCLI("converge", "--dry-run", "-o", "json")), &plan); err != nil {
		t.Fatal(err)
	}
	if plan.Cells.Present != 3 || plan.Counts.Running != 3 || len(plan.Actions) != 0 {
		t.Fatalf("dry run %+v", plan)
	}

	p := s.startConverger(t, "conv")
	pollUntil(t, "the converger's first passes", 30*time.Second, func() bool { return p.passes() >= 2 })
	if _, err := s.etcd.Revoke(ctx, clientv3.LeaseID(shared)); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, "the guard metric", 30*time.Second, func() bool {
		v, ok := p.metric("gavel_converger_guard_raised")
		return ok && v == 1
	})
	// Several passes later, still nothing replaced.
	seen := p.passes()
	pollUntil(t, "more passes while the guard is up", 30*time.Second, func() bool { return p.passes() >= seen+2 })
	for i := int32(1); i < 3; i++ {
		if r := s.row(t, "web", i, models.ActualLRP_SUSPECT); r != nil {
			t.Fatalf("index %d replaced while the guard is raised: %v", i, r)
		}
	}
	if !strings.Contains(p.log.String(), "mass-failure guard raised") {
		t.Fatal("the guard was not logged")
	}
	table := gavelCLI("converge", "--dry-run", "-o", "table")
	if !strings.Contains(table, "GUARD RAISED") || !strings.Contains(table, "held cell-2,cell-3") {
		t.Fatalf("dry run table:\n%s", table)
	}

	out := gavelCLI("converge", "--confirm-cell-loss", "-o", "table")
	if !strings.Contains(out, "cell-2, cell-3") {
		t.Fatalf("confirm said: %s", out)
	}
	pollUntil(t, "the lost instances to become SUSPECT with replacements", 30*time.Second, func() bool {
		for i := int32(1); i < 3; i++ {
			if s.row(t, "web", i, models.ActualLRP_SUSPECT) == nil {
				return false
			}
		}
		return true
	})
	pollUntil(t, "the guard metric to drop", 30*time.Second, func() bool {
		v, ok := p.metric("gavel_converger_guard_raised")
		return ok && v == 0
	})
	if o := s.row(t, "web", 0, models.ActualLRP_ORDINARY); o.State != models.ActualLRP_RUNNING || s.row(t, "web", 0, models.ActualLRP_SUSPECT) != nil {
		t.Fatalf("the instance on the present cell was touched: %v", o)
	}
	// Nothing is held any more: a second confirmation is refused.
	if out, err := exec.Command(gavelBin, "--config", s.clientConfig, "converge", "--confirm-cell-loss").CombinedOutput(); err == nil ||
		!strings.Contains(string(out), "nothing to confirm") {
		t.Fatalf("second confirmation: %v %s", err, out)
	}
}

// TestConvergerPassesOnCellSignalsAndStopsThroughTheRep: with a timer too
// long to matter, passes come from the signals alone: a cell's presence
// appearing, the cell leaving the gossip pool, its presence going. The pass
// after the cell appears retires an orphan on it through the real rep.
func TestConvergerPassesOnCellSignalsAndStopsThroughTheRep(t *testing.T) {
	s := startConvSystem(t)
	ctx := s.ctx(t)
	p := s.startConverger(t, "conv", "--convergence-interval", "1h", "--cell-loss-delay", "200ms")
	pollUntil(t, "the first pass", 30*time.Second, func() bool { return p.passes() == 1 })

	// An orphan instance on cell-1 (not present yet), in a fresh domain,
	// whose container the cell holds.
	if _, err := s.bbs.UpsertDomain(ctx, &models.UpsertDomainRequest{Domain: "apps"}); err != nil {
		t.Fatal(err)
	}
	containers := rep.NewMemoryContainers(&models.CellCapacity{MemoryMb: 1024, DiskMb: 1024, Containers: 10})
	if errs := containers.Allocate(ctx, []rep.Allocation{{Guid: "ghost-0", LRP: &models.LRPWork{ProcessGuid: "ghost", Index: 0, Domain: "apps",
		Resource: &models.Resource{MemoryMb: 64}, PlacementConstraint: &models.PlacementConstraint{Rootfs: "preloaded:busybox"}}}}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	if _, err := s.bbs.StartActualLRP(ctx, &models.StartActualLRPRequest{
		ActualLrpKey: &models.ActualLRPKey{ProcessGuid: "ghost", Index: 0, Domain: "apps"}, ActualLrpInstanceKey: &models.ActualLRPInstanceKey{InstanceGuid: "ghost-0", CellId: "cell-1"},
		ActualLrpNetInfo: &models.ActualLRPNetInfo{Address: "127.0.0.1"}}); err != nil {
		t.Fatal(err)
	}

	rc := s.certs.Components["rep"]
	serverTLS, err := tlsutil.ServerConfig(s.certs.CACert, rc.Cert, rc.Key)
	if err != nil {
		t.Fatal(err)
	}
	cell := rep.NewRunner(rep.RunnerConfig{
		Info:          rep.CellInfo{CellID: "cell-1", Zone: "z1", RootFSProviders: []*models.Provider{{Name: "preloaded", Properties: []string{"busybox"}}}},
		ListenAddress: "127.0.0.1:0", TLS: serverTLS, Containers: containers,
		Gossip: &gossip.Config{Local: true, Join: []string{p.gossip}, RejoinInterval: 200 * time.Millisecond},
		BBS:    s.bbs, PresenceTTL: 15 * time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	cellProc := ifrit.Invoke(cell)
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			cellProc.Signal(os.Interrupt)
			<-cellProc.Wait()
		}
	})
	pollUntil(t, "a pass when the cell's presence appears", 30*time.Second, func() bool { return p.passes() >= 2 })
	pollUntil(t, "the rep to stop the orphan's container", 30*time.Second, func() bool {
		lrps, _, _ := containers.Work(ctx)
		return len(lrps) == 0
	})
	pollUntil(t, "the cell to join the converger's gossip pool", 30*time.Second, func() bool {
		return cell.Pool() != nil && len(cell.Pool().Members()) == 2
	})

	// The cell leaves the pool; its presence stays until its lease lapses
	// (15 s), so the pass now comes from gossip alone.
	before := p.passes()
	left := time.Now()
	cellProc.Signal(os.Interrupt)
	<-cellProc.Wait()
	stopped = true
	pollUntil(t, "a pass when gossip reports the cell gone", 10*time.Second, func() bool { return p.passes() > before })
	if !strings.Contains(p.log.String(), `"msg":"gossip reports a cell gone"`) {
		t.Fatal("no gossip signal logged")
	}
	if time.Since(left) > 10*time.Second {
		t.Fatalf("the pass came only after %s", time.Since(left))
	}
	// Ending the presence at once is a signal too.
	before = p.passes()
	resp, err := s.etcd.Get(ctx, "/gavel/v1/cell/cell-1")
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("presence: %v %v", resp, err)
	}
	if _, err := s.etcd.Revoke(ctx, clientv3.LeaseID(resp.Kvs[0].Lease)); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, "a pass when the presence goes", 10*time.Second, func() bool { return p.passes() > before })
	if !strings.Contains(p.log.String(), `"msg":"cell presence gone"`) {
		t.Fatal("no presence signal logged")
	}
}
