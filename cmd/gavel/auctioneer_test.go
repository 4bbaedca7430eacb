package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tedsuo/ifrit"

	"github.com/gavel-scheduler/gavel/auctioneer"
	"github.com/gavel-scheduler/gavel/internal/election"
	"github.com/gavel-scheduler/gavel/internal/etcdembed"
	"github.com/gavel-scheduler/gavel/internal/gossip"
	"github.com/gavel-scheduler/gavel/internal/tlsutil"
	"github.com/gavel-scheduler/gavel/proto/models"
	"github.com/gavel-scheduler/gavel/rep"
)

// auctioneerProc is one `gavel auctioneer` process.
type auctioneerProc struct {
	cmd    *exec.Cmd
	log    *lockedBuffer
	addr   string
	gossip string
}

func startAuctioneer(t *testing.T, etcd string, certs tlsutil.Paths, addr, gossipAddr string, seeds ...string) *auctioneerProc {
	t.Helper()
	ac := certs.Components["auctioneer"]
	_, port, _ := net.SplitHostPort(gossipAddr)
	args := []string{"auctioneer",
		"--listen-address", addr, "--etcd-endpoints", etcd,
		"--bbs-address", fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		"--ca-cert", certs.CACert, "--cert", ac.Cert, "--key", ac.Key,
		"--election-ttl", "5s", "--cell-state-timeout", "2s",
		"--gossip-bind-address", "127.0.0.1", "--gossip-bind-port", port, "--gossip-local",
		"--debug-address", "", "--log-level", "debug"}
	for _, s := range seeds {
		args = append(args, "--gossip-join", s)
	}
	cmd := exec.Command(gavelBin, args...)
	log := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &auctioneerProc{cmd: cmd, log: log, addr: addr, gossip: gossipAddr}
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			_ = p.cmd.Wait()
		}
		if t.Failed() {
			t.Logf("auctioneer %s log:\n%s", addr, log.String())
		}
	})
	return p
}

// lockedBuffer is a process's output, safe to read while it writes.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func pollUntil(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestAuctioneerStandbyTakesOverAfterSIGKILL: two auctioneer processes
// over one etcd; the leader is killed with SIGKILL; the standby is elected
// and runs the next auction on a real rep found through gossip.
func TestAuctioneerStandbyTakesOverAfterSIGKILL(t *testing.T) {
	etcdSrv, etcd := etcdembed.StartForTest(t)
	certs, err := tlsutil.WriteDir(t.TempDir(), tlsutil.DefaultHosts())
	if err != nil {
		t.Fatal(err)
	}
	gossipA := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	gossipB := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	addrA := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	addrB := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	endpoint := etcdSrv.Endpoints()[0]
	a := startAuctioneer(t, endpoint, certs, addrA, gossipA, gossipB)
	b := startAuctioneer(t, endpoint, certs, addrB, gossipB, gossipA)
	procs := map[string]*auctioneerProc{addrA: a, addrB: b}

	// One real rep, in this process, over mutual TLS, joined to both.
	rc := certs.Components["rep"]
	serverTLS, err := tlsutil.ServerConfig(certs.CACert, rc.Cert, rc.Key)
	if err != nil {
		t.Fatal(err)
	}
	containers := rep.NewMemoryContainers(&models.CellCapacity{MemoryMb: 4096, DiskMb: 4096, Containers: 100})
	cell := rep.NewRunner(rep.RunnerConfig{
		Info:          rep.CellInfo{CellID: "cell-1", Zone: "z1", RootFSProviders: []*models.Provider{{Name: "preloaded", Properties: []string{"busybox"}}}},
		ListenAddress: "127.0.0.1:0", TLS: serverTLS, Containers: containers,
		Gossip: &gossip.Config{Local: true, Join: []string{gossipA, gossipB}, RejoinInterval: 200 * time.Millisecond},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	cellProc := ifrit.Invoke(cell)
	t.Cleanup(func() { cellProc.Signal(os.Interrupt); <-cellProc.Wait() })

	key := auctioneer.ElectionKey("/gavel/v1")
	leader := func() string {
		v, err := election.Leader(context.Background(), etcd, key)
		if err != nil {
			return ""
		}
		return v
	}
	pollUntil(t, "an elected auctioneer", 30*time.Second, func() bool { return leader() != "" })
	first := leader()
	standby := addrB
	if first == addrB {
		standby = addrA
	}

	cc := certs.Components["bbs"]
	clientTLS, err := tlsutil.ClientConfig(certs.CACert, cc.Cert, cc.Key, "")
	if err != nil {
		t.Fatal(err)
	}
	client := auctioneer.NewClient(etcd, key, clientTLS)
	defer client.Close()
	placed := func(n int) func() bool {
		return func() bool {
			lrps, _, _ := containers.Work(context.Background())
			return len(lrps) == n
		}
	}
	request := func(guid string) {
		t.Helper()
		req := &models.LRPStartRequest{ProcessGuid: guid, Domain: "apps", Indices: []int32{0},
			PlacementConstraint: &models.PlacementConstraint{Rootfs: "preloaded:busybox"}, Resource: &models.Resource{MemoryMb: 64}}
		pollUntil(t, "the auctioneer to take a request for "+guid, 30*time.Second, func() bool {
			return client.RequestLRPAuctions(context.Background(), []*models.LRPStartRequest{req}) == nil
		})
	}
	// Both auctioneers must see the cell (a join is mutual) before the
	// first auction, and before the leader dies.
	pollUntil(t, "the rep to join both auctioneers", 30*time.Second, func() bool {
		return cell.Pool() != nil && len(cell.Pool().Members()) == 3
	})
	request("before")
	pollUntil(t, "the first auction to place on the rep", 30*time.Second, placed(1))

	if err := procs[first].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = procs[first].cmd.Wait()
	killed := time.Now()
	pollUntil(t, "the standby to be elected", 30*time.Second, func() bool { return leader() == standby })
	t.Logf("standby elected %s after SIGKILL of the leader (election ttl 5s)", time.Since(killed).Round(time.Millisecond))

	request("after")
	pollUntil(t, "the new leader's auction to place on the rep", 30*time.Second, placed(2))

	// The standby-turned-leader is the one that placed it.
	if !strings.Contains(procs[standby].log.String(), `"msg":"auction round"`) {
		t.Fatalf("no auction round logged by the new leader:\n%s", procs[standby].log.String())
	}
}
