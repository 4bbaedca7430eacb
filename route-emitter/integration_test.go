package routeemitter

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/gavel-scheduler/gavel/internal/etcdembed"
	"github.com/gavel-scheduler/gavel/proto/models"
)

// consistent checks what a client holds the way Envoy would need it: a
// go-control-plane consistent snapshot whose every resource validates.
func consistent(t *testing.T, r Resources) {
	t.Helper()
	checkResources(t, r)
}

// TestThroughBBSOverADS drives an LRP through a real BBS as a rep would and
// follows it with an ADS client of each protocol (state-of-the-world and
// delta) over mutual TLS: LDS, RDS, CDS and EDS arrive; scaling up and a
// crash change the endpoints through EDS alone; a new hostname goes
// through RDS alone.
func TestThroughBBSOverADS(t *testing.T) {
	h := newHarness(t, etcdembed.Options{NoFsync: true})
	h.desire("web", 2, httpRoutes(8080, "web.example.com"))
	h.run("web", 0, "cell-1", 61000)
	h.run("web", 1, "cell-1", 61001)

	em, _ := h.startEmitter(h.emitterConfig())
	waitServing(t, em)
	// Envoy presents a certificate of the same CA (gavel certs' client).
	conn := h.dial(em.Addr(), "client")
	sotw, delta := newADSClient(t, conn, false), newADSClient(t, conn, true)
	clients := []*adsClient{sotw, delta}

	want := []string{"127.0.0.1:61000", "127.0.0.1:61001"}
	for _, c := range clients {
		r := c.waitFor("web's two endpoints", func(r Resources) bool {
			return slices.Equal(r.endpointsOf("web_8080"), want) && len(r.RouteConfigs) == 1 && len(r.Listeners) == 1
		})
		consistent(t, r)
		vh := r.RouteConfigs[RouteConfigName].GetVirtualHosts()
		if len(vh) != 1 || vh[0].GetDomains()[0] != "web.example.com" || vh[0].GetRoutes()[0].GetRoute().GetCluster() != "web_8080" {
			t.Fatalf("virtual hosts %v", vh)
		}
	}

	onlyEDS := func(what string, before map[string]int, c *adsClient) {
		t.Helper()
		after := c.counts()
		for _, typ := range []string{resource.ListenerType, resource.RouteType, resource.ClusterType} {
			if after[typ] != before[typ] {
				t.Errorf("%s (delta=%v): %s responses went %d -> %d; an endpoint change must be EDS only", what, c.delta, typ, before[typ], after[typ])
			}
		}
		if after[resource.EndpointType] <= before[resource.EndpointType] {
			t.Errorf("%s (delta=%v): no EDS response", what, c.delta)
		}
	}

	// Scale up: a third instance runs.
	before := []map[string]int{sotw.counts(), delta.counts()}
	if _, err := h.bbs.UpdateDesiredLRP(context.Background(), &models.UpdateDesiredLRPRequest{ProcessGuid: "web",
		Update: &models.DesiredLRPUpdate{Instances: ptr(int32(3))}}); err != nil {
		t.Fatal(err)
	}
	h.run("web", 2, "cell-2", 61002)
	want = []string{"127.0.0.1:61000", "127.0.0.1:61001", "127.0.0.1:61002"}
	for i, c := range clients {
		consistent(t, c.waitFor("the third endpoint", func(r Resources) bool { return slices.Equal(r.endpointsOf("web_8080"), want) }))
		onlyEDS("scale up", before[i], c)
	}

	// A crash: index 1 leaves the load assignment (and restarts unclaimed).
	before = []map[string]int{sotw.counts(), delta.counts()}
	ik := &models.ActualLRPInstanceKey{InstanceGuid: "web-1-61001", CellId: "cell-1"}
	if _, err := h.bbs.CrashActualLRP(context.Background(), &models.CrashActualLRPRequest{
		ActualLrpKey: &models.ActualLRPKey{ProcessGuid: "web", Index: 1, Domain: "apps"}, ActualLrpInstanceKey: ik, ErrorMessage: "exit status 2"}); err != nil {
		t.Fatal(err)
	}
	want = []string{"127.0.0.1:61000", "127.0.0.1:61002"}
	for i, c := range clients {
		consistent(t, c.waitFor("the crashed endpoint to go", func(r Resources) bool { return slices.Equal(r.endpointsOf("web_8080"), want) }))
		onlyEDS("crash", before[i], c)
	}

	// A hostname added: the route configuration changes, clusters do not.
	before = []map[string]int{sotw.counts(), delta.counts()}
	if _, err := h.bbs.UpdateDesiredLRP(context.Background(), &models.UpdateDesiredLRPRequest{ProcessGuid: "web",
		Update: &models.DesiredLRPUpdate{SetRoutes: true, Routes: routesJSON(t, httpRoutes(8080, "web.example.com", "www.example.com"))}}); err != nil {
		t.Fatal(err)
	}
	for i, c := range clients {
		consistent(t, c.waitFor("the second hostname", func(r Resources) bool {
			return len(r.RouteConfigs[RouteConfigName].GetVirtualHosts()) == 2
		}))
		after := c.counts()
		if after[resource.ClusterType] != before[i][resource.ClusterType] || after[resource.ListenerType] != before[i][resource.ListenerType] {
			t.Errorf("delta=%v: a hostname change sent CDS or LDS: %v -> %v", c.delta, before[i], after)
		}
	}

	// The read API shows the same table.
	resp, err := models.NewRouteEmitterClient(conn).ListRoutes(context.Background(), &models.ListRoutesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Entries) != 1 || len(resp.Entries[0].Endpoints) != 2 || len(resp.Entries[0].HttpRoutes) != 2 {
		t.Fatalf("ListRoutes %v", resp)
	}

	// Removing the LRP removes its cluster, load assignment and hosts.
	if _, err := h.bbs.RemoveDesiredLRP(context.Background(), &models.RemoveDesiredLRPRequest{ProcessGuid: "web"}); err != nil {
		t.Fatal(err)
	}
	for _, c := range clients {
		consistent(t, c.waitFor("web to be gone", func(r Resources) bool {
			return len(r.Clusters) == 0 && len(r.RouteConfigs[RouteConfigName].GetVirtualHosts()) == 0
		}))
	}
}

