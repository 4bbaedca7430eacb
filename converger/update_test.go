package converger

import (
	"fmt"
	"log/slog"
	"maps"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/tedsuo/ifrit"

	"github.com/gavel-scheduler/gavel/internal/tlsutil"
	"github.com/gavel-scheduler/gavel/proto/models"
	"github.com/gavel-scheduler/gavel/rep"
)

// startRep serves a rep API over containers (mutual TLS, the rep's
// certificate) and announces the cell through the BBS, as a rep does.
func (e *env) startRep(cellID string, containers rep.Containers) {
	e.t.Helper()
	rc := e.certs.Components["rep"]
	serverTLS, err := tlsutil.ServerConfig(e.certs.CACert, rc.Cert, rc.Key)
	if err != nil {
		e.t.Fatal(err)
	}
	runner := rep.NewRunner(rep.RunnerConfig{
		Info:          rep.CellInfo{CellID: cellID, Zone: "z1", RootFSProviders: []*models.Provider{{Name: "preloaded", Properties: []string{"busybox"}}}},
		ListenAddress: "127.0.0.1:0", TLS: serverTLS, Containers: containers,
		BBS: e.bbs, PresenceTTL: 15 * time.Second, Logger: slog.New(slog.DiscardHandler),
	})
	proc := ifrit.Invoke(runner)
	e.t.Cleanup(func() { proc.Signal(os.Interrupt); <-proc.Wait() })
	e.pollUntil("the rep's presence", func() bool {
		resp, err := e.bbs.GetCell(e.ctx(), &models.GetCellRequest{CellId: cellID})
		return err == nil && resp.GetCell().GetRepAddress() != ""
	})
}

// Instances whose metric tags or internal routes drifted from their desired
// LRP are updated through their cell's real rep API (§6.1.13, §6.1.14); an
// unreachable cell's update fails without failing the pass; once the rep
// reports what it was given, the next pass has nothing left to update.
func TestDriftedInstancesAreUpdatedThroughTheirRep(t *testing.T) {
	e := newEnv(t, envOptions{})
	containers := rep.NewMemoryContainers(&models.CellCapacity{MemoryMb: 1024, DiskMb: 1024, Containers: 10})
	e.desire("web", 3)
	var allocs []rep.Allocation
	for i := range int32(2) {
		allocs = append(allocs, rep.Allocation{Guid: instanceKey("web", i, "cell-1").InstanceGuid, LRP: &models.LRPWork{ProcessGuid: "web", Index: i, Domain: "apps",
			PlacementConstraint: &models.PlacementConstraint{Rootfs: "preloaded:busybox"}, Resource: &models.Resource{MemoryMb: 64}}})
	}
	for _, err := range containers.Allocate(e.ctx(), allocs) {
		if err != nil {
			t.Fatal(err)
		}
	}
	e.startRep("cell-1", containers)
	e.cell("cell-2", 15*time.Second) // present, its rep unreachable

	// web/0 is in step; web/1 and web/2 report the wrong index tag.
	e.start("web", 0, "cell-1")
	drifted := func(index int32, cell string) {
		t.Helper()
		key := &models.ActualLRPKey{ProcessGuid: "web", Index: index, Domain: "apps"}
		if _, err := e.bbs.StartActualLRP(e.ctx(), &models.StartActualLRPRequest{ActualLrpKey: key, ActualLrpInstanceKey: instanceKey("web", index, cell),
			ActualLrpNetInfo: &models.ActualLRPNetInfo{Address: "127.0.0.1"}, MetricTags: map[string]string{"index": "9"}}); err != nil {
			t.Fatal(err)
		}
	}
	drifted(1, "cell-1")
	drifted(2, "cell-2")

	p, r := e.pass()
	if len(p.UpdateInstances) != 2 || applied(r, ActionUpdateInstance) != 1 || r.Actions[ActionUpdateInstance].Failed != 1 {
		t.Fatalf("plan %v report %+v", describe(p), r.Actions[ActionUpdateInstance])
	}
	if got := testutil.ToFloat64(e.metrics.Actions.WithLabelValues(ActionUpdateInstance, "applied")); got != 1 {
		t.Fatalf("applied updates counted %v", got)
	}
	if u := containers.LastUpdate(instanceKey("web", 0, "cell-1").InstanceGuid); u != nil {
		t.Fatalf("the instance in step was updated: %v", u)
	}
	u := containers.LastUpdate(instanceKey("web", 1, "cell-1").InstanceGuid)
	if u == nil || !maps.Equal(u.MetricTags, map[string]string{"index": "1"}) || len(u.ActualLrpInternalRoutes) != 0 ||
		u.ActualLrpKey.GetIndex() != 1 || u.ActualLrpInstanceKey.GetCellId() != "cell-1" {
		t.Fatalf("rep was given %v", u)
	}

	// Internal routes now: the BBS here has no rep client, so the drift is
	// the converger's to repair, on every running instance of the cell.
	if _, err := e.bbs.UpdateDesiredLRP(e.ctx(), &models.UpdateDesiredLRPRequest{ProcessGuid: "web",
		Update: &models.DesiredLRPUpdate{Routes: internalRouter("web.apps.internal")}}); err != nil {
		t.Fatal(err)
	}
	p, r = e.pass()
	if len(p.UpdateInstances) != 3 || applied(r, ActionUpdateInstance) != 2 {
		t.Fatalf("plan %v report %+v", describe(p), r.Actions[ActionUpdateInstance])
	}
	for i := range int32(2) {
		u := containers.LastUpdate(instanceKey("web", i, "cell-1").InstanceGuid)
		if u == nil || len(u.ActualLrpInternalRoutes) != 1 || u.ActualLrpInternalRoutes[0].Hostname != "web.apps.internal" ||
			!maps.Equal(u.MetricTags, map[string]string{"index": fmt.Sprint(i)}) {
			t.Fatalf("index %d: rep was given %v", i, u)
		}
		// The rep reports what it was given (a MemoryContainers cell runs
		// nothing, so the test does it for it).
		if _, err := e.bbs.StartActualLRP(e.ctx(), &models.StartActualLRPRequest{ActualLrpKey: u.ActualLrpKey, ActualLrpInstanceKey: u.ActualLrpInstanceKey,
			ActualLrpNetInfo: &models.ActualLRPNetInfo{Address: "127.0.0.1"}, ActualLrpInternalRoutes: u.ActualLrpInternalRoutes, MetricTags: u.MetricTags}); err != nil {
			t.Fatal(err)
		}
	}
	p, _ = e.pass()
	if len(p.UpdateInstances) != 1 || p.UpdateInstances[0].Actual.CellID() != "cell-2" {
		t.Fatalf("after the rep reported: %v", describe(p))
	}
}
