package routeemitter

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/gavel-scheduler/gavel/proto/models"
)

// view renders what a table serves: per key its routes and routable
// endpoints, as short strings.
func view(t *Table) map[string]string {
	out := map[string]string{}
	for _, e := range t.Entries() {
		var parts []string
		for _, r := range e.Routes.HTTP {
			parts = append(parts, r.String())
		}
		for _, r := range e.Routes.TCP {
			parts = append(parts, fmt.Sprintf("tcp:%d", r.ExternalPort))
		}
		parts = append(parts, "->")
		for _, ep := range e.Routable() {
			s := fmt.Sprintf("%s@%s:%d", ep.InstanceGUID, ep.Address, ep.Port)
			if ep.Evacuating() {
				s += "(evac)"
			}
			parts = append(parts, s)
		}
		out[fmt.Sprintf("%s:%d", e.ProcessGUID, e.ContainerPort)] = strings.Join(parts, " ")
	}
	return out
}

// diffView renders a Diff as key → "routes" or "endpoints" (what changed).
func diffView(d Diff) map[string]string {
	out := map[string]string{}
	for _, c := range d {
		kind := "endpoints"
		if c.RoutesChanged() {
			kind = "routes"
		}
		out[fmt.Sprintf("%s:%d", c.ProcessGUID, c.ContainerPort)] = kind
	}
	return out
}

