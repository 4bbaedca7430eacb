package routeemitter

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"

	"github.com/gavel-scheduler/gavel/bbs/db"
	"github.com/gavel-scheduler/gavel/internal/etcdembed"
	"github.com/gavel-scheduler/gavel/proto/models"
)

// seedRunning writes lrps DesiredLRPs of instances RUNNING instances each
// straight into etcd in the BBS's layout (128-operation transactions, 8 at
// a time), which is how a large, settled installation looks to a BBS that
// starts over it. Every LRP has one cf-router hostname on port 8080.
func seedRunning(tb testing.TB, etcd *clientv3.Client, name string, lrps, instances int) {
	tb.Helper()
	keys := db.NewKeys(db.DefaultPrefix)
	type kv struct{ k, v string }
	var all []kv
	marshal := func(m proto.Message) string {
		b, err := proto.Marshal(m)
		if err != nil {
			tb.Fatal(err)
		}
		return string(b)
	}
	for i := range lrps {
		guid := fmt.Sprintf("%s-%d", name, i)
		d := &models.DesiredLRP{
			ProcessGuid: guid, Domain: "apps", LogGuid: guid, Instances: int32(instances), Rootfs: "preloaded:cflinuxfs4",
			MemoryMb: 128, Ports: []uint32{8080}, Routes: routesJSON(tb, httpRoutes(8080, guid+".example.com")),
			Action:          &models.Action{Kind: &models.Action_Run{Run: &models.RunAction{Path: "/bin/app", User: "vcap"}}},
			ModificationTag: &models.ModificationTag{Epoch: uuid.NewString()},
		}
		all = append(all, kv{keys.SchedulingInfo(guid), marshal(d.SchedulingInfo())}, kv{keys.RunInfo(guid), marshal(d.RunInfo())})
		for j := range instances {
			row := &models.ActualLRP{
				ActualLrpKey:         &models.ActualLRPKey{ProcessGuid: guid, Index: int32(j), Domain: "apps"},
				ActualLrpInstanceKey: &models.ActualLRPInstanceKey{InstanceGuid: fmt.Sprintf("%s-%d", guid, j), CellId: fmt.Sprintf("cell-%d", (i+j)%100)},
				ActualLrpNetInfo: &models.ActualLRPNetInfo{Address: fmt.Sprintf("10.%d.%d.%d", (i>>8)&255, i&255, j),
					Ports: []*models.PortMapping{{ContainerPort: 8080, HostPort: uint32(40000 + j)}}},
				State:           models.ActualLRP_RUNNING,
				Since:           time.Now().UnixNano(),
				ModificationTag: &models.ModificationTag{Epoch: uuid.NewString(), Index: 2},
			}
			all = append(all, kv{keys.ActualLRP(guid, int32(j), models.ActualLRP_ORDINARY), marshal(row)})
		}
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for start := 0; start < len(all); start += 128 {
		batch := all[start:min(start+128, len(all))]
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ops := make([]clientv3.Op, len(batch))
			for i, p := range batch {
				ops[i] = clientv3.OpPut(p.k, p.v)
			}
			if _, err := etcd.Txn(context.Background()).Then(ops...).Commit(); err != nil {
				tb.Error(err)
			}
		}()
	}
	wg.Wait()
}

