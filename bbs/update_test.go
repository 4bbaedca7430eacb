package bbs

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/gavel-scheduler/gavel/proto/models"
)

// recordingCells is a CellClient that records what the BBS asks of the
// cells, failing the cells in fail.
type recordingCells struct {
	mu      sync.Mutex // guards everything below
	updates []string   // "cell/guid/index/instance routes=[...] tags={...}", sorted by take
	stops   []string   // "cell/guid/index"
	fail    map[string]bool
}

func (r *recordingCells) StopLRPInstance(_ context.Context, cell *models.CellPresence, key *models.ActualLRPKey, _ *models.ActualLRPInstanceKey) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stops = append(r.stops, fmt.Sprintf("%s/%s/%d", cell.CellId, key.ProcessGuid, key.Index))
	return nil
}

func (r *recordingCells) UpdateLRPInstance(_ context.Context, cell *models.CellPresence, key *models.ActualLRPKey, ik *models.ActualLRPInstanceKey,
	routes []*models.ActualLRPInternalRoute, tags map[string]string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var hosts []string
	for _, rt := range routes {
		hosts = append(hosts, rt.Hostname)
	}
	var kv []string
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		kv = append(kv, k+":"+tags[k])
	}
	r.updates = append(r.updates, fmt.Sprintf("%s/%s/%d/%s routes=%v tags={%s}", cell.CellId, key.ProcessGuid, key.Index, ik.InstanceGuid,
		hosts, strings.Join(kv, ",")))
	if r.fail[cell.CellId] {
		return errors.New("cell unreachable")
	}
	return nil
}

func (r *recordingCells) CancelTask(context.Context, *models.CellPresence, string) error { return nil }

// take returns and forgets what was recorded, updates sorted.
func (r *recordingCells) take() (updates, stops []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	updates, stops = r.updates, r.stops
	r.updates, r.stops = nil, nil
	slices.Sort(updates)
	return updates, stops
}