func TestTableEvents(t *testing.T) {
	web := schedInfo(t, "web", 3, 1, httpRoutes(8080, "web.example.com"))
	r0 := running("web", 0, "i0", 2, 61000)
	r1 := running("web", 1, "i1", 2, 61001)
	claimed1 := lrp{guid: "web", index: 1, state: models.ActualLRP_CLAIMED, instance: "i1", cell: "cell-1", tag: 1}
	unclaimed1 := lrp{guid: "web", index: 1, state: models.ActualLRP_UNCLAIMED, tag: 0}
	base := []*models.LRPEvent{desiredCreated(web), created(r0.build())}

	cases := []struct {
		name  string
		setup []*models.LRPEvent
		event *models.LRPEvent
		want  map[string]string
		diff  map[string]string
	}{
		{
			name:  "desired created: routes, no endpoints yet",
			event: desiredCreated(web),
			want:  map[string]string{"web:8080": "web.example.com ->"},
			diff:  map[string]string{"web:8080": "routes"},
		},
		{
			name:  "actual created RUNNING: an endpoint",
			setup: []*models.LRPEvent{desiredCreated(web)},
			event: created(r0.build()),
			want:  map[string]string{"web:8080": "web.example.com -> i0@10.0.0.1:61000"},
			diff:  map[string]string{"web:8080": "endpoints"},
		},
		{
			name:  "actual created UNCLAIMED: nothing",
			setup: base,
			event: created(unclaimed1.build()),
			want:  map[string]string{"web:8080": "web.example.com -> i0@10.0.0.1:61000"},
			diff:  map[string]string{},
		},
		{
			name:  "actual changed CLAIMED to RUNNING: an endpoint",
			setup: append(base, created(claimed1.build())),
			event: changed(claimed1.build(), r1.build()),
			want:  map[string]string{"web:8080": "web.example.com -> i0@10.0.0.1:61000 i1@10.0.0.1:61001"},
			diff:  map[string]string{"web:8080": "endpoints"},
		},
		{
			name:  "actual changed RUNNING to CRASHED: gone",
			setup: append(base, created(r1.build())),
			event: changed(r1.build(), r1.with(func(l *lrp) { l.state, l.tag = models.ActualLRP_CRASHED, 3 }).build()),
			want:  map[string]string{"web:8080": "web.example.com -> i0@10.0.0.1:61000"},
			diff:  map[string]string{"web:8080": "endpoints"},
		},
		{
			name:  "actual changed to not routable (readiness failed): gone",
			setup: append(base, created(r1.build())),
			event: changed(r1.build(), r1.with(func(l *lrp) { l.routable, l.tag = boolp(false), 3 }).build()),
			want:  map[string]string{"web:8080": "web.example.com -> i0@10.0.0.1:61000"},
			diff:  map[string]string{"web:8080": "endpoints"},
		},
		{
			name:  "actual RUNNING but not yet routable: no endpoint",
			setup: base,
			event: created(r1.with(func(l *lrp) { l.routable = boolp(false) }).build()),
			want:  map[string]string{"web:8080": "web.example.com -> i0@10.0.0.1:61000"},
			diff:  map[string]string{},
		},
		{
			name:  "actual changed RUNNING with a new host port: endpoint moves",
			setup: base,
			event: changed(r0.build(), r0.with(func(l *lrp) { l.tag, l.ports = 3, [][2]uint32{{8080, 62000}} }).build()),
			want:  map[string]string{"web:8080": "web.example.com -> i0@10.0.0.1:62000"},
			diff:  map[string]string{"web:8080": "endpoints"},
		},
		{
			name:  "actual removed: gone, the entry stays for its routes",
			setup: base,
			event: removed(r0.build()),
			want:  map[string]string{"web:8080": "web.example.com ->"},
			diff:  map[string]string{"web:8080": "endpoints"},
		},
		{
			name:  "evacuating copy created beside its ordinary row: both ids coexist",
			setup: base,
			event: created(r0.with(func(l *lrp) { l.presence, l.cell = models.ActualLRP_EVACUATING, "cell-1" }).build()),
			want:  map[string]string{"web:8080": "web.example.com -> i0@10.0.0.1:61000 i0@10.0.0.1:61000(evac)"},
			diff:  map[string]string{"web:8080": "endpoints"},
		},
		{
			name:  "ordinary row unclaimed after evacuation: the evacuating copy still routes",
			setup: append(base, created(r0.with(func(l *lrp) { l.presence = models.ActualLRP_EVACUATING }).build())),
			event: removed(r0.build()),
			want:  map[string]string{"web:8080": "web.example.com -> i0@10.0.0.1:61000(evac)"},
			diff:  map[string]string{"web:8080": "endpoints"},
		},
		{
			name: "replacement running, evacuating row removed: only the replacement",
			setup: []*models.LRPEvent{desiredCreated(web),
				created(r0.with(func(l *lrp) { l.presence = models.ActualLRP_EVACUATING }).build()),
				created(running("web", 0, "i9", 2, 61009).build())},
			event: removed(r0.with(func(l *lrp) { l.presence = models.ActualLRP_EVACUATING }).build()),
			want:  map[string]string{"web:8080": "web.example.com -> i9@10.0.0.1:61009"},
			diff:  map[string]string{"web:8080": "endpoints"},
		},
		{
			name:  "stale change (older tag) does not roll an endpoint back",
			setup: append(base, changed(r0.build(), r0.with(func(l *lrp) { l.tag, l.ports = 5, [][2]uint32{{8080, 62000}} }).build())),
			event: changed(r0.build(), r0.with(func(l *lrp) { l.tag = 4 }).build()),
			want:  map[string]string{"web:8080": "web.example.com -> i0@10.0.0.1:62000"},
			diff:  map[string]string{},
		},
		{
			name:  "stale RUNNING event after a crash does not resurrect the endpoint",
			setup: append(base, changed(r0.build(), r0.with(func(l *lrp) { l.state, l.tag = models.ActualLRP_CRASHED, 3 }).build())),
			event: created(r0.build()),
			want:  map[string]string{"web:8080": "web.example.com ->"},
			diff:  map[string]string{},
		},
		{
			name:  "stale removal (older tag) keeps the newer endpoint",
			setup: append(base, changed(r0.build(), r0.with(func(l *lrp) { l.tag = 5 }).build())),
			event: removed(r0.with(func(l *lrp) { l.tag = 4 }).build()),
			want:  map[string]string{"web:8080": "web.example.com -> i0@10.0.0.1:61000"},
			diff:  map[string]string{},
		},
		{
			name:  "desired changed hostnames: routes only",
			setup: base,
			event: desiredChanged(web, schedInfo(t, "web", 3, 2, httpRoutes(8080, "web.example.com", "www.example.com/shop"))),
			want:  map[string]string{"web:8080": "web.example.com www.example.com/shop -> i0@10.0.0.1:61000"},
			diff:  map[string]string{"web:8080": "routes"},
		},
		{
			name:  "desired changed port: old entry keeps its endpoint without routes",
			setup: base,
			event: desiredChanged(web, schedInfo(t, "web", 3, 2, httpRoutes(9090, "web.example.com"))),
			want:  map[string]string{"web:8080": "-> i0@10.0.0.1:61000", "web:9090": "web.example.com ->"},
			diff:  map[string]string{"web:8080": "routes", "web:9090": "routes"},
		},
		{
			name:  "desired scaled down: instances above the count stop routing",
			setup: append(base, created(r1.build())),
			event: desiredChanged(web, schedInfo(t, "web", 1, 2, httpRoutes(8080, "web.example.com"))),
			want:  map[string]string{"web:8080": "web.example.com -> i0@10.0.0.1:61000"},
			diff:  map[string]string{"web:8080": "endpoints"},
		},
		{
			name:  "stale desired change (older tag) is ignored",
			setup: append(base, desiredChanged(web, schedInfo(t, "web", 3, 5, httpRoutes(8080, "new.example.com")))),
			event: desiredChanged(web, schedInfo(t, "web", 3, 4, httpRoutes(8080, "old.example.com"))),
			want:  map[string]string{"web:8080": "new.example.com -> i0@10.0.0.1:61000"},
			diff:  map[string]string{},
		},
		{
			name:  "desired removed: routes go, the endpoint waits for its own removal",
			setup: base,
			event: desiredRemoved(web),
			want:  map[string]string{"web:8080": "-> i0@10.0.0.1:61000"},
			diff:  map[string]string{"web:8080": "routes"},
		},
		{
			name:  "desired removed with no instances: the entry goes",
			setup: []*models.LRPEvent{desiredCreated(web)},
			event: desiredRemoved(web),
			want:  map[string]string{},
			diff:  map[string]string{"web:8080": "routes"},
		},
		{
			name:  "tcp route: its own key and external port",
			event: desiredCreated(schedInfo(t, "db", 1, 1, `{"tcp-router": [{"router_group_guid": "rg", "external_port": 61500, "container_port": 5432}]}`)),
			want:  map[string]string{"db:5432": "tcp:61500 ->"},
			diff:  map[string]string{"db:5432": "routes"},
		},
		{
			name:  "crash event alone changes nothing",
			setup: base,
			event: &models.LRPEvent{Event: &models.LRPEvent_ActualLrpCrashed{ActualLrpCrashed: &models.ActualLRPCrashedEvent{
				ActualLrpKey: &models.ActualLRPKey{ProcessGuid: "web"}, CrashCount: 1}}},
			want: map[string]string{"web:8080": "web.example.com -> i0@10.0.0.1:61000"},
			diff: map[string]string{},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tbl := NewTable(Options{})
			for _, ev := range c.setup {
				tbl.Apply(ev)
			}
			d := tbl.Apply(c.event)
			if diff := cmp.Diff(c.want, view(tbl)); diff != "" {
				t.Errorf("table (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(c.diff, diffView(d)); diff != "" {
				t.Errorf("diff (-want +got):\n%s", diff)
			}
			checkCounts(t, tbl)
		})
	}
}