func ptr[T any](v T) *T { return &v }

// gatedBBS holds a real BBS client's lists until released, to catch a
// restarted emitter serving before its first sync.
type gatedBBS struct {
	BBS
	open chan struct{}
}

func (g gatedBBS) ListActualLRPs(ctx context.Context, in *models.ListActualLRPsRequest, opts ...grpc.CallOption) (*models.ListActualLRPsResponse, error) {
	select {
	case <-g.open:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return g.BBS.ListActualLRPs(ctx, in, opts...)
}

// TestRestartServesAConsistentSnapshotWithoutEmptyRoutes: an Envoy
// connected to an emitter that restarts keeps its routes while the new
// process syncs (its streams are refused, not answered empty) and then
// gets a complete, consistent snapshot again.
func TestRestartServesAConsistentSnapshotWithoutEmptyRoutes(t *testing.T) {
	h := newHarness(t, etcdembed.Options{NoFsync: true})
	h.desire("web", 2, httpRoutes(8080, "web.example.com"))
	h.desire("db", 2, `{"tcp-router": [{"external_port": 61500, "container_port": 8080}]}`)
	h.run("web", 0, "cell-1", 61000)
	h.run("web", 1, "cell-1", 61001)
	h.run("db", 0, "cell-1", 61002)

	cfg := h.emitterConfig()
	cfg.ListenAddress = freeAddr(t)
	em, stop := h.startEmitter(cfg)
	waitServing(t, em)
	conn := h.dial(cfg.ListenAddress, "client")
	full := func(r Resources) bool {
		return len(r.endpointsOf("web_8080")) == 2 && len(r.endpointsOf("db_8080")) == 1 && len(r.Listeners) == 2
	}
	var clients []*adsClient
	var mu sync.Mutex
	var emptied []string
	for _, delta := range []bool{false, true} {
		c := newADSClient(t, conn, delta)
		c.waitFor("the first snapshot", full)
		// From now on, every state the client passes through must still
		// route everything.
		c.mu.Lock()
		c.watch = func(r Resources) {
			if len(r.Clusters) > 0 && !full(r) {
				mu.Lock()
				emptied = append(emptied, sortedNames(r.LoadAssignments)...)
				mu.Unlock()
			}
		}
		c.mu.Unlock()
		clients = append(clients, c)
	}
	connects := []int{clients[0].connects, clients[1].connects}

	stop()
	// The new process cannot list until released: meanwhile it must not
	// serve.
	gate := gatedBBS{BBS: h.bbs, open: make(chan struct{})}
	em2, _ := h.startEmitter(cfg, WithBBS(gate))
	ads := clients[0]
	deadline := time.Now().Add(10 * time.Second)
	for {
		ads.mu.Lock()
		err := ads.lastErr
		ads.mu.Unlock()
		if st, ok := status.FromError(err); ok && st.Code() == codes.Unavailable && strings.Contains(st.Message(), "first sync not done") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("restarted emitter did not refuse streams before its sync: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if em2.Serving() {
		t.Fatal("restarted emitter serves before its first sync")
	}
	close(gate.open)
	waitServing(t, em2)
	for i, c := range clients {
		c.waitFor("a new session", func(Resources) bool {
			c.mu.Lock()
			defer c.mu.Unlock()
			return c.connects > connects[i] && c.lastErr != nil
		})
		consistent(t, c.waitFor("everything again", full))
	}
	mu.Lock()
	if len(emptied) > 0 {
		t.Fatalf("a client passed through a state missing routes: %v", emptied)
	}
	mu.Unlock()
	// A change after the restart arrives: the clients follow the new
	// process.
	for _, c := range clients {
		c.mu.Lock()
		c.watch = nil
		c.mu.Unlock()
	}
	h.run("db", 1, "cell-1", 61003)
	for _, c := range clients {
		consistent(t, c.waitFor("the new process's update", func(r Resources) bool {
			return slices.Equal(r.endpointsOf("db_8080"), []string{"127.0.0.1:61002", "127.0.0.1:61003"})
		}))
	}
}

// TestLocalModeServesOnlyItsCell: a local emitter follows only its cell's
// instances (fetching the DesiredLRP of an app when its first instance
// starts there) and needs no election.
func TestLocalModeServesOnlyItsCell(t *testing.T) {
	h := newHarness(t, etcdembed.Options{NoFsync: true})
	h.desire("web", 2, httpRoutes(8080, "web.example.com"))
	h.run("web", 0, "cell-1", 61000)
	h.run("web", 1, "cell-2", 61001)

	cfg := h.emitterConfig()
	cfg.CellID = "cell-1"
	em, _ := h.startEmitter(cfg)
	if !em.Serving() {
		t.Fatal("a local emitter is ready only once it serves")
	}
	c := newADSClient(t, h.dial(em.Addr(), "client"), false)
	c.waitFor("cell-1's endpoint", func(r Resources) bool {
		return slices.Equal(r.endpointsOf("web_8080"), []string{"127.0.0.1:61000"})
	})
	// An app that had nothing on this cell appears with its first instance.
	h.desire("api", 1, httpRoutes(8080, "api.example.com"))
	h.run("api", 0, "cell-1", 61100)
	r := c.waitFor("api's endpoint", func(r Resources) bool {
		return slices.Equal(r.endpointsOf("api_8080"), []string{"127.0.0.1:61100"})
	})
	consistent(t, r)
	if diff := cmp.Diff([]string{"api_8080", "web_8080"}, sortedNames(r.Clusters)); diff != "" {
		t.Fatalf("clusters (-want +got):\n%s", diff)
	}
}

// TestStreamResumesAndRelistsAfterCompaction: when the BBS goes away the
// emitter resumes the event stream from its last position (no change is
// lost); when that position has been compacted away it lists again.
func TestStreamResumesAndRelistsAfterCompaction(t *testing.T) {
	h := newHarness(t, etcdembed.Options{NoFsync: true})
	h.desire("web", 3, httpRoutes(8080, "web.example.com"))
	h.run("web", 0, "cell-1", 61000)
	cfg := h.emitterConfig()
	cfg.BBSAddress = h.bbsAddr
	addr := h.bbsAddr
	em, _ := h.startEmitter(cfg)
	waitServing(t, em)
	c := newADSClient(t, h.dial(em.Addr(), "client"), true)
	c.waitFor("the first endpoint", func(r Resources) bool { return len(r.endpointsOf("web_8080")) == 1 })

	// The BBS restarts; a change made through another BBS meanwhile is
	// delivered when the stream resumes.
	h.stopBBS()
	other := h.bbs
	h.startBBS("127.0.0.1:0")
	h.bbs = models.NewBBSClient(h.dial(h.bbsAddr, "client"))
	h.run("web", 1, "cell-1", 61001)
	h.bbs = other
	h.startBBS(addr)
	c.waitFor("the change made while the stream was down", func(r Resources) bool { return len(r.endpointsOf("web_8080")) == 2 })

	// Now the same, with etcd compacting the history the stream needs.
	h.stopBBS()
	h.startBBS("127.0.0.1:0")
	h.bbs = models.NewBBSClient(h.dial(h.bbsAddr, "client"))
	h.run("web", 2, "cell-1", 61002)
	rev, err := h.etcd.Get(context.Background(), "compaction-marker")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.etcd.Compact(context.Background(), rev.Header.Revision); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	h.startBBS(addr)
	r := c.waitFor("the change made before the compaction", func(r Resources) bool { return len(r.endpointsOf("web_8080")) == 3 })
	consistent(t, r)
}
