package rep

import (
	"context"
	"maps"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/gavel-scheduler/gavel/executor"
	"github.com/gavel-scheduler/gavel/proto/models"
)

func routeList(hosts ...string) []*models.ActualLRPInternalRoute {
	var out []*models.ActualLRPInternalRoute
	for _, h := range hosts {
		out = append(out, &models.ActualLRPInternalRoute{Hostname: h})
	}
	return out
}

func sameInfo(a, b instanceInfo) bool {
	return models.EqualInternalRoutes(a.routes, b.routes) && maps.Equal(a.tags, b.tags)
}

func TestInstanceInfoContainerTags(t *testing.T) {
	tests := []struct {
		name string
		info instanceInfo
		tags executor.Tags
	}{
		{"routes and tags", instanceInfo{routes: routeList("b.apps.internal", "a.apps.internal"), tags: map[string]string{"index": "3", "app": "web"}},
			executor.Tags{TagInternalRoutes: `[{"hostname":"b.apps.internal"},{"hostname":"a.apps.internal"}]`, TagMetricTags: `{"app":"web","index":"3"}`}},
		{"nothing", instanceInfo{}, executor.Tags{TagInternalRoutes: `[]`, TagMetricTags: `{}`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.info.containerTags()
			if !maps.Equal(got, tc.tags) {
				t.Fatalf("tags %v, want %v", got, tc.tags)
			}
			back := containerInstanceInfo(executor.Container{Tags: got})
			if !sameInfo(back, tc.info) {
				t.Fatalf("read back %+v, want %+v", back, tc.info)
			}
		})
	}
}

func TestContainerInstanceInfoFromOddTags(t *testing.T) {
	tests := []struct {
		name string
		tags executor.Tags
		want instanceInfo
	}{
		{"a container run before these tags existed", executor.Tags{TagLifecycle: LifecycleLRP}, instanceInfo{}},
		{"malformed JSON", executor.Tags{TagInternalRoutes: `[{"hostname":`, TagMetricTags: `nope`}, instanceInfo{}},
		{"empty hostnames are dropped", executor.Tags{TagInternalRoutes: `[{"hostname":""},{"hostname":"a"}]`}, instanceInfo{routes: routeList("a")}},
		{"one good, one bad", executor.Tags{TagInternalRoutes: `7`, TagMetricTags: `{"index":"0"}`}, instanceInfo{tags: map[string]string{"index": "0"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := containerInstanceInfo(executor.Container{Tags: tc.tags}); !sameInfo(got, tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestDesiredInstanceInfo(t *testing.T) {
	routes, err := structpb.NewValue([]any{map[string]any{"hostname": "web.apps.internal"}, "junk"})
	if err != nil {
		t.Fatal(err)
	}
	d := &models.DesiredLRP{Routes: map[string]*structpb.Value{models.InternalRouter: routes},
		MetricTags: map[string]*models.MetricTagValue{"index": {Dynamic: models.MetricTagValue_INDEX}, "id": {Dynamic: models.MetricTagValue_INSTANCE_GUID}}}
	info, err := desiredInstanceInfo(d, 2, "ig-2")
	if err == nil {
		t.Fatal("the bad route entry was not reported")
	}
	if want := (instanceInfo{routes: routeList("web.apps.internal"), tags: map[string]string{"index": "2", "id": "ig-2"}}); !sameInfo(info, want) {
		t.Fatalf("info %+v, want %+v", info, want)
	}
}

// An override replaces what the container's tags say until it is dropped,
// or its container is gone at a bulk sync.
func TestOverrides(t *testing.T) {
	o := newOverrides()
	ran := instanceInfo{routes: routeList("old"), tags: map[string]string{"v": "1"}}
	c := executor.Container{Guid: "ig-1", Tags: ran.containerTags()}
	if got := o.info(c); !sameInfo(got, ran) {
		t.Fatalf("without an override: %+v", got)
	}
	updated := instanceInfo{routes: routeList("new"), tags: map[string]string{"v": "2"}}
	o.set("ig-1", updated)
	updated.tags["v"] = "changed after set" // the override keeps its own copy
	if got := o.info(c); !sameInfo(got, instanceInfo{routes: routeList("new"), tags: map[string]string{"v": "2"}}) {
		t.Fatalf("with an override: %+v", got)
	}
	o.set("ig-2", updated)
	o.retain(map[string]bool{"ig-1": true})
	if _, ok := o.get("ig-2"); ok {
		t.Fatal("override of a container gone kept")
	}
	o.drop("ig-1")
	if got := o.info(c); !sameInfo(got, ran) {
		t.Fatalf("after drop: %+v", got)
	}
}

// notUpdatable is Containers that cannot update instances.
type notUpdatable struct{ Containers }

func TestServerUpdateLRPInstance(t *testing.T) {
	c := NewMemoryContainers(&models.CellCapacity{MemoryMb: 1000, DiskMb: 500, Containers: 4})
	s := NewServer(testInfo(), c, quietLogger())
	ctx := context.Background()
	if _, err := s.Perform(ctx, &models.PerformRequest{Lrps: []*models.LRPWork{lrpWork("a", 0, 100)}}); err != nil {
		t.Fatal(err)
	}
	lrps, _, _ := c.Work(ctx)
	guid := lrps[0].InstanceGuid
	req := func(cell, guid string, index int32) *models.UpdateLRPInstanceRequest {
		return &models.UpdateLRPInstanceRequest{ActualLrpKey: &models.ActualLRPKey{ProcessGuid: "a", Index: index, Domain: "apps"},
			ActualLrpInstanceKey:    &models.ActualLRPInstanceKey{InstanceGuid: guid, CellId: cell},
			ActualLrpInternalRoutes: routeList("a.apps.internal"), MetricTags: map[string]string{"index": "0"}}
	}
	tests := []struct {
		name string
		s    *Server
		req  *models.UpdateLRPInstanceRequest
		code codes.Code
	}{
		{"another cell's instance", s, req("cell-2", guid, 0), codes.InvalidArgument},
		{"an instance the cell does not hold", s, req("cell-1", "nope", 0), codes.NotFound},
		{"the wrong index", s, req("cell-1", guid, 1), codes.InvalidArgument},
		{"containers that cannot update", NewServer(testInfo(), notUpdatable{c}, quietLogger()), req("cell-1", guid, 0), codes.Unavailable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.s.UpdateLRPInstance(ctx, tc.req)
			if got := models.ToStatus(err).Code(); got != tc.code {
				t.Fatalf("code %v (%v), want %v", got, err, tc.code)
			}
			if c.LastUpdate(guid) != nil {
				t.Fatal("a refused update was recorded")
			}
		})
	}
	if _, err := s.UpdateLRPInstance(ctx, req("cell-1", guid, 0)); err != nil {
		t.Fatal(err)
	}
	u := c.LastUpdate(guid)
	if u == nil || !models.EqualInternalRoutes(u.ActualLrpInternalRoutes, routeList("a.apps.internal")) || u.MetricTags["index"] != "0" {
		t.Fatalf("recorded %v", u)
	}
	if _, err := s.StopLRPInstance(ctx, &models.StopLRPInstanceRequest{ActualLrpKey: req("", "", 0).ActualLrpKey,
		ActualLrpInstanceKey: &models.ActualLRPInstanceKey{InstanceGuid: guid, CellId: "cell-1"}}); err != nil {
		t.Fatal(err)
	}
	if c.LastUpdate(guid) != nil {
		t.Fatal("a stopped instance keeps its update")
	}
}