func internalRoutes(t *testing.T, hosts ...string) *structpb.Value {
	t.Helper()
	var list []any
	for _, h := range hosts {
		list = append(list, map[string]any{"hostname": h})
	}
	v, err := structpb.NewValue(list)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// UpdateDesiredLRP tells the cells of the non-evacuating CLAIMED and
// RUNNING instances below the new count about changed internal routes or
// metric tags, and only then; an unreachable cell fails nothing.
func TestUpdateDesiredLRPUpdatesInstancesOnTheirCells(t *testing.T) {
	cells := &recordingCells{fail: map[string]bool{}}
	c := newCluster(t, false)
	client := c.dial(c.start(bbsOptions{cells: cells}))
	ctx := ctxT(t)
	d := testDesired("web", 5)
	d.Routes = map[string]*structpb.Value{models.InternalRouter: internalRoutes(t, "web.apps.internal")}
	if _, err := client.DesireLRP(ctx, &models.DesireLRPRequest{DesiredLrp: d}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"cell-1", "cell-2"} {
		if _, err := client.SetCellPresence(ctx, &models.SetCellPresenceRequest{Cell: &models.CellPresence{CellId: id, RepAddress: "127.0.0.1:1"}}); err != nil {
			t.Fatal(err)
		}
	}
	key := func(i int32) *models.ActualLRPKey {
		return &models.ActualLRPKey{ProcessGuid: "web", Index: i, Domain: "apps"}
	}
	ik := func(guid, cell string) *models.ActualLRPInstanceKey {
		return &models.ActualLRPInstanceKey{InstanceGuid: guid, CellId: cell}
	}
	net := &models.ActualLRPNetInfo{Address: "127.0.0.1", Ports: []*models.PortMapping{{ContainerPort: 8080, HostPort: 61000}}}
	start := func(i int32, k *models.ActualLRPInstanceKey) {
		t.Helper()
		if _, err := client.StartActualLRP(ctx, &models.StartActualLRPRequest{ActualLrpKey: key(i), ActualLrpInstanceKey: k, ActualLrpNetInfo: net}); err != nil {
			t.Fatal(err)
		}
	}
	claim := func(i int32, k *models.ActualLRPInstanceKey) {
		t.Helper()
		if _, err := client.ClaimActualLRP(ctx, &models.ClaimActualLRPRequest{ProcessGuid: "web", Index: i, ActualLrpInstanceKey: k}); err != nil {
			t.Fatal(err)
		}
	}
	// 0: running on cell-1, which evacuates it; the replacement is
	// claimed on cell-2. 1: running on cell-2. 2: unclaimed. 3: running
	// on a cell that is not present. 4: running on cell-1, past the count
	// the update sets.
	start(0, ik("web-0-a", "cell-1"))
	if resp, err := client.EvacuateRunningActualLRP(ctx, &models.EvacuateRunningActualLRPRequest{ActualLrpKey: key(0),
		ActualLrpInstanceKey: ik("web-0-a", "cell-1"), ActualLrpNetInfo: net}); err != nil || !resp.KeepContainer {
		t.Fatalf("evacuate: %v %v", resp, err)
	}
	claim(0, ik("web-0-b", "cell-2"))
	start(1, ik("web-1", "cell-2"))
	start(3, ik("web-3", "cell-gone"))
	start(4, ik("web-4", "cell-1"))

	update := func(u *models.DesiredLRPUpdate) {
		t.Helper()
		if _, err := client.UpdateDesiredLRP(ctx, &models.UpdateDesiredLRPRequest{ProcessGuid: "web", Update: u}); err != nil {
			t.Fatal(err)
		}
	}
	annotation := "v2"
	update(&models.DesiredLRPUpdate{Annotation: &annotation})
	update(&models.DesiredLRPUpdate{MetricTags: d.MetricTags, SetMetricTags: true}) // the same tags again
	update(&models.DesiredLRPUpdate{Routes: map[string]*structpb.Value{             // the same internal routes, a new cf-router
		models.InternalRouter: internalRoutes(t, "web.apps.internal"),
		"cf-router":           structpb.NewListValue(&structpb.ListValue{}),
	}})
	if u, s := cells.take(); len(u)+len(s) != 0 {
		t.Fatalf("updates that change no instance info reached the cells: updates %q stops %q", u, s)
	}

	four := int32(4)
	update(&models.DesiredLRPUpdate{Instances: &four, SetMetricTags: true, MetricTags: map[string]*models.MetricTagValue{
		"index": {Dynamic: models.MetricTagValue_INDEX}, "id": {Dynamic: models.MetricTagValue_INSTANCE_GUID}, "app": {Static: "web"},
	}})
	updates, stops := cells.take()
	want := []string{
		"cell-2/web/0/web-0-b routes=[web.apps.internal] tags={app:web,id:web-0-b,index:0}",
		"cell-2/web/1/web-1 routes=[web.apps.internal] tags={app:web,id:web-1,index:1}",
	}
	if !slices.Equal(updates, want) {
		t.Fatalf("metric tag change: updates\n%s\nwant\n%s", strings.Join(updates, "\n"), strings.Join(want, "\n"))
	}
	if !slices.Equal(stops, []string{"cell-1/web/4"}) {
		t.Fatalf("stops %q", stops)
	}

	// Internal routes alone; cell-2 cannot be reached: the update still
	// succeeds (the converger repairs the drift).
	cells.mu.Lock()
	cells.fail["cell-2"] = true
	cells.mu.Unlock()
	update(&models.DesiredLRPUpdate{Routes: map[string]*structpb.Value{models.InternalRouter: internalRoutes(t, "web.apps.internal", "api.apps.internal")}})
	updates, _ = cells.take()
	want = []string{
		"cell-2/web/0/web-0-b routes=[web.apps.internal api.apps.internal] tags={app:web,id:web-0-b,index:0}",
		"cell-2/web/1/web-1 routes=[web.apps.internal api.apps.internal] tags={app:web,id:web-1,index:1}",
	}
	if !slices.Equal(updates, want) {
		t.Fatalf("internal route change: updates\n%s\nwant\n%s", strings.Join(updates, "\n"), strings.Join(want, "\n"))
	}
	// The BBS's own state is untouched by the updates: the rows keep what
	// their cells last reported.
	rows, err := client.ListActualLRPs(ctx, &models.ListActualLRPsRequest{ProcessGuid: "web"})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range rows.ActualLrps {
		if len(a.ActualLrpInternalRoutes)+len(a.MetricTags) != 0 {
			t.Fatalf("row %s/%d %s changed: %v %v", a.ProcessGuid(), a.Index(), a.Presence, a.ActualLrpInternalRoutes, a.MetricTags)
		}
	}
}

// Without a rep client the update is stored all the same.
func TestUpdateDesiredLRPWithoutCells(t *testing.T) {
	c := newCluster(t, false)
	client := c.dial(c.start(bbsOptions{}))
	ctx := ctxT(t)
	if _, err := client.DesireLRP(ctx, &models.DesireLRPRequest{DesiredLrp: testDesired("web", 1)}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.StartActualLRP(ctx, &models.StartActualLRPRequest{ActualLrpKey: &models.ActualLRPKey{ProcessGuid: "web", Domain: "apps"},
		ActualLrpInstanceKey: &models.ActualLRPInstanceKey{InstanceGuid: "web-0", CellId: "cell-1"},
		ActualLrpNetInfo:     &models.ActualLRPNetInfo{Address: "127.0.0.1"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.UpdateDesiredLRP(ctx, &models.UpdateDesiredLRPRequest{ProcessGuid: "web", Update: &models.DesiredLRPUpdate{
		SetMetricTags: true, MetricTags: map[string]*models.MetricTagValue{"app": {Static: "web"}}}}); err != nil {
		t.Fatal(err)
	}
	got, err := client.GetDesiredLRP(ctx, &models.GetDesiredLRPRequest{ProcessGuid: "web"})
	if err != nil || got.DesiredLrp.MetricTags["app"].GetStatic() != "web" {
		t.Fatalf("desired %v %v", got, err)
	}
}