// checkCounts verifies the running totals against a recount.
func checkCounts(t *testing.T, tbl *Table) {
	t.Helper()
	var routes, endpoints int
	for _, e := range tbl.Entries() {
		if e.HasRoutes() {
			routes += len(e.Routes.HTTP) + len(e.Routes.TCP)
			endpoints += len(e.Routable())
		}
	}
	if r, n := tbl.Counts(); r != routes || n != endpoints {
		t.Errorf("counts %d routes %d endpoints, recount %d %d", r, n, routes, endpoints)
	}
}

func TestTableLocalModeKeepsOnlyItsCell(t *testing.T) {
	tbl := NewTable(Options{CellID: "cell-1"})
	other := schedInfo(t, "other", 1, 1, httpRoutes(8080, "other.example.com"))
	// A desired LRP with nothing on this cell is not followed.
	if d := tbl.Apply(desiredCreated(other)); d != nil || tbl.Knows("other") {
		t.Fatalf("local table followed a process it runs nothing of: %v", d)
	}
	web := schedInfo(t, "web", 2, 1, httpRoutes(8080, "web.example.com"))
	tbl.SetDesired(DesiredFrom(web)) // as a fetch on the first local instance does
	here := running("web", 0, "i0", 2, 61000)
	there := running("web", 1, "i1", 2, 61001).with(func(l *lrp) { l.cell = "cell-2" })
	tbl.Apply(created(here.build()))
	tbl.Apply(created(there.build()))
	want := map[string]string{"web:8080": "web.example.com -> i0@10.0.0.1:61000"}
	if diff := cmp.Diff(want, view(tbl)); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
	// Desired changes of a followed process apply.
	tbl.Apply(desiredChanged(web, schedInfo(t, "web", 2, 2, httpRoutes(8080, "web2.example.com"))))
	if got := view(tbl)["web:8080"]; got != "web2.example.com -> i0@10.0.0.1:61000" {
		t.Fatalf("after desired change: %q", got)
	}
}

