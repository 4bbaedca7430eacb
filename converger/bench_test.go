package converger

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"

	"github.com/gavel-scheduler/gavel/bbs/db"
	"github.com/gavel-scheduler/gavel/proto/models"
)

const (
	benchDesired    = 10_000
	benchPerDesired = 10 // 100k actual LRPs
	benchCells      = 100
)

// writeSynthetic fills etcd with benchDesired desired LRPs of
// benchPerDesired RUNNING instances each, spread over benchCells present
// cells, in a fresh domain: a converged system of 100k instances.
func writeSynthetic(tb testing.TB, client *clientv3.Client) {
	tb.Helper()
	ctx := context.Background()
	keys := db.NewKeys("")
	lease, err := client.Grant(ctx, 3600)
	if err != nil {
		tb.Fatal(err)
	}
	var ops []clientv3.Op
	put := func(key string, m proto.Message, opts ...clientv3.OpOption) {
		b, err := proto.Marshal(m)
		if err != nil {
			tb.Fatal(err)
		}
		ops = append(ops, clientv3.OpPut(key, string(b), opts...))
	}
	for c := range benchCells {
		id := fmt.Sprintf("cell-%03d", c)
		put(keys.Cell(id), &models.CellPresence{CellId: id, RepAddress: fmt.Sprintf("127.0.0.1:%d", 20000+c), Zone: fmt.Sprintf("z%d", c%3),
			Capacity: &models.CellCapacity{MemoryMb: 32768, DiskMb: 65536, Containers: 250}}, clientv3.WithLease(lease.ID))
	}
	put(keys.Domain("apps"), &models.Domain{Domain: "apps"})
	since := time.Now().Add(-time.Hour).UnixNano()
	for d := range benchDesired {
		guid := fmt.Sprintf("app-%05d", d)
		put(keys.SchedulingInfo(guid), &models.DesiredLRPSchedulingInfo{
			DesiredLrpKey: &models.DesiredLRPKey{ProcessGuid: guid, Domain: "apps", LogGuid: guid}, Instances: benchPerDesired,
			DesiredLrpResource: &models.DesiredLRPResource{MemoryMb: 256, DiskMb: 1024}, Rootfs: "preloaded:cflinuxfs4",
			ModificationTag: &models.ModificationTag{Epoch: "e-" + guid, Index: 1},
			Routes:          internalRouter(guid + ".apps.internal"),
			MetricTags:      map[string]*models.MetricTagValue{"index": {Dynamic: models.MetricTagValue_INDEX}},
		})
		for i := range int32(benchPerDesired) {
			cell := fmt.Sprintf("cell-%03d", (d*benchPerDesired+int(i))%benchCells)
			put(keys.ActualLRP(guid, i, models.ActualLRP_ORDINARY), &models.ActualLRP{
				ActualLrpKey:         &models.ActualLRPKey{ProcessGuid: guid, Index: i, Domain: "apps"},
				ActualLrpInstanceKey: &models.ActualLRPInstanceKey{InstanceGuid: fmt.Sprintf("%s-%d-instance", guid, i), CellId: cell},
				ActualLrpNetInfo: &models.ActualLRPNetInfo{Address: "10.0.0.1", InstanceAddress: "10.254.0.2",
					Ports: []*models.PortMapping{{ContainerPort: 8080, HostPort: uint32(40000 + i)}}},
				State: models.ActualLRP_RUNNING, Since: since, Presence: models.ActualLRP_ORDINARY,
				ModificationTag:         &models.ModificationTag{Epoch: fmt.Sprintf("e-%s-%d", guid, i), Index: 3},
				ActualLrpInternalRoutes: []*models.ActualLRPInternalRoute{{Hostname: guid + ".apps.internal"}},
				MetricTags:              map[string]string{"index": fmt.Sprint(i)},
				AvailabilityZone:        "z1",
			})
		}
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for start := 0; start < len(ops); start += 128 {
		batch := ops[start:min(start+128, len(ops))]
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if _, err := client.Txn(ctx).Then(batch...).Commit(); err != nil {
				tb.Error(err)
			}
		}()
	}
	wg.Wait()
}

