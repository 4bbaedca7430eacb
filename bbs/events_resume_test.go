package bbs

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/gavel-scheduler/gavel/proto/models"
)

// A subscriber that keeps disconnecting (often in the middle of one
// transaction's events) and resuming from the last position it processed
// sees exactly the sequence a subscriber that never disconnected sees, while
// writers keep changing state through the BBS API.
func TestLRPEventStreamResumesExactlyOnceThroughGRPC(t *testing.T) {
	c := newCluster(t, false)
	b := c.start(bbsOptions{})
	client := c.dial(b)
	ctx := ctxT(t)

	list, err := client.ListActualLRPs(ctx, &models.ListActualLRPsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	start := &models.EventPosition{Revision: list.Revision, Seq: math.MaxUint32}
	const sentinel = "sentinel"
	isSentinel := func(e *models.LRPEvent) bool {
		return e.GetDesiredLrpCreated().GetDesiredLrp().ProcessGuid() == sentinel
	}

	// The reference subscriber never disconnects.
	refDone := make(chan []*models.LRPEvent, 1)
	ref, err := client.SubscribeLRPEvents(ctx, &models.SubscribeLRPEventsRequest{After: start})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		var got []*models.LRPEvent
		for {
			e, err := ref.Recv()
			if err != nil {
				t.Errorf("reference stream: %v", err)
				refDone <- got
				return
			}
			got = append(got, e)
			if isSentinel(e) {
				refDone <- got
				return
			}
		}
	}()

	// The flaky subscriber cuts its stream after a random number of events.
	flakyDone := make(chan []*models.LRPEvent, 1)
	reconnects := 0
	go func() {
		rng := rand.New(rand.NewPCG(1, 2))
		var got []*models.LRPEvent
		after := start
		for {
			sctx, cancel := context.WithCancel(ctx)
			stream, err := client.SubscribeLRPEvents(sctx, &models.SubscribeLRPEventsRequest{After: after})
			if err != nil {
				cancel()
				t.Errorf("flaky subscribe: %v", err)
				flakyDone <- got
				return
			}
			budget := 1 + rng.IntN(25)
			for range budget {
				e, err := stream.Recv()
				if err != nil {
					cancel()
					t.Errorf("flaky stream: %v", err)
					flakyDone <- got
					return
				}
				got = append(got, e)
				after = e.Position
				if isSentinel(e) {
					cancel()
					flakyDone <- got
					return
				}
			}
			cancel()
			reconnects++
		}
	}()

	// Writers: desired LRPs of 1–12 instances (one revision, many events),
	// claims, starts, crashes, scaling and removals.
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for i := range 25 {
				guid := fmt.Sprintf("w%d-%d", w, i)
				n := int32(1 + rng.IntN(12))
				if _, err := client.DesireLRP(ctx, &models.DesireLRPRequest{DesiredLrp: testDesired(guid, n)}); err != nil {
					t.Error(err)
					return
				}
				key := &models.ActualLRPInstanceKey{InstanceGuid: guid + "-i", CellId: "cell-1"}
				if _, err := client.ClaimActualLRP(ctx, &models.ClaimActualLRPRequest{ProcessGuid: guid, Index: 0, ActualLrpInstanceKey: key}); err != nil {
					t.Error(err)
					return
				}
				if _, err := client.StartActualLRP(ctx, &models.StartActualLRPRequest{
					ActualLrpKey: &models.ActualLRPKey{ProcessGuid: guid, Index: 0, Domain: "apps"}, ActualLrpInstanceKey: key,
					ActualLrpNetInfo: &models.ActualLRPNetInfo{Address: "127.0.0.1", Ports: []*models.PortMapping{{ContainerPort: 8080, HostPort: 61000}}},
				}); err != nil {
					t.Error(err)
					return
				}
				if _, err := client.CrashActualLRP(ctx, &models.CrashActualLRPRequest{
					ActualLrpKey: &models.ActualLRPKey{ProcessGuid: guid, Index: 0, Domain: "apps"}, ActualLrpInstanceKey: key, ErrorMessage: "exit 1",
				}); err != nil {
					t.Error(err)
					return
				}
				if i%3 == 0 {
					if _, err := client.RemoveDesiredLRP(ctx, &models.RemoveDesiredLRPRequest{ProcessGuid: guid}); err != nil {
						t.Error(err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	if _, err := client.DesireLRP(ctx, &models.DesireLRPRequest{DesiredLrp: testDesired(sentinel, 0)}); err != nil {
		t.Fatal(err)
	}
	want, got := <-refDone, <-flakyDone
	if t.Failed() {
		return
	}
	if len(want) < 500 {
		t.Fatalf("only %d events: the writers did not write enough to test anything", len(want))
	}
	if reconnects < 20 {
		t.Fatalf("only %d reconnects", reconnects)
	}
	if len(got) != len(want) {
		t.Fatalf("flaky subscriber saw %d events, reference %d", len(got), len(want))
	}
	for i := range want {
		if !proto.Equal(got[i], want[i]) {
			t.Fatalf("event %d differs:\n got  %v\n want %v", i, got[i], want[i])
		}
	}
	t.Logf("%d events, %d reconnects", len(want), reconnects)
}