func TestTableAddressChoice(t *testing.T) {
	inst := running("web", 0, "i0", 2, 61000)
	cases := []struct {
		name      string
		direct    bool
		preferred models.ActualLRPNetInfo_PreferredAddress
		want      string
	}{
		{"host by default", false, models.ActualLRPNetInfo_UNKNOWN, "10.0.0.1:61000"},
		{"direct when configured", true, models.ActualLRPNetInfo_UNKNOWN, "172.16.0.9:8080"},
		{"instance preferred", false, models.ActualLRPNetInfo_INSTANCE, "172.16.0.9:8080"},
		{"host preferred beats config", true, models.ActualLRPNetInfo_HOST, "10.0.0.1:61000"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tbl := NewTable(Options{DirectInstanceRoutes: c.direct})
			tbl.SetDesired(DesiredFrom(schedInfo(t, "web", 1, 1, httpRoutes(8080, "web.example.com"))))
			a := inst.build()
			a.ActualLrpNetInfo.PreferredAddress = c.preferred
			tbl.Apply(created(a))
			eps := tbl.Entry(Key{"web", 8080}).Routable()
			if len(eps) != 1 || fmt.Sprintf("%s:%d", eps[0].Address, eps[0].Port) != c.want {
				t.Fatalf("endpoints %+v, want %s", eps, c.want)
			}
		})
	}
}

func TestTableMultiplePortsOneInstance(t *testing.T) {
	tbl := NewTable(Options{})
	tbl.SetDesired(DesiredFrom(schedInfo(t, "app", 1, 1,
		`{"cf-router": [{"hostnames": ["app.example.com"], "port": 8080}], "tcp-router": [{"external_port": 62000, "container_port": 2222}]}`)))
	a := running("app", 0, "i0", 2, 61000).with(func(l *lrp) { l.ports = [][2]uint32{{8080, 61000}, {2222, 61001}} })
	d := tbl.Apply(created(a.build()))
	want := map[string]string{
		"app:8080": "app.example.com -> i0@10.0.0.1:61000",
		"app:2222": "tcp:62000 -> i0@10.0.0.1:61001",
	}
	if diff := cmp.Diff(want, view(tbl)); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
	if len(d) != 2 {
		t.Fatalf("diff %v, want both ports", diffView(d))
	}
	tbl.Apply(removed(a.build()))
	if got := view(tbl); got["app:8080"] != "app.example.com ->" || got["app:2222"] != "tcp:62000 ->" {
		t.Fatalf("after removal %v", got)
	}
}

