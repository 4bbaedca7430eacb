package routeemitter

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gavel-scheduler/gavel/internal/etcdembed"
	"github.com/gavel-scheduler/gavel/proto/models"
)

// TestPeriodicSyncsAgreeWithEvents: with full syncs every few tens of
// milliseconds racing the event stream while instances start and crash,
// the published resources end up exactly those of a table built from a
// fresh listing: a swap neither loses nor repeats an event.
func TestPeriodicSyncsAgreeWithEvents(t *testing.T) {
	h := newHarness(t, etcdembed.Options{NoFsync: true})
	h.desire("web", 6, httpRoutes(8080, "web.example.com"))
	cfg := h.emitterConfig().emitterConfig()
	cfg.SyncInterval = 30 * time.Millisecond
	e := NewEmitter(cfg, h.bbs, nil, quietLogger())
	pub := NewPublisher("t-", quietLogger())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan struct{})
	go func() { done <- e.Run(ctx, pub, func() { close(ready) }) }()
	t.Cleanup(func() { cancel(); <-done })
	<-ready

	for i := range int32(6) {
		h.run("web", i, "cell-1", uint32(61000+i))
	}
	for _, i := range []int32{1, 4} {
		if _, err := h.bbs.CrashActualLRP(context.Background(), &models.CrashActualLRPRequest{
			ActualLrpKey:         &models.ActualLRPKey{ProcessGuid: "web", Index: i, Domain: "apps"},
			ActualLrpInstanceKey: &models.ActualLRPInstanceKey{InstanceGuid: fmt.Sprintf("web-%d-%d", i, 61000+i), CellId: "cell-1"}}); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"127.0.0.1:61000", "127.0.0.1:61002", "127.0.0.1:61003", "127.0.0.1:61005"}
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := pub.Resources()
		fresh := e.list(context.Background())
		if fresh.err != nil {
			t.Fatal(fresh.err)
		}
		full := cfg.Resources.Build(fresh.table)
		if cmp.Equal(full, got, protoCmp()) && cmp.Equal(want, got.endpointsOf("web_8080")) {
			checkResources(t, got)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("published %v, a fresh listing gives %v (-full +published):\n%s", got.endpointsOf("web_8080"),
				full.endpointsOf("web_8080"), cmp.Diff(full, got, protoCmp()))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
