package bbs

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"

	"github.com/gavel-scheduler/gavel/bbs/db"
	"github.com/gavel-scheduler/gavel/internal/clientconfig"
	"github.com/gavel-scheduler/gavel/proto/models"
)

const benchClients = 32

// dialMany opens n separate connections, as n reps would.
func (c *testCluster) dialMany(b *testBBS, n int) []models.BBSClient {
	out := make([]models.BBSClient, n)
	cc := c.certs.Components["client"]
	for i := range out {
		out[i] = c.dialConfig(&clientconfig.Config{BBSAddress: b.addr, CACert: c.certs.CACert, ClientCert: cc.Cert, ClientKey: cc.Key},
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(1<<30)))
	}
	return out
}

// BenchmarkClaimStart measures ActualLRP transitions through the BBS (gRPC
// over mTLS, one BBS, durable etcd) with 32 concurrent clients, each
// claiming and starting its own instances. In the same run, on the same
// etcd, it measures the raw rate of single-key guarded transactions from 32
// clients on one connection (the setup of the reference figure), and reports
// the ratio. conns=1 shares one connection among the 32 clients, as the
// reference does; conns=32 gives each its own, as 32 reps would have.
func BenchmarkClaimStart(b *testing.B) {
	for _, conns := range []int{1, benchClients} {
		b.Run(fmt.Sprintf("conns=%d", conns), func(b *testing.B) { benchClaimStart(b, conns) })
	}
}

func benchClaimStart(b *testing.B, conns int) {
	c := newCluster(b, true)
	srv := c.start(bbsOptions{})
	pool := c.dialMany(srv, conns)
	clients := make([]models.BBSClient, benchClients)
	for i := range clients {
		clients[i] = pool[i%conns]
	}
	ctx := context.Background()

	pairs := max(b.N/2, benchClients)
	perClient := (pairs + benchClients - 1) / benchClients
	for i := range benchClients {
		if _, err := clients[0].DesireLRP(ctx, &models.DesireLRPRequest{DesiredLrp: testDesired(fmt.Sprintf("bench-%d", i), int32(perClient))}); err != nil {
			b.Fatal(err)
		}
	}
	var lat latencies
	b.ResetTimer()
	cpu0 := cpuTime()
	start := time.Now()
	var wg sync.WaitGroup
	for i, client := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			guid := fmt.Sprintf("bench-%d", i)
			local := make([]time.Duration, 0, 2*perClient)
			for idx := range int32(perClient) {
				key := &models.ActualLRPInstanceKey{InstanceGuid: fmt.Sprintf("%s-%d", guid, idx), CellId: fmt.Sprintf("cell-%d", i)}
				t0 := time.Now()
				if _, err := client.ClaimActualLRP(ctx, &models.ClaimActualLRPRequest{ProcessGuid: guid, Index: idx, ActualLrpInstanceKey: key}); err != nil {
					b.Error(err)
					return
				}
				t1 := time.Now()
				if _, err := client.StartActualLRP(ctx, &models.StartActualLRPRequest{
					ActualLrpKey:         &models.ActualLRPKey{ProcessGuid: guid, Index: idx, Domain: "apps"},
					ActualLrpInstanceKey: key,
					ActualLrpNetInfo: &models.ActualLRPNetInfo{Address: "127.0.0.1", InstanceAddress: "10.254.0.2",
						Ports: []*models.PortMapping{{ContainerPort: 8080, HostPort: uint32(40000 + idx%20000)}}},
				}); err != nil {
					b.Error(err)
					return
				}
				local = append(local, t1.Sub(t0), time.Since(t1))
			}
			lat.add(local)
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpuBBS := cpuTime() - cpu0
	b.StopTimer()
	transitions := float64(2 * perClient * benchClients)
	rate := transitions / elapsed.Seconds()

	cpu0 = cpuTime()
	raw := rawGuardedTxnRate(b, c.etcd, int(transitions))
	cpuRaw := cpuTime() - cpu0
	b.ReportMetric(cpuBBS.Seconds()/transitions*1e6, "cpu_us/transition")
	b.ReportMetric(cpuRaw.Seconds()/float64(int(transitions)/benchClients*benchClients)*1e6, "raw_cpu_us/txn")
	b.ReportMetric(rate, "transitions/s")
	b.ReportMetric(raw, "raw_txn/s")
	b.ReportMetric(rate/raw*100, "%_of_raw")
	if size, dur, ok := batchStats(srv.metrics); ok {
		b.ReportMetric(size, "txn/batch")
		b.ReportMetric(dur*1000, "ms/batch")
	}
	b.ReportMetric(lat.quantile(0.5).Seconds()*1000, "p50_ms")
	b.ReportMetric(lat.quantile(0.99).Seconds()*1000, "p99_ms")
}