func TestBadRoutesCostOnlyThemselves(t *testing.T) {
	tbl := NewTable(Options{})
	good := schedInfo(t, "good", 1, 1, httpRoutes(8080, "good.example.com"))
	bad := schedInfo(t, "bad", 1, 1, `{"cf-router": [{"hostnames": ["ok.example.com", "not a host!"], "port": 8080}, {"hostnames": ["x.example.com"], "port": 0}, "junk"]}`)
	worse := schedInfo(t, "worse", 1, 1, `{"cf-router": "not a list", "tcp-router": [{"external_port": "61000", "container_port": 80}]}`)
	for _, si := range []*models.DesiredLRPSchedulingInfo{good, bad, worse} {
		tbl.Apply(desiredCreated(si))
	}
	want := map[string]string{"good:8080": "good.example.com ->", "bad:8080": "ok.example.com ->"}
	if diff := cmp.Diff(want, view(tbl)); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
	var fields []string
	for _, e := range tbl.Desired("bad").Errors {
		fields = append(fields, e.Field)
	}
	for _, e := range tbl.Desired("worse").Errors {
		fields = append(fields, e.Field)
	}
	wantFields := []string{"routes.cf-router[0].hostnames[1]", "routes.cf-router[1].port", "routes.cf-router[2]",
		"routes.cf-router", "routes.tcp-router[0].external_port"}
	if diff := cmp.Diff(wantFields, fields); diff != "" {
		t.Fatalf("error fields (-want +got):\n%s", diff)
	}
	if msg := tbl.Desired("bad").Errors[0].Error(); !strings.Contains(msg, "routes.cf-router[0].hostnames[1]") || !strings.Contains(msg, "not a host!") {
		t.Fatalf("error text %q does not name the field and value", msg)
	}
}

