package rep

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/tedsuo/ifrit"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/gavel-scheduler/gavel/bbs"
	"github.com/gavel-scheduler/gavel/internal/etcdembed"
	"github.com/gavel-scheduler/gavel/proto/models"
)

// startBBS serves a plaintext BBS over a fresh embedded etcd.
func startBBS(t testing.TB, opts ...bbs.RunnerOption) models.BBSClient {
	t.Helper()
	_, etcd := etcdembed.StartForTest(t)
	cfg := bbs.DefaultConfig()
	cfg.ListenAddress, cfg.Insecure, cfg.DebugAddress = "127.0.0.1:0", true, ""
	runner := bbs.NewRunner(cfg, etcd, nil, quietLogger(), opts...)
	proc := ifrit.Invoke(runner)
	t.Cleanup(func() { proc.Signal(os.Interrupt); <-proc.Wait() })
	conn, err := grpc.NewClient(runner.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return models.NewBBSClient(conn)
}

func cellIDs(t *testing.T, c models.BBSClient) []string {
	t.Helper()
	resp, err := c.ListCells(context.Background(), &models.ListCellsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, cell := range resp.Cells {
		ids = append(ids, cell.CellId)
	}
	return ids
}

func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestPresenceLivesUnderALease: a running rep is present in etcd; once it
// stops refreshing, its presence lapses with the lease.
func TestPresenceLivesUnderALease(t *testing.T) {
	client := startBBS(t)
	containers := NewMemoryContainers(&models.CellCapacity{MemoryMb: 2048, DiskMb: 4096, Containers: 50})
	r := NewRunner(RunnerConfig{
		Info:          CellInfo{CellID: "cell-7", Zone: "z3", RootFSProviders: []*models.Provider{{Name: "docker"}}},
		ListenAddress: "127.0.0.1:0", Containers: containers, BBS: client, PresenceTTL: 2 * time.Second, Logger: quietLogger(),
	})
	proc := ifrit.Invoke(r)
	eventually(t, "the cell's presence", func() bool { ids := cellIDs(t, client); return len(ids) == 1 && ids[0] == "cell-7" })
	cell, err := client.GetCell(context.Background(), &models.GetCellRequest{CellId: "cell-7"})
	if err != nil {
		t.Fatal(err)
	}
	if c := cell.Cell; c.Zone != "z3" || c.Capacity.MemoryMb != 2048 || c.RepAddress == "" || c.RootfsProviders[0].Name != "docker" {
		t.Fatalf("presence %v", c)
	}
	// The presence names the address the rep API answers on.
	st, err := NewClient(nil).State(context.Background(), cell.Cell.RepAddress)
	if err != nil || st.CellId != "cell-7" {
		t.Fatalf("rep at the presence's address: %v %v", st, err)
	}
	// Refreshes keep it present past its TTL, without a gap.
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if ids := cellIDs(t, client); len(ids) != 1 {
			t.Fatalf("presence lapsed while the rep ran: %v", ids)
		}
	}
	proc.Signal(os.Interrupt)
	if err := <-proc.Wait(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the presence to lapse", func() bool { return len(cellIDs(t, client)) == 0 })
}