func percentile(d []time.Duration, p float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// BenchmarkPropagation10kRoutes50kEndpoints: with 10,000 routed LRPs and
// 50,000 endpoints served to a connected ADS client, each iteration starts
// one instance through the BBS (StartActualLRP, as a rep does) and waits
// for the client to receive the load assignment with it. It reports the
// p50/p99 of that propagation beside the p50/p99 of the StartActualLRP
// call alone (the BBS and etcd share of it), measured in the same run.
func BenchmarkPropagation10kRoutes50kEndpoints(b *testing.B) {
	h := newHarness(b, etcdembed.Options{})
	const lrps, instances = 10000, 5
	samples := max(b.N, 1)
	seedRunning(b, h.etcd, "app", lrps-samples, instances)
	// The sample LRPs go through the BBS, one instance short of running.
	ctx := context.Background()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := range samples {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			guid := fmt.Sprintf("sample-%d", i)
			h.desire(guid, instances, httpRoutes(8080, guid+".example.com"))
			for j := range instances - 1 {
				h.run(guid, int32(j), "cell-1", uint32(41000+j))
			}
			if _, err := h.bbs.ClaimActualLRP(ctx, &models.ClaimActualLRPRequest{ProcessGuid: guid, Index: instances - 1,
				ActualLrpInstanceKey: &models.ActualLRPInstanceKey{InstanceGuid: guid + "-last", CellId: "cell-1"}}); err != nil {
				b.Error(err)
			}
		}()
	}
	wg.Wait()

	em, _ := h.startEmitter(h.emitterConfig())
	waitServing(b, em)
	c := newADSClient(b, h.dial(em.Addr(), "client"), false)
	arrived := make(chan string, 16)
	c.mu.Lock()
	c.onLoadAssignment = func(name string, n int) {
		if n == instances {
			select {
			case arrived <- name:
			default:
			}
		}
	}
	c.mu.Unlock()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		c.mu.Lock()
		n := len(c.res.LoadAssignments)
		c.mu.Unlock()
		if n == lrps {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("client holds %d load assignments, want %d", n, lrps)
		}
		time.Sleep(50 * time.Millisecond)
	}
	routes, endpoints := 0, 0
	if e, _ := em.serving(); e != nil {
		e.View(func(t *Table) { routes, endpoints = t.Counts() })
	}

	var prop, call []time.Duration
	b.ResetTimer()
	for i := range samples {
		guid := fmt.Sprintf("sample-%d", i)
		want := ClusterName(Key{ProcessGUID: guid, ContainerPort: 8080})
		for len(arrived) > 0 {
			<-arrived
		}
		t0 := time.Now()
		h.startClaimed(guid, instances-1, &models.ActualLRPInstanceKey{InstanceGuid: guid + "-last", CellId: "cell-1"}, 41999)
		call = append(call, time.Since(t0))
		for got := ""; got != want; {
			select {
			case got = <-arrived:
			case <-time.After(10 * time.Second):
				b.Fatalf("no push for %s", want)
			}
		}
		prop = append(prop, time.Since(t0))
	}
	b.StopTimer()
	b.ReportMetric(float64(routes), "routes")
	b.ReportMetric(float64(endpoints), "endpoints")
	b.ReportMetric(ms(percentile(prop, 0.5)), "p50-push-ms")
	b.ReportMetric(ms(percentile(prop, 0.99)), "p99-push-ms")
	b.ReportMetric(ms(percentile(call, 0.5)), "p50-bbs-start-ms")
	b.ReportMetric(ms(percentile(call, 0.99)), "p99-bbs-start-ms")
}

// BenchmarkFullResync100kEndpoints: each iteration is a full sync of
// 20,000 LRPs with 100,000 RUNNING instances (lists from the BBS, table
// build, diff against the served table and push), reported beside a raw
// ListActualLRPs of the same BBS in the same iteration.
func BenchmarkFullResync100kEndpoints(b *testing.B) {
	h := newHarness(b, etcdembed.Options{})
	seedRunning(b, h.etcd, "app", 20000, 5)
	e := NewEmitter(h.emitterConfig().emitterConfig(), h.bbs, nil, quietLogger())
	pub := NewPublisher("bench-", quietLogger())
	ctx := context.Background()
	first := e.list(ctx)
	if first.err != nil {
		b.Fatal(first.err)
	}
	e.install(ctx, pub, first, nil, true)
	if _, n := first.table.Counts(); n != 100000 {
		b.Fatalf("table has %d endpoints", n)
	}
	var syncs, raw []time.Duration
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		resp, err := h.bbs.ListActualLRPs(ctx, &models.ListActualLRPsRequest{})
		if err != nil || len(resp.GetActualLrps()) != 100000 {
			b.Fatalf("list: %d %v", len(resp.GetActualLrps()), err)
		}
		raw = append(raw, time.Since(t0))
		t1 := time.Now()
		l := e.list(ctx)
		if l.err != nil {
			b.Fatal(l.err)
		}
		e.install(ctx, pub, l, nil, false)
		syncs = append(syncs, time.Since(t1))
	}
	b.StopTimer()
	b.ReportMetric(ms(percentile(syncs, 0.5)), "resync-ms")
	b.ReportMetric(ms(slices.Max(syncs)), "max-resync-ms")
	b.ReportMetric(ms(percentile(raw, 0.5)), "raw-bbs-list-ms")
}
