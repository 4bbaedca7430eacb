package rep

import (
	"context"
	"maps"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/tedsuo/ifrit"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/gavel-scheduler/gavel/bbs"
	"github.com/gavel-scheduler/gavel/internal/roottest"
	"github.com/gavel-scheduler/gavel/proto/models"
)

func internalRouter(t testing.TB, hosts ...string) map[string]*structpb.Value {
	t.Helper()
	var list []any
	for _, h := range hosts {
		list = append(list, map[string]any{"hostname": h})
	}
	v, err := structpb.NewValue(list)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]*structpb.Value{models.InternalRouter: v}
}

// TestInstanceInfoThroughARealCell follows an instance's internal routes
// and metric tags through a cell running real runc containers, a real BBS
// (embedded etcd) and the rep API over gRPC: the instances start with the
// desired LRP's values; a desired LRP update reaches them through the BBS
// and the rep before the update call returns, and every bulk sync keeps
// them; a restarted rep reports the values the containers were run with
// until it is updated again (as the converger's next pass does); an
// evacuating cell hands the instances over with the updated values.
func TestInstanceInfoThroughARealCell(t *testing.T) {
	roottest.Require(t, "runc", "iptables", "busybox")
	reps := NewClient(nil)
	t.Cleanup(reps.Close)
	bbsClient := startBBS(t, bbs.WithCells(reps))
	exec := startRuncExecutor(t, runcOptions{tag: "gvu", pool: "10.251.8.0/24", portStart: 64200, containers: 10})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	t.Cleanup(cancel)

	newCell := func() *Cell {
		t.Helper()
		cell := NewCell(CellConfig{CellID: "cell-u", Zone: "z1", PollInterval: time.Hour}, bbsClient, exec, nil, quietLogger())
		return cell
	}
	cell := newCell()
	stopCell, err := startCellRunner(t, cell)
	if err != nil {
		t.Fatal(err)
	}
	runner := NewRunner(RunnerConfig{
		Info:          CellInfo{CellID: "cell-u", Zone: "z1", RootFSProviders: []*models.Provider{{Name: "preloaded", Properties: []string{"busybox"}}}},
		ListenAddress: "127.0.0.1:0", Containers: ExecutorContainers{Executor: exec}, Cell: cell, Executor: exec,
		BBS: bbsClient, PresenceTTL: 15 * time.Second, Logger: quietLogger(),
	})
	proc := ifrit.Invoke(runner)
	t.Cleanup(func() { proc.Signal(os.Interrupt); <-proc.Wait() })
	eventually(t, "the cell's presence", func() bool { return slices.Equal(cellIDs(t, bbsClient), []string{"cell-u"}) })

	if _, err := bbsClient.DesireLRP(ctx, &models.DesireLRPRequest{DesiredLrp: &models.DesiredLRP{
		ProcessGuid: "web", Domain: "apps", Instances: 2, Rootfs: "preloaded:busybox", MemoryMb: 16, DiskMb: 16,
		Routes: internalRouter(t, "web.apps.internal"),
		MetricTags: map[string]*models.MetricTagValue{
			"index": {Dynamic: models.MetricTagValue_INDEX}, "id": {Dynamic: models.MetricTagValue_INSTANCE_GUID}, "app": {Static: "web"},
		},
		Action: &models.Action{Kind: &models.Action_Run{Run: &models.RunAction{Path: "/bin/sleep", Args: []string{"3600"}, User: "root"}}},
	}}); err != nil {
		t.Fatal(err)
	}
	var work []*models.LRPWork
	for i := range int32(2) {
		work = append(work, &models.LRPWork{ProcessGuid: "web", Index: i, Domain: "apps",
			PlacementConstraint: &models.PlacementConstraint{Rootfs: "preloaded:busybox"}, Resource: &models.Resource{MemoryMb: 16, DiskMb: 16}})
	}
	if resp, err := runner.Server().Perform(ctx, &models.PerformRequest{CellId: "cell-u", Lrps: work}); err != nil || len(resp.FailedLrps) != 0 {
		t.Fatalf("perform: %v %v", resp, err)
	}

	rows := func(presence models.ActualLRP_Presence) []*models.ActualLRP {
		t.Helper()
		resp, err := bbsClient.ListActualLRPs(ctx, &models.ListActualLRPsRequest{ProcessGuid: "web"})
		if err != nil {
			t.Fatal(err)
		}
		var out []*models.ActualLRP
		for _, a := range resp.ActualLrps {
			if a.Presence == presence {
				out = append(out, a)
			}
		}
		slices.SortFunc(out, func(a, b *models.ActualLRP) int { return int(a.Index() - b.Index()) })
		return out
	}
	// carry reports whether every row of presence is RUNNING with the
	// routes and the tags want gives for it.
	carry := func(presence models.ActualLRP_Presence, hosts []string, want func(a *models.ActualLRP) map[string]string) bool {
		rs := rows(presence)
		if len(rs) != 2 {
			return false
		}
		for _, a := range rs {
			if a.State != models.ActualLRP_RUNNING || !models.EqualInternalRoutes(a.ActualLrpInternalRoutes, routeList(hosts...)) ||
				!maps.Equal(a.MetricTags, want(a)) {
				return false
			}
		}
		return true
	}
	original := func(a *models.ActualLRP) map[string]string {
		return map[string]string{"index": strconv.Itoa(int(a.Index())), "id": a.InstanceGuid(), "app": "web"}
	}
	updated := func(a *models.ActualLRP) map[string]string {
		return map[string]string{"index": strconv.Itoa(int(a.Index())), "app": "web-v2"}
	}
	newHosts := []string{"web.apps.internal", "api.apps.internal"}
	eventually(t, "both instances RUNNING with their routes and tags", func() bool {
		return carry(models.ActualLRP_ORDINARY, []string{"web.apps.internal"}, original)
	})
	for _, a := range rows(models.ActualLRP_ORDINARY) {
		c, err := exec.GetContainer(ctx, a.InstanceGuid())
		if err != nil {
			t.Fatal(err)
		}
		if got := containerInstanceInfo(c); !sameInfo(got, instanceInfo{routes: routeList("web.apps.internal"), tags: original(a)}) {
			t.Fatalf("container %s keeps %+v", a.InstanceGuid(), got)
		}
	}

	// The update reaches the instances through the BBS and the rep, and
	// the rep has reported it back before the update call returns.
	if _, err := bbsClient.UpdateDesiredLRP(ctx, &models.UpdateDesiredLRPRequest{ProcessGuid: "web", Update: &models.DesiredLRPUpdate{
		Routes: internalRouter(t, newHosts...), SetMetricTags: true,
		MetricTags: map[string]*models.MetricTagValue{"index": {Dynamic: models.MetricTagValue_INDEX}, "app": {Static: "web-v2"}},
	}}); err != nil {
		t.Fatal(err)
	}
	if !carry(models.ActualLRP_ORDINARY, newHosts, updated) {
		t.Fatalf("after the update returned, the rows are %v", rows(models.ActualLRP_ORDINARY))
	}
	// Bulk syncs keep reporting the update.
	cell.Sync(ctx)
	eventually(t, "the sync's operations", cell.queue.idle)
	if !carry(models.ActualLRP_ORDINARY, newHosts, updated) {
		t.Fatalf("after a bulk sync the rows are %v", rows(models.ActualLRP_ORDINARY))
	}

	// A restarted rep reports what the containers were run with...
	stopCell()
	cell = newCell()
	if _, err := startCellRunner(t, cell); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the restarted rep to report the containers' values", func() bool {
		return carry(models.ActualLRP_ORDINARY, []string{"web.apps.internal"}, original)
	})
	// ...until it is updated again, as the converger's next pass does.
	for _, a := range rows(models.ActualLRP_ORDINARY) {
		if err := cell.UpdateLRP(ctx, &models.UpdateLRPInstanceRequest{ActualLrpKey: a.ActualLrpKey, ActualLrpInstanceKey: a.ActualLrpInstanceKey,
			ActualLrpInternalRoutes: routeList(newHosts...), MetricTags: updated(a)}); err != nil {
			t.Fatal(err)
		}
	}
	if !carry(models.ActualLRP_ORDINARY, newHosts, updated) {
		t.Fatalf("after the restarted rep's update, the rows are %v", rows(models.ActualLRP_ORDINARY))
	}
	if err := cell.UpdateLRP(ctx, &models.UpdateLRPInstanceRequest{ActualLrpKey: &models.ActualLRPKey{ProcessGuid: "web", Index: 0, Domain: "apps"},
		ActualLrpInstanceKey: &models.ActualLRPInstanceKey{InstanceGuid: "no-such-instance", CellId: "cell-u"}}); !models.IsNotFound(err) {
		t.Fatalf("update of an instance the cell does not hold: %v", err)
	}

	// Evacuating, the instances hand over with the updated values.
	cell.Evacuate()
	eventually(t, "EVACUATING rows with the updated values", func() bool {
		return carry(models.ActualLRP_EVACUATING, newHosts, updated)
	})
}
