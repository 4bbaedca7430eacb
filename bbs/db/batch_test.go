package db

import (
	"context"
	"fmt"
	"sync"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Transactions sharing a batch keep their own guards: the ones whose guard
// holds write, the others read back, and none is affected by another.
func TestBatchedTransactionsKeepTheirOwnGuards(t *testing.T) {
	_, client, _ := newTestStore(t)
	ctx := ctxT(t)
	b := newBatcher(client, newBatchMetrics(nil))
	const n = 40
	revs := make([]int64, n)
	for i := range n {
		resp, err := client.Put(ctx, fmt.Sprintf("/t/k%d", i), "v0")
		if err != nil {
			t.Fatal(err)
		}
		revs[i] = resp.Header.Revision
	}
	var wg sync.WaitGroup
	outs := make([]txnOutcome, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := fmt.Sprintf("/t/k%d", i)
			rev := revs[i]
			if i%2 == 1 {
				rev-- // a stale guard
			}
			outs[i] = b.commit(context.Background(),
				[]clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", rev)},
				[]clientv3.Op{clientv3.OpPut(key, "v1")}, []clientv3.Op{clientv3.OpGet(key)})
		}()
	}
	wg.Wait()
	for i, out := range outs {
		if out.err != nil {
			t.Fatalf("txn %d: %v", i, out.err)
		}
		if out.succeeded != (i%2 == 0) {
			t.Fatalf("txn %d succeeded=%v", i, out.succeeded)
		}
		resp, err := client.Get(ctx, fmt.Sprintf("/t/k%d", i))
		if err != nil {
			t.Fatal(err)
		}
		want := "v0"
		if i%2 == 0 {
			want = "v1"
			if resp.Kvs[0].ModRevision != out.revision {
				t.Fatalf("txn %d: reported revision %d, key at %d", i, out.revision, resp.Kvs[0].ModRevision)
			}
		} else if string(out.responses[0].GetResponseRange().Kvs[0].Value) != "v0" {
			t.Fatalf("txn %d: else branch did not read the key back", i)
		}
		if got := string(resp.Kvs[0].Value); got != want {
			t.Fatalf("key %d = %q, want %q", i, got, want)
		}
	}
}

// Two transactions guarded on the same key never share a batch: with the
// same guard, exactly one succeeds.
func TestBatchedTransactionsOnOneKeyAreSerialised(t *testing.T) {
	_, client, _ := newTestStore(t)
	ctx := ctxT(t)
	b := newBatcher(client, newBatchMetrics(nil))
	for round := range 100 {
		key := fmt.Sprintf("/t/same%d", round)
		var wg sync.WaitGroup
		outs := make([]txnOutcome, 8)
		for i := range outs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				outs[i] = b.commit(ctx,
					[]clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", 0)},
					[]clientv3.Op{clientv3.OpPut(key, fmt.Sprint(i))}, nil)
			}()
		}
		wg.Wait()
		wins := 0
		for _, o := range outs {
			if o.err != nil {
				t.Fatal(o.err)
			}
			if o.succeeded {
				wins++
			}
		}
		if wins != 1 {
			t.Fatalf("round %d: %d transactions won the same guard", round, wins)
		}
	}
}
