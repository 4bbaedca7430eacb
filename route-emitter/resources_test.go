package routeemitter

import (
	"slices"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/gavel-scheduler/gavel/proto/models"
)

var testResourceOptions = ResourceOptions{HTTPAddress: "127.0.0.1", HTTPPort: 8080, TCPAddress: "127.0.0.1", ConnectTimeout: time.Second}

// sampleTable has HTTP routes (one hostname shared by two LRPs, paths), a
// TCP port shared by two LRPs, an evacuating instance and an LRP without
// routes.
func sampleTable(t *testing.T) *Table {
	t.Helper()
	tbl := NewTable(Options{})
	for _, si := range []*models.DesiredLRPSchedulingInfo{
		schedInfo(t, "web", 2, 1, `{"cf-router": [{"hostnames": ["web.example.com", "shared.example.com", "web.example.com/api"], "port": 8080, "protocol": "http2"}]}`),
		schedInfo(t, "blue", 1, 1, httpRoutes(8080, "shared.example.com")),
		schedInfo(t, "db", 1, 1, `{"tcp-router": [{"external_port": 61500, "container_port": 5432}]}`),
		schedInfo(t, "db2", 1, 1, `{"tcp-router": [{"external_port": 61500, "container_port": 5432}, {"external_port": 61501, "container_port": 5432}]}`),
		schedInfo(t, "worker", 1, 1, ""),
	} {
		tbl.Apply(desiredCreated(si))
	}
	for _, a := range []lrp{
		running("web", 0, "w0", 2, 61000),
		running("web", 1, "w1", 2, 61001).with(func(l *lrp) { l.presence = models.ActualLRP_EVACUATING }),
		running("blue", 0, "b0", 2, 61002),
		running("db", 0, "d0", 2, 61003).with(func(l *lrp) { l.ports = [][2]uint32{{5432, 61003}} }),
		running("db2", 0, "e0", 2, 61004).with(func(l *lrp) { l.ports = [][2]uint32{{5432, 61004}} }),
		running("worker", 0, "k0", 2, 61005),
	} {
		tbl.Apply(created(a.build()))
	}
	return tbl
}

// checkResources runs go-control-plane's snapshot consistency check and
// every resource's own validation.
func checkResources(t *testing.T, r Resources) {
	t.Helper()
	snap, err := r.Snapshot("1")
	if err != nil {
		t.Fatal(err)
	}
	if err := snap.Consistent(); err != nil {
		t.Fatalf("snapshot not consistent: %v", err)
	}
	for name, l := range r.Listeners {
		if err := l.ValidateAll(); err != nil {
			t.Errorf("listener %s: %v", name, err)
		}
	}
	for name, rc := range r.RouteConfigs {
		if err := rc.ValidateAll(); err != nil {
			t.Errorf("route configuration %s: %v", name, err)
		}
	}
	for name, c := range r.Clusters {
		if err := c.ValidateAll(); err != nil {
			t.Errorf("cluster %s: %v", name, err)
		}
	}
	for name, cla := range r.LoadAssignments {
		if err := cla.ValidateAll(); err != nil {
			t.Errorf("load assignment %s: %v", name, err)
		}
	}
}

