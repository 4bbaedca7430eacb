package models

import (
	"maps"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
)

func hostnames(routes []*ActualLRPInternalRoute) []string {
	out := []string{}
	for _, r := range routes {
		out = append(out, r.GetHostname())
	}
	return out
}

func TestInternalRoutes(t *testing.T) {
	tests := []struct {
		name string
		json string // the internal-router value; "" leaves the key out
		want []string
		// errs are the problems the error must name, in order.
		errs []string
	}{
		{name: "no internal-router key", want: []string{}},
		{name: "null", json: `null`, want: []string{}},
		{name: "empty list", json: `[]`, want: []string{}},
		{name: "hostnames in order", json: `[{"hostname":"b.apps.internal"},{"hostname":"a.apps.internal"}]`,
			want: []string{"b.apps.internal", "a.apps.internal"}},
		{name: "other fields are ignored", json: `[{"hostname":"a.apps.internal","port":8080}]`, want: []string{"a.apps.internal"}},
		{name: "an object, not a list", json: `{"hostname":"a"}`, want: []string{},
			errs: []string{`routes.internal-router: must be a JSON list of {"hostname": ...} objects, got an object`}},
		{name: "a string", json: `"a.apps.internal"`, want: []string{},
			errs: []string{"routes.internal-router: must be a JSON list of {\"hostname\": ...} objects, got a string"}},
		{name: "bad entries cost only themselves",
			json: `[{"hostname":"a"}, "b", {"host":"c"}, {"hostname":7}, {"hostname":""}, null, {"hostname":"d"}]`,
			want: []string{"a", "d"},
			errs: []string{
				"routes.internal-router[1]: must be a JSON object, got a string",
				"routes.internal-router[2].hostname: required",
				"routes.internal-router[3].hostname: must be a non-empty string, got a number",
				"routes.internal-router[4].hostname: must be a non-empty string, got a string",
				"routes.internal-router[5]: must be a JSON object, got null",
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			routes := map[string]*structpb.Value{"cf-router": mustValue(t, []any{})}
			if tc.json != "" {
				v := &structpb.Value{}
				if err := protojson.Unmarshal([]byte(tc.json), v); err != nil {
					t.Fatal(err)
				}
				routes[InternalRouter] = v
			}
			got, err := InternalRoutes(routes)
			if h := hostnames(got); strings.Join(h, ",") != strings.Join(tc.want, ",") {
				t.Errorf("routes = %q, want %q", h, tc.want)
			}
			var gotErrs []string
			if err != nil {
				gotErrs = strings.Split(err.Error(), "\n")
			}
			if strings.Join(gotErrs, "|") != strings.Join(tc.errs, "|") {
				t.Errorf("errors = %q, want %q", gotErrs, tc.errs)
			}
		})
	}
}

// A value with no kind set (possible only in a hand-built message) is
// reported, not dereferenced.
func TestInternalRoutesEmptyValue(t *testing.T) {
	got, err := InternalRoutes(map[string]*structpb.Value{InternalRouter: {}})
	if got != nil || err == nil || !strings.Contains(err.Error(), "got nothing") {
		t.Fatalf("got %v, %v", got, err)
	}
	if got, err := InternalRoutes(map[string]*structpb.Value{InternalRouter: nil}); got != nil || err != nil {
		t.Fatalf("nil value: %v, %v", got, err)
	}
	if got, err := InternalRoutes(nil); got != nil || err != nil {
		t.Fatalf("nil map: %v, %v", got, err)
	}
}

func FuzzInternalRoutes(f *testing.F) {
	for _, s := range []string{`null`, `[]`, `[{"hostname":"a"}]`, `[{"hostname":["a"]}]`, `[[{"hostname":"a"}]]`, `{"a":1}`, `1e308`, `true`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v := &structpb.Value{}
		if protojson.Unmarshal(data, v) != nil {
			return
		}
		routes, _ := InternalRoutes(map[string]*structpb.Value{InternalRouter: v})
		for _, r := range routes {
			if r.GetHostname() == "" {
				t.Fatal("an empty hostname was kept")
			}
		}
		// Whatever comes out passes the BBS's check of a start request.
		req := &StartActualLRPRequest{ActualLrpKey: &ActualLRPKey{ProcessGuid: "p", Domain: "d"},
			ActualLrpInstanceKey: &ActualLRPInstanceKey{InstanceGuid: "i", CellId: "c"},
			ActualLrpNetInfo:     &ActualLRPNetInfo{Address: "127.0.0.1"}, ActualLrpInternalRoutes: routes}
		if err := req.Validate(); err != nil {
			t.Fatalf("routes %v refused: %v", routes, err)
		}
	})
}