// rawGuardedTxnRate runs n guarded single-key puts (If ModRevision == r,
// Then Put, 300-byte values) from 32 clients straight at etcd.
func rawGuardedTxnRate(b *testing.B, client *clientv3.Client, n int) float64 {
	b.Helper()
	ctx := context.Background()
	value := strings.Repeat("v", 300)
	per := max(n/benchClients, 1)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range benchClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := fmt.Sprintf("/bench/raw/%d", i)
			var rev int64
			for range per {
				resp, err := client.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).Then(clientv3.OpPut(key, value)).Commit()
				if err != nil || !resp.Succeeded {
					b.Errorf("raw txn: %v %v", resp, err)
					return
				}
				rev = resp.Header.Revision
			}
		}()
	}
	wg.Wait()
	return float64(per*benchClients) / time.Since(start).Seconds()
}

type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d []time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d...)
	l.mu.Unlock()
}

func (l *latencies) quantile(q float64) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.d) == 0 {
		return 0
	}
	sort.Slice(l.d, func(i, j int) bool { return l.d[i] < l.d[j] })
	return l.d[min(int(q*float64(len(l.d))), len(l.d)-1)]
}

// BenchmarkListActualLRPs100k lists 100,000 actual LRPs through the BBS, and
// reports beside it the raw etcd range read of the same keys in the same run.
func BenchmarkListActualLRPs100k(b *testing.B) {
	c := newCluster(b, true)
	srv := c.start(bbsOptions{})
	client := c.dialMany(srv, 1)[0]
	ctx := context.Background()
	const lrps, instances = 1000, 100
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := range lrps {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if _, _, err := srv.store.DesireLRP(ctx, testDesired(fmt.Sprintf("list-%d", i), instances)); err != nil {
				b.Error(err)
			}
		}()
	}
	wg.Wait()
	b.ResetTimer()
	for range b.N {
		resp, err := client.ListActualLRPs(ctx, &models.ListActualLRPsRequest{})
		if err != nil {
			b.Fatal(err)
		}
		if len(resp.ActualLrps) != lrps*instances {
			b.Fatalf("listed %d", len(resp.ActualLrps))
		}
	}
	b.StopTimer()
	perList := b.Elapsed() / time.Duration(b.N)
	t0 := time.Now()
	const rawRounds = 3
	for range rawRounds {
		resp, err := c.etcd.Get(ctx, db.NewKeys("").ActualLRPs(), clientv3.WithPrefix())
		if err != nil || len(resp.Kvs) != lrps*instances {
			b.Fatalf("raw get: %v", err)
		}
	}
	raw := time.Since(t0) / rawRounds
	b.ReportMetric(perList.Seconds()*1000, "ms/list")
	b.ReportMetric(raw.Seconds()*1000, "raw_etcd_ms/list")
}