func TestBuildResources(t *testing.T) {
	tbl := sampleTable(t)
	r := testResourceOptions.Build(tbl)
	checkResources(t, r)

	if diff := cmp.Diff([]string{"blue_8080", "db2_5432", "db_5432", "web_8080"}, sortedNames(r.Clusters)); diff != "" {
		t.Errorf("clusters (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"gavel_http", "gavel_tcp_61500", "gavel_tcp_61501"}, sortedNames(r.Listeners)); diff != "" {
		t.Errorf("listeners (-want +got):\n%s", diff)
	}
	web := r.Clusters["web_8080"]
	if web.GetType() != clusterv3.Cluster_EDS || web.GetEdsClusterConfig().GetServiceName() != "web_8080" ||
		web.GetEdsClusterConfig().GetEdsConfig().GetAds() == nil {
		t.Errorf("web cluster is not EDS over ADS: %v", web)
	}
	if _, ok := web.GetTypedExtensionProtocolOptions()["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]; !ok {
		t.Errorf("web asked for http2 upstreams: %v", web)
	}

	// Endpoints, with the evacuating one DRAINING.
	got := map[string]corev3.HealthStatus{}
	for _, lb := range r.LoadAssignments["web_8080"].GetEndpoints()[0].GetLbEndpoints() {
		sa := lb.GetEndpoint().GetAddress().GetSocketAddress()
		got[sa.GetAddress()+":"+itoa(sa.GetPortValue())] = lb.GetHealthStatus()
	}
	want := map[string]corev3.HealthStatus{"10.0.0.1:61000": corev3.HealthStatus_HEALTHY, "10.0.0.1:61001": corev3.HealthStatus_DRAINING}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("web endpoints (-want +got):\n%s", diff)
	}

	// Virtual hosts: one per hostname; the shared one splits between both
	// LRPs; the longer path comes first.
	rc := r.RouteConfigs[RouteConfigName]
	hosts := map[string]*routev3.VirtualHost{}
	for _, vh := range rc.GetVirtualHosts() {
		hosts[vh.GetName()] = vh
	}
	if len(hosts) != 2 {
		t.Fatalf("virtual hosts %v", rc.GetVirtualHosts())
	}
	shared := hosts["shared.example.com"].GetRoutes()[0].GetRoute().GetWeightedClusters().GetClusters()
	if len(shared) != 2 || shared[0].GetName() != "blue_8080" || shared[1].GetName() != "web_8080" {
		t.Errorf("shared host clusters %v", shared)
	}
	webRoutes := hosts["web.example.com"].GetRoutes()
	if len(webRoutes) != 2 || webRoutes[0].GetMatch().GetPathSeparatedPrefix() != "/api" || webRoutes[1].GetMatch().GetPrefix() != "/" {
		t.Errorf("web routes %v", webRoutes)
	}

	// The TCP port shared by two LRPs splits between them.
	proxy := tcpProxyOf(t, r.Listeners["gavel_tcp_61500"])
	if ws := proxy.GetWeightedClusters().GetClusters(); len(ws) != 2 {
		t.Errorf("tcp 61500 clusters %v", proxy)
	}
	if c := tcpProxyOf(t, r.Listeners["gavel_tcp_61501"]).GetCluster(); c != "db2_5432" {
		t.Errorf("tcp 61501 cluster %q", c)
	}
}

func tcpProxyOf(t *testing.T, l *listenerv3.Listener) *tcpproxyv3.TcpProxy {
	t.Helper()
	var p tcpproxyv3.TcpProxy
	if err := l.GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(&p); err != nil {
		t.Fatal(err)
	}
	return &p
}

func sortedNames[M any](m map[string]M) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func itoa(n uint32) string { return ClusterName(Key{ContainerPort: n})[1:] }