func TestParseRoutes(t *testing.T) {
	cases := []struct {
		name   string
		routes string
		want   map[uint32]PortRoutes
		errs   []string
	}{
		{
			name:   "hosts, paths, case and duplicates",
			routes: `{"cf-router": [{"hostnames": ["A.example.com", "a.example.com", "a.example.com/api/", "*.apps.example.com"], "port": 8080}]}`,
			want: map[uint32]PortRoutes{8080: {HTTP: []HTTPRoute{
				{Hostname: "*.apps.example.com"}, {Hostname: "a.example.com"}, {Hostname: "a.example.com", Path: "/api"}}}},
		},
		{
			name:   "protocol and load balancing",
			routes: `{"cf-router": [{"hostnames": ["g.example.com"], "port": 8080, "protocol": "http2", "options": {"loadbalancing": "least-connection"}}]}`,
			want:   map[uint32]PortRoutes{8080: {HTTP: []HTTPRoute{{Hostname: "g.example.com"}}, Options: ClusterOptions{HTTP2: true, LeastRequest: true}}},
		},
		{
			name: "conflicting options on one port keep the first",
			routes: `{"cf-router": [{"hostnames": ["a.example.com"], "port": 8080, "protocol": "http2"},
				{"hostnames": ["b.example.com"], "port": 8080}]}`,
			want: map[uint32]PortRoutes{8080: {HTTP: []HTTPRoute{{Hostname: "a.example.com"}, {Hostname: "b.example.com"}}, Options: ClusterOptions{HTTP2: true}}},
			errs: []string{"routes.cf-router[1]"},
		},
		{
			name:   "bad values name their fields",
			routes: `{"cf-router": [{"hostnames": ["a.example.com"], "port": 8080.5}, {"port": 80}, {"hostnames": [7], "port": 80}, {"hostnames": ["-a.com", "a..b", "a.com/x y"], "port": 80}, {"hostnames": ["c.example.com"], "port": 80, "protocol": "spdy"}]}`,
			want:   map[uint32]PortRoutes{80: {HTTP: []HTTPRoute{{Hostname: "c.example.com"}}}},
			errs: []string{"routes.cf-router[0].port", "routes.cf-router[1].hostnames", "routes.cf-router[2].hostnames[0]",
				"routes.cf-router[3].hostnames[0]", "routes.cf-router[3].hostnames[1]", "routes.cf-router[3].hostnames[2]", "routes.cf-router[4].protocol"},
		},
		{
			name:   "tcp routes",
			routes: `{"tcp-router": [{"router_group_guid": "rg", "external_port": 61001, "container_port": 22}, {"external_port": 61000, "container_port": 22}, {"external_port": 70000, "container_port": 22}]}`,
			want:   map[uint32]PortRoutes{22: {TCP: []TCPRoute{{ExternalPort: 61000}, {RouterGroupGUID: "rg", ExternalPort: 61001}}}},
			errs:   []string{"routes.tcp-router[2].external_port"},
		},
		{
			name:   "other routers are not ours",
			routes: `{"internal-router": [{"hostname": "x.apps.internal"}]}`,
			want:   map[uint32]PortRoutes{},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, errs := ParseRoutes(routesJSON(t, c.routes))
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("routes (-want +got):\n%s", diff)
			}
			var fields []string
			for _, e := range errs {
				fields = append(fields, e.Field)
			}
			if diff := cmp.Diff(c.errs, fields); diff != "" {
				t.Errorf("errors (-want +got):\n%s\n%v", diff, errs)
			}
		})
	}
}

func TestFullSyncDiffAndRetainStale(t *testing.T) {
	web := schedInfo(t, "web", 2, 1, httpRoutes(8080, "web.example.com"))
	api := schedInfo(t, "api", 1, 1, httpRoutes(8080, "api.example.com"))
	api.DesiredLrpKey.Domain = "stale-domain"
	old := BuildTable(Options{}, []*models.DesiredLRPSchedulingInfo{web, api}, []*models.ActualLRP{
		running("web", 0, "i0", 2, 61000).build(), running("web", 1, "i1", 2, 61001).build(), running("api", 0, "a0", 2, 61100).build()})

	// The next listing lost web/1 and all of api; web/0 moved.
	fresh := BuildTable(Options{}, []*models.DesiredLRPSchedulingInfo{web}, []*models.ActualLRP{
		running("web", 0, "i0", 3, 62000).build()})
	d := DiffTables(old, fresh)
	if diff := cmp.Diff(map[string]string{"web:8080": "endpoints", "api:8080": "routes"}, diffView(d)); diff != "" {
		t.Fatalf("diff (-want +got):\n%s", diff)
	}
	// With api's domain not fresh, a sync keeps what it had.
	fresh.RetainStale(old, map[string]bool{"apps": true})
	want := map[string]string{"web:8080": "web.example.com -> i0@10.0.0.1:62000", "api:8080": "api.example.com -> a0@10.0.0.1:61100"}
	if diff := cmp.Diff(want, view(fresh)); diff != "" {
		t.Fatalf("retained (-want +got):\n%s", diff)
	}
	checkCounts(t, fresh)
	if DiffTables(fresh, fresh) != nil {
		t.Fatal("a table differs from itself")
	}
}

