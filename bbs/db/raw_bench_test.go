package db

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/gavel-scheduler/gavel/internal/etcdembed"
)

// BenchmarkRawGuardedTxn is the reference figure: single-key guarded puts
// (If ModRevision == r Then Put, 300-byte values) from 32 clients on one
// connection, straight at a durable embedded etcd.
func BenchmarkRawGuardedTxn(b *testing.B) {
	_, client := etcdembed.StartForTest(b)
	ctx := context.Background()
	value := strings.Repeat("v", 300)
	const clients = 32
	per := max(b.N/clients, 1)
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := fmt.Sprintf("/bench/raw/%d", i)
			var rev int64
			for range per {
				resp, err := client.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).Then(clientv3.OpPut(key, value)).Commit()
				if err != nil || !resp.Succeeded {
					b.Errorf("raw txn: %v", err)
					return
				}
				rev = resp.Header.Revision
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(per*clients)/time.Since(start).Seconds(), "txn/s")
}