// BenchmarkPass100k runs convergence passes over 100k actual LRPs and 10k
// desired LRPs on 100 cells (durable etcd, the BBS over mutual TLS, no
// containers): missing=0 is a converged system, missing=1000 has 1000
// instances deleted before each pass, which the pass recreates through the
// BBS. Beside ms/pass it reports, from the same run, the raw etcd read of
// the same keys in one transaction (raw_etcd_ms) and the plan calculation
// alone (plan_ms).
func BenchmarkPass100k(b *testing.B) {
	for _, missing := range []int{0, 1000} {
		b.Run(fmt.Sprintf("missing=%d", missing), func(b *testing.B) { benchPass(b, missing) })
	}
}

func benchPass(b *testing.B, missing int) {
	e := newEnv(b, envOptions{fsync: true, noAuctioneer: true})
	writeSynthetic(b, e.etcd)
	ctx := context.Background()
	keys := db.NewKeys("")
	if _, _, err := e.conv.Pass(ctx); err != nil { // the first pass stores the memory
		b.Fatal(err)
	}
	drop := func() {
		ops := make([]clientv3.Op, 0, missing)
		for d := range missing {
			ops = append(ops, clientv3.OpDelete(keys.ActualLRP(fmt.Sprintf("app-%05d", d%benchDesired), benchPerDesired-1, models.ActualLRP_ORDINARY)))
		}
		for start := 0; start < len(ops); start += 128 {
			if _, err := e.etcd.Txn(ctx).Then(ops[start:min(start+128, len(ops))]...).Commit(); err != nil {
				b.Fatal(err)
			}
		}
	}
	var last *Plan
	b.ResetTimer()
	for range b.N {
		if missing > 0 {
			b.StopTimer()
			drop()
			b.StartTimer()
		}
		p, r, err := e.conv.Pass(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if p.Counts.Running+p.Counts.Unclaimed != benchDesired*benchPerDesired-missing || p.Counts.Missing != missing {
			b.Fatalf("pass saw %+v", p.Counts)
		}
		if len(p.UpdateInstances) != 0 {
			b.Fatalf("%d instances drifted from their desired LRP", len(p.UpdateInstances))
		}
		if missing > 0 && applied(r, "create_missing") != missing {
			b.Fatalf("pass recreated %+v", r.Actions["create_missing"])
		}
		last = p
	}
	b.StopTimer()
	perPass := b.Elapsed() / time.Duration(b.N)

	const rounds = 3
	t0 := time.Now()
	for range rounds {
		resp, err := e.etcd.Txn(ctx).Then(
			clientv3.OpGet(keys.LRP(), clientv3.WithPrefix()),
			clientv3.OpGet(keys.Tasks(), clientv3.WithPrefix()),
			clientv3.OpGet(keys.Domains(), clientv3.WithPrefix()),
			clientv3.OpGet(keys.Cells(), clientv3.WithPrefix()),
			clientv3.OpGet(keys.ConvergerState()),
			clientv3.OpGet(keys.CellLossConfirmation()),
		).Commit()
		if err != nil || len(resp.Responses[0].GetResponseRange().Kvs) < benchDesired*(benchPerDesired+1)-missing {
			b.Fatalf("raw read: %v", err)
		}
	}
	raw := time.Since(t0) / rounds

	snap, err := e.conv.Snapshot(ctx)
	if err != nil {
		b.Fatal(err)
	}
	t0 = time.Now()
	for range rounds {
		last = Calculate(snap, DefaultSettings())
	}
	plan := time.Since(t0) / rounds
	if last.Counts.DesiredInstances != benchDesired*benchPerDesired {
		b.Fatalf("plan saw %+v", last.Counts)
	}
	b.ReportMetric(perPass.Seconds()*1000, "ms/pass")
	b.ReportMetric(raw.Seconds()*1000, "raw_etcd_ms")
	b.ReportMetric(plan.Seconds()*1000, "plan_ms")
}
