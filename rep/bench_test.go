package rep

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/gavel-scheduler/gavel/internal/roottest"
	"github.com/gavel-scheduler/gavel/proto/models"
)

// BenchmarkBulkSync250 is one bulk sync of a cell running 250 containers
// (real runc through the Garden server, real BBS over embedded etcd):
// listing the containers and the cell's BBS records and queueing the
// reconciliation (sync_ms), and the same until every queued operation has
// run (sync+drain_ms: 250 StartActualLRP heartbeats).
func BenchmarkBulkSync250(b *testing.B) {
	roottest.Require(b, "runc", "iptables", "busybox")
	n := 250
	if v := os.Getenv("GAVEL_BENCH_CONTAINERS"); v != "" {
		fmt.Sscan(v, &n)
	}
	ctx := context.Background()
	bbsClient := startBBS(b)
	exec := startRuncExecutor(b, runcOptions{tag: "gvb", pool: "10.251.0.0/22", portStart: 64000, containers: n + 50})
	cell := NewCell(CellConfig{CellID: "cell-b", Zone: "z1", PollInterval: time.Hour}, bbsClient, exec, nil, quietLogger())
	svc := NewServer(CellInfo{CellID: "cell-b", Zone: "z1", RootFSProviders: []*models.Provider{{Name: "preloaded", Properties: []string{"busybox"}}}},
		ExecutorContainers{Executor: exec}, quietLogger())

	if _, err := bbsClient.DesireLRP(ctx, &models.DesireLRPRequest{DesiredLrp: &models.DesiredLRP{
		ProcessGuid: "sleepers", Domain: "bench", Instances: int32(n), Rootfs: "preloaded:busybox", MemoryMb: 8, DiskMb: 8,
		Action: &models.Action{Kind: &models.Action_Run{Run: &models.RunAction{Path: "/bin/sleep", Args: []string{"3600"}, User: "root"}}},
	}}); err != nil {
		b.Fatal(err)
	}
	if _, err := startCellRunner(b, cell); err != nil {
		b.Fatal(err)
	}
	var work []*models.LRPWork
	for i := range n {
		work = append(work, &models.LRPWork{ProcessGuid: "sleepers", Index: int32(i), Domain: "bench",
			PlacementConstraint: &models.PlacementConstraint{Rootfs: "preloaded:busybox"}, Resource: &models.Resource{MemoryMb: 8, DiskMb: 8}})
	}
	resp, err := svc.Perform(ctx, &models.PerformRequest{CellId: "cell-b", Lrps: work})
	if err != nil || len(resp.FailedLrps) != 0 {
		b.Fatalf("perform: %v %v", resp, err)
	}
	deadline := time.Now().Add(10 * time.Minute)
	for {
		list, err := bbsClient.ListActualLRPs(ctx, &models.ListActualLRPsRequest{ProcessGuid: "sleepers"})
		running := 0
		if err == nil {
			for _, a := range list.ActualLrps {
				if a.State == models.ActualLRP_RUNNING {
					running++
				}
			}
		}
		if running == n {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d running", running, n)
		}

		time.Sleep(200 * time.Millisecond)
	}
	for !cell.queue.idle() {
		time.Sleep(10 * time.Millisecond)
	}

	var syncTotal, drainTotal time.Duration
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		st := cell.Sync(ctx)
		syncTotal += st.Duration
		for !cell.queue.idle() {
			time.Sleep(time.Millisecond)
		}
		drainTotal += time.Since(start)
		if st.Containers != n || st.ActualLRPs != n || st.Orphans != 0 {
			b.Fatalf("sync saw %+v", st)
		}
	}
	b.ReportMetric(syncTotal.Seconds()*1000/float64(b.N), "sync_ms")
	b.ReportMetric(drainTotal.Seconds()*1000/float64(b.N), "sync+drain_ms")
}