// BenchmarkEventFanOut streams LRP events to 10 gRPC subscribers while a
// writer changes 100 actual LRPs per transaction; it reports the events per
// second the slowest subscriber received.
func BenchmarkEventFanOut(b *testing.B) {
	c := newCluster(b, true)
	srv := c.start(bbsOptions{})
	const subscribers = 10
	clients := c.dialMany(srv, subscribers)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	keys := db.NewKeys("")
	const batch = 100
	total := max(b.N, batch)
	total = (total + batch - 1) / batch * batch

	var done sync.WaitGroup
	counts := make([]atomic.Int64, subscribers)
	probed := make([]atomic.Bool, subscribers)
	finish := make([]time.Time, subscribers)
	for i, client := range clients {
		stream, err := client.SubscribeLRPEvents(ctx, &models.SubscribeLRPEventsRequest{})
		if err != nil {
			b.Fatal(err)
		}
		done.Add(1)
		go func() {
			defer done.Done()
			for counts[i].Load() < int64(total) {
				e, err := stream.Recv()
				if err != nil {
					b.Errorf("subscriber %d: %v", i, err)
					return
				}
				if strings.HasPrefix(e.GetActualLrpInstanceCreated().GetActualLrp().ProcessGuid(), "fan-") {
					counts[i].Add(1)
				} else {
					probed[i].Store(true)
				}
			}
			finish[i] = time.Now()
		}()
	}
	// A subscription starts at the revision its server-side watch opened
	// at; write probes until every subscriber has seen one, so none misses
	// the measured writes.
	probe := &models.ActualLRP{ActualLrpKey: &models.ActualLRPKey{ProcessGuid: "probe", Domain: "apps"}, State: models.ActualLRP_UNCLAIMED,
		ModificationTag: &models.ModificationTag{Epoch: "e"}}
	deadline := time.Now().Add(30 * time.Second)
	for {
		all := true
		for i := range probed {
			all = all && probed[i].Load()
		}
		if all {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("subscribers never saw a probe")
		}
		if _, err := c.etcd.Put(ctx, keys.ActualLRP("probe", 0, 0), string(mustMarshal(b, probe))); err != nil {
			b.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}

	b.ResetTimer()
	start := time.Now()
	for n := 0; n < total; n += batch {
		ops := make([]clientv3.Op, 0, batch)
		for j := range batch {
			a := &models.ActualLRP{
				ActualLrpKey:    &models.ActualLRPKey{ProcessGuid: fmt.Sprintf("fan-%d", n/batch), Index: int32(j), Domain: "apps"},
				State:           models.ActualLRP_UNCLAIMED,
				Since:           time.Now().UnixNano(),
				ModificationTag: &models.ModificationTag{Epoch: "e"},
			}
			ops = append(ops, clientv3.OpPut(keys.ActualLRP(a.ProcessGuid(), a.Index(), 0), string(mustMarshal(b, a))))
		}
		if _, err := c.etcd.Txn(ctx).Then(ops...).Commit(); err != nil {
			b.Fatal(err)
		}
	}
	done.Wait()
	b.StopTimer()
	slowest := 0.0
	for i := range finish {
		rate := float64(total) / finish[i].Sub(start).Seconds()
		if slowest == 0 || rate < slowest {
			slowest = rate
		}
	}
	b.ReportMetric(slowest, "events/s/subscriber")
}

// cpuTime is the CPU (user + system) this process has used: client, BBS and
// embedded etcd alike, since all run here.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// batchStats reads the mean group-commit batch size and duration.
func batchStats(reg *prometheus.Registry) (size, dur float64, ok bool) {
	mfs, err := reg.Gather()
	if err != nil {
		return 0, 0, false
	}
	mean := func(name string) float64 {
		for _, mf := range mfs {
			if mf.GetName() == name && len(mf.Metric) > 0 {
				h := mf.Metric[0].GetHistogram()
				if h.GetSampleCount() > 0 {
					return h.GetSampleSum() / float64(h.GetSampleCount())
				}
			}
		}
		return 0
	}
	return mean("gavel_bbs_store_batch_size"), mean("gavel_bbs_store_commit_duration_seconds"), true
}