func TestResolveMetricTags(t *testing.T) {
	tests := []struct {
		name string
		tags map[string]*MetricTagValue
		want map[string]string
	}{
		{name: "none", tags: nil, want: nil},
		{name: "empty", tags: map[string]*MetricTagValue{}, want: nil},
		{name: "static", tags: map[string]*MetricTagValue{"app": {Static: "web"}}, want: map[string]string{"app": "web"}},
		{name: "index", tags: map[string]*MetricTagValue{"index": {Dynamic: MetricTagValue_INDEX}}, want: map[string]string{"index": "7"}},
		{name: "instance guid", tags: map[string]*MetricTagValue{"id": {Dynamic: MetricTagValue_INSTANCE_GUID}}, want: map[string]string{"id": "ig-1"}},
		{name: "mixed", tags: map[string]*MetricTagValue{
			"app": {Static: "web"}, "index": {Dynamic: MetricTagValue_INDEX}, "id": {Dynamic: MetricTagValue_INSTANCE_GUID},
		}, want: map[string]string{"app": "web", "index": "7", "id": "ig-1"}},
		{name: "neither static nor a known dynamic value is left out", tags: map[string]*MetricTagValue{
			"bad": {}, "worse": {Dynamic: 9}, "nil": nil, "app": {Static: "web"},
		}, want: map[string]string{"app": "web"}},
		{name: "only bad tags resolve to nil", tags: map[string]*MetricTagValue{"bad": {}}, want: nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := ResolveMetricTags(tc.tags, 7, "ig-1")
			if !maps.Equal(got, tc.want) || (got == nil) != (tc.want == nil) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// MetricTagsMatch agrees with resolving and comparing, on every pairing of
// declarations and stored tags below.
func TestMetricTagsMatchAgreesWithResolve(t *testing.T) {
	decls := []map[string]*MetricTagValue{
		nil,
		{},
		{"index": {Dynamic: MetricTagValue_INDEX}},
		{"index": {Dynamic: MetricTagValue_INDEX}, "id": {Dynamic: MetricTagValue_INSTANCE_GUID}},
		{"app": {Static: "web"}, "index": {Dynamic: MetricTagValue_INDEX}},
		{"app": {Static: "web"}, "bad": {}, "worse": {Dynamic: 9}},
		{"bad": {}},
	}
	stored := []map[string]string{
		nil,
		{},
		{"index": "4"},
		{"index": "5"},
		{"index": "4", "id": "ig"},
		{"index": "4", "id": "other"},
		{"app": "web", "index": "4"},
		{"app": "web"},
		{"app": "web", "bad": ""},
		{"id": "ig", "index": "4", "extra": "x"},
	}
	for i, d := range decls {
		for j, s := range stored {
			want := EqualMetricTags(s, ResolveMetricTags(d, 4, "ig"))
			if got := MetricTagsMatch(s, d, 4, "ig"); got != want {
				t.Errorf("declarations %d %v, stored %d %v: match %v, want %v", i, d, j, s, got, want)
			}
		}
	}
}

func BenchmarkMetricTagsMatch(b *testing.B) {
	decl := map[string]*MetricTagValue{"index": {Dynamic: MetricTagValue_INDEX}, "app": {Static: "web"}}
	stored := map[string]string{"index": "42", "app": "web"}
	b.ReportAllocs()
	for b.Loop() {
		if !MetricTagsMatch(stored, decl, 42, "ig") {
			b.Fatal("no match")
		}
	}
}

func internalRouterValue(t testing.TB, hosts ...string) map[string]*structpb.Value {
	t.Helper()
	list := []any{}
	for _, h := range hosts {
		list = append(list, map[string]any{"hostname": h})
	}
	return map[string]*structpb.Value{InternalRouter: mustValue(t, list)}
}

func TestInstanceDrift(t *testing.T) {
	sched := &DesiredLRPSchedulingInfo{
		DesiredLrpKey: &DesiredLRPKey{ProcessGuid: "web", Domain: "apps"},
		Routes:        internalRouterValue(t, "web.apps.internal"),
		MetricTags:    map[string]*MetricTagValue{"index": {Dynamic: MetricTagValue_INDEX}, "id": {Dynamic: MetricTagValue_INSTANCE_GUID}},
	}
	row := func(hosts []string, tags map[string]string) *ActualLRP {
		a := &ActualLRP{ActualLrpKey: &ActualLRPKey{ProcessGuid: "web", Index: 2, Domain: "apps"},
			ActualLrpInstanceKey: &ActualLRPInstanceKey{InstanceGuid: "ig-2", CellId: "cell-1"}, State: ActualLRP_RUNNING, MetricTags: tags}
		for _, h := range hosts {
			a.ActualLrpInternalRoutes = append(a.ActualLrpInternalRoutes, &ActualLRPInternalRoute{Hostname: h})
		}
		return a
	}
	good := map[string]string{"index": "2", "id": "ig-2"}
	tests := []struct {
		name  string
		sched *DesiredLRPSchedulingInfo
		row   *ActualLRP
		want  Drift
	}{
		{"in step", sched, row([]string{"web.apps.internal"}, good), Drift{}},
		{"routes drifted", sched, row([]string{"old.apps.internal"}, good), Drift{InternalRoutes: true}},
		{"routes missing", sched, row(nil, good), Drift{InternalRoutes: true}},
		{"routes in another order", &DesiredLRPSchedulingInfo{Routes: internalRouterValue(t, "a", "b"), MetricTags: sched.MetricTags},
			row([]string{"b", "a"}, good), Drift{InternalRoutes: true}},
		{"tags drifted", sched, row([]string{"web.apps.internal"}, map[string]string{"index": "3", "id": "ig-2"}), Drift{MetricTags: true}},
		{"tags missing", sched, row([]string{"web.apps.internal"}, nil), Drift{MetricTags: true}},
		{"an extra tag", sched, row([]string{"web.apps.internal"}, map[string]string{"index": "2", "id": "ig-2", "x": "y"}), Drift{MetricTags: true}},
		{"both", sched, row(nil, nil), Drift{InternalRoutes: true, MetricTags: true}},
		{"none wanted, none stored (empty and nil agree)", &DesiredLRPSchedulingInfo{Routes: internalRouterValue(t)},
			row([]string{}, map[string]string{}), Drift{}},
		{"malformed desired routes want none", &DesiredLRPSchedulingInfo{Routes: map[string]*structpb.Value{InternalRouter: structpb.NewStringValue("x")}},
			row(nil, nil), Drift{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			routes, _ := tc.sched.InternalRoutes()
			got := InstanceDrift(tc.row, routes, tc.sched.GetMetricTags())
			if got != tc.want || got.Any() != (tc.want != Drift{}) {
				t.Errorf("drift = %+v, want %+v", got, tc.want)
			}
			// The wanted values, stored, are in step.
			tags := tc.sched.InstanceMetricTags(tc.row.Index(), tc.row.InstanceGuid())
			if d := InstanceDrift(row(hostnames(routes), tags), routes, tc.sched.GetMetricTags()); d.Any() {
				t.Errorf("the wanted values still drift: %+v", d)
			}
		})
	}
}

func TestInstanceInfoChanged(t *testing.T) {
	base := func() *DesiredLRPSchedulingInfo {
		return &DesiredLRPSchedulingInfo{
			Instances: 2, Annotation: "a",
			Routes: map[string]*structpb.Value{
				InternalRouter: internalRouterValue(t, "web.apps.internal")[InternalRouter],
				"cf-router":    mustValue(t, []any{map[string]any{"hostnames": []any{"web.example.com"}, "port": 8080}}),
			},
			MetricTags: map[string]*MetricTagValue{"index": {Dynamic: MetricTagValue_INDEX}},
		}
	}
	tests := []struct {
		name   string
		change func(s *DesiredLRPSchedulingInfo)
		want   bool
	}{
		{"nothing", func(*DesiredLRPSchedulingInfo) {}, false},
		{"instances and annotation", func(s *DesiredLRPSchedulingInfo) { s.Instances, s.Annotation = 5, "b" }, false},
		{"cf-router only", func(s *DesiredLRPSchedulingInfo) { s.Routes["cf-router"] = mustValue(t, []any{}) }, false},
		{"internal routes", func(s *DesiredLRPSchedulingInfo) {
			s.Routes[InternalRouter] = internalRouterValue(t, "other.apps.internal")[InternalRouter]
		}, true},
		{"internal routes removed", func(s *DesiredLRPSchedulingInfo) { delete(s.Routes, InternalRouter) }, true},
		{"all routes removed", func(s *DesiredLRPSchedulingInfo) { s.Routes = nil }, true},
		{"metric tag value", func(s *DesiredLRPSchedulingInfo) {
			s.MetricTags["index"] = &MetricTagValue{Dynamic: MetricTagValue_INSTANCE_GUID}
		}, true},
		{"metric tag added", func(s *DesiredLRPSchedulingInfo) { s.MetricTags["app"] = &MetricTagValue{Static: "web"} }, true},
		{"metric tags removed", func(s *DesiredLRPSchedulingInfo) { s.MetricTags = nil }, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			after := base()
			tc.change(after)
			if got := InstanceInfoChanged(base(), after); got != tc.want {
				t.Errorf("changed = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestDesiredLRPInstanceInfo(t *testing.T) {
	d := &DesiredLRP{Routes: internalRouterValue(t, "a.apps.internal"),
		MetricTags: map[string]*MetricTagValue{"index": {Dynamic: MetricTagValue_INDEX}, "app": {Static: "web"}}}
	routes, err := d.InternalRoutes()
	if err != nil || strings.Join(hostnames(routes), ",") != "a.apps.internal" {
		t.Fatalf("routes %v, %v", routes, err)
	}
	if got := d.InstanceMetricTags(3, "ig"); !maps.Equal(got, map[string]string{"index": "3", "app": "web"}) {
		t.Fatalf("tags %v", got)
	}
	// The scheduling info gives the same.
	s := d.SchedulingInfo()
	sr, _ := s.InternalRoutes()
	if !EqualInternalRoutes(sr, routes) || !maps.Equal(s.InstanceMetricTags(3, "ig"), d.InstanceMetricTags(3, "ig")) {
		t.Fatal("scheduling info and desired LRP disagree")
	}
}