// TestBuildTableMatchesApplyingEachInstance: the sync's bulk build gives
// exactly the table that applying every instance in turn gives, in global
// and local mode, with evacuating copies, stale duplicates and instances
// that are not routable.
func TestBuildTableMatchesApplyingEachInstance(t *testing.T) {
	routes := func(hosts ...string) map[string]*structpb.Value {
		var list []any
		for _, h := range hosts {
			list = append(list, map[string]any{"hostnames": []any{h}, "port": 8080})
		}
		v, _ := structpb.NewValue(list)
		return map[string]*structpb.Value{"cf-router": v}
	}
	desired := []*models.DesiredLRPSchedulingInfo{
		{DesiredLrpKey: &models.DesiredLRPKey{ProcessGuid: "web", Domain: "apps"}, Instances: 3, Routes: routes("web.example.com")},
		{DesiredLrpKey: &models.DesiredLRPKey{ProcessGuid: "api", Domain: "apps"}, Instances: 2, Routes: routes("api.example.com", "v2.example.com")},
	}
	running := func(guid string, index int32, instance, cell string, port uint32, presence models.ActualLRP_Presence, tag uint32) *models.ActualLRP {
		return &models.ActualLRP{
			ActualLrpKey:         &models.ActualLRPKey{ProcessGuid: guid, Index: index, Domain: "apps"},
			ActualLrpInstanceKey: &models.ActualLRPInstanceKey{InstanceGuid: instance, CellId: cell},
			ActualLrpNetInfo: &models.ActualLRPNetInfo{Address: "10.0.0.1", InstanceAddress: "10.255.0.2",
				Ports: []*models.PortMapping{{ContainerPort: 8080, HostPort: port}}},
			State: models.ActualLRP_RUNNING, Presence: presence,
			ModificationTag: &models.ModificationTag{Epoch: "e-" + instance, Index: tag},
		}
	}
	notRoutable := running("web", 2, "w2", "cell-2", 61003, models.ActualLRP_ORDINARY, 1)
	notRoutable.Routable = proto.Bool(false)
	actuals := []*models.ActualLRP{
		running("web", 0, "w0", "cell-1", 61000, models.ActualLRP_ORDINARY, 1),
		running("web", 1, "w1", "cell-2", 61001, models.ActualLRP_ORDINARY, 1),
		running("web", 1, "w1-old", "cell-1", 61002, models.ActualLRP_EVACUATING, 4),
		notRoutable,
		running("api", 0, "a0", "cell-1", 62000, models.ActualLRP_ORDINARY, 2),
		running("api", 0, "a0", "cell-1", 62009, models.ActualLRP_ORDINARY, 1), // stale copy of a0
		running("orphan", 0, "o0", "cell-2", 63000, models.ActualLRP_ORDINARY, 1),
		{ActualLrpKey: &models.ActualLRPKey{ProcessGuid: "web", Index: 2, Domain: "apps"}, State: models.ActualLRP_UNCLAIMED},
	}
	for _, opts := range []Options{{}, {CellID: "cell-1"}, {CellID: "cell-2"}, {DirectInstanceRoutes: true}} {
		built := BuildTable(opts, desired, actuals)
		applied := NewTable(opts)
		for _, si := range desired {
			applied.SetDesired(DesiredFrom(si))
		}
		for _, a := range actuals {
			applied.ApplyActual(nil, a)
		}
		if diff := cmp.Diff(applied.entries, built.entries); diff != "" {
			t.Fatalf("%+v: built table differs (-applied +built):\n%s", opts, diff)
		}
		br, be := built.Counts()
		ar, ae := applied.Counts()
		if br != ar || be != ae || built.Len() != applied.Len() {
			t.Fatalf("%+v: counts %d/%d (%d entries), want %d/%d (%d)", opts, br, be, built.Len(), ar, ae, applied.Len())
		}
		// w0, w1, w1's evacuating copy and a0 (once, at its newest) are
		// routed; the orphan has no routes, w2 is not routable.
		if opts.CellID == "" && be != 4 {
			t.Fatalf("%+v: %d routed endpoints, want 4", opts, be)
		}
	}
}