// TestUpdateForTouchesOnlyWhatChanged: endpoint changes are EDS only;
// route changes reach clusters, the route configuration or a listener.
func TestUpdateForTouchesOnlyWhatChanged(t *testing.T) {
	type touched struct{ LDS, RDS, CDS, EDS []string }
	names := func(u Update) touched {
		var tt touched
		tt.LDS = append(sortedNames(u.Set.Listeners), prefixed("-", u.Delete.Listeners)...)
		tt.RDS = append(sortedNames(u.Set.RouteConfigs), prefixed("-", u.Delete.RouteConfigs)...)
		tt.CDS = append(sortedNames(u.Set.Clusters), prefixed("-", u.Delete.Clusters)...)
		tt.EDS = append(sortedNames(u.Set.LoadAssignments), prefixed("-", u.Delete.LoadAssignments)...)
		return tt
	}
	cases := []struct {
		name  string
		event func(t *testing.T) *models.LRPEvent
		want  touched
	}{
		{
			name:  "instance starts",
			event: func(*testing.T) *models.LRPEvent { return created(running("blue", 1, "b1", 2, 61010).build()) },
			want:  touched{EDS: []string{"blue_8080"}},
		},
		{
			name:  "instance crashes",
			event: func(*testing.T) *models.LRPEvent { return removed(running("web", 0, "w0", 2, 61000).build()) },
			want:  touched{EDS: []string{"web_8080"}},
		},
		{
			name: "scale down",
			event: func(t *testing.T) *models.LRPEvent {
				return desiredChanged(nil, schedInfo(t, "web", 1, 2, `{"cf-router": [{"hostnames": ["web.example.com", "shared.example.com", "web.example.com/api"], "port": 8080, "protocol": "http2"}]}`))
			},
			want: touched{EDS: []string{"web_8080"}},
		},
		{
			name: "hostname added",
			event: func(t *testing.T) *models.LRPEvent {
				return desiredChanged(nil, schedInfo(t, "blue", 1, 2, httpRoutes(8080, "shared.example.com", "blue.example.com")))
			},
			want: touched{RDS: []string{RouteConfigName}, EDS: []string{"blue_8080"}},
		},
		{
			name: "routes added to an LRP without any",
			event: func(t *testing.T) *models.LRPEvent {
				return desiredChanged(nil, schedInfo(t, "worker", 1, 2, httpRoutes(8080, "worker.example.com")))
			},
			want: touched{RDS: []string{RouteConfigName}, CDS: []string{"worker_8080"}, EDS: []string{"worker_8080"}},
		},
		{
			name:  "LRP removed",
			event: func(t *testing.T) *models.LRPEvent { return desiredRemoved(schedInfo(t, "db", 1, 1, "")) },
			want:  touched{LDS: []string{"gavel_tcp_61500"}, CDS: []string{"-db_5432"}, EDS: []string{"-db_5432"}},
		},
		{
			name: "last LRP leaves a TCP port",
			event: func(t *testing.T) *models.LRPEvent {
				return desiredChanged(nil, schedInfo(t, "db2", 1, 2, `{"tcp-router": [{"external_port": 61500, "container_port": 5432}]}`))
			},
			want: touched{LDS: []string{"-gavel_tcp_61501"}, EDS: []string{"db2_5432"}},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tbl := sampleTable(t)
			d := tbl.Apply(c.event(t))
			u := testResourceOptions.UpdateFor(tbl, d)
			if diff := cmp.Diff(c.want, names(u)); diff != "" {
				t.Errorf("touched (-want +got):\n%s", diff)
			}
			// Applying the update to the old resources gives what a full
			// build of the new table gives.
			before := testResourceOptions.Build(sampleTable(t))
			after := applyUpdate(before, u)
			full := testResourceOptions.Build(tbl)
			if diff := cmp.Diff(full, after, protoCmp()); diff != "" {
				t.Errorf("incremental differs from full build (-full +incremental):\n%s", diff)
			}
			checkResources(t, after)
		})
	}
}

func prefixed(p string, names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = p + n
	}
	return out
}

func applyUpdate(r Resources, u Update) Resources {
	for k, v := range u.Set.Listeners {
		r.Listeners[k] = v
	}
	for k, v := range u.Set.RouteConfigs {
		r.RouteConfigs[k] = v
	}
	for k, v := range u.Set.Clusters {
		r.Clusters[k] = v
	}
	for k, v := range u.Set.LoadAssignments {
		r.LoadAssignments[k] = v
	}
	for _, k := range u.Delete.Listeners {
		delete(r.Listeners, k)
	}
	for _, k := range u.Delete.RouteConfigs {
		delete(r.RouteConfigs, k)
	}
	for _, k := range u.Delete.Clusters {
		delete(r.Clusters, k)
	}
	for _, k := range u.Delete.LoadAssignments {
		delete(r.LoadAssignments, k)
	}
	return r
}

// TestEmptyTableResources: with nothing routed, Envoy still gets a valid,
// consistent HTTP listener with an empty route configuration.
func TestEmptyTableResources(t *testing.T) {
	r := testResourceOptions.Build(NewTable(Options{}))
	checkResources(t, r)
	if len(r.Listeners) != 1 || len(r.RouteConfigs) != 1 || len(r.Clusters) != 0 {
		t.Fatalf("resources of an empty table: %v", r)
	}
	noHTTP := testResourceOptions
	noHTTP.HTTPPort = 0
	if r := noHTTP.Build(NewTable(Options{})); r.Len() != 0 {
		t.Fatalf("http disabled still built %v", r)
	}
}

func protoCmp() cmp.Option { return protocmp.Transform() }
