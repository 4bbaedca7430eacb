package routeemitter

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Names of the fixed resources.
const (
	// HTTPListenerName is the one HTTP listener; its virtual hosts come
	// over RDS in the route configuration of the same name.
	HTTPListenerName = "gavel_http"
	// RouteConfigName is the HTTP listener's route configuration.
	RouteConfigName = "gavel_http"
	// tcpListenerPrefix + external port names each TCP listener.
	tcpListenerPrefix = "gavel_tcp_"
	// MetadataNamespace holds each endpoint's instance guid, index and cell.
	MetadataNamespace = "gavel"
)

// ClusterName is the cluster (and load assignment) of a key.
func ClusterName(k Key) string {
	return k.ProcessGUID + "_" + strconv.FormatUint(uint64(k.ContainerPort), 10)
}

// TCPListenerName is the listener of a TCP route's external port.
func TCPListenerName(port uint32) string {
	return tcpListenerPrefix + strconv.FormatUint(uint64(port), 10)
}

// ResourceOptions say where Envoy listens and how it reaches instances.
type ResourceOptions struct {
	// HTTPAddress and HTTPPort are the HTTP listener's socket; port 0
	// serves no HTTP listener (and no route configuration).
	HTTPAddress string
	HTTPPort    uint32
	// TCPAddress is where the TCP listeners bind, each on its route's
	// external port.
	TCPAddress string
	// ConnectTimeout bounds a connection to an instance.
	ConnectTimeout time.Duration
}

// Resources is a complete set of xDS resources by name.
type Resources struct {
	Listeners       map[string]*listenerv3.Listener
	RouteConfigs    map[string]*routev3.RouteConfiguration
	Clusters        map[string]*clusterv3.Cluster
	LoadAssignments map[string]*endpointv3.ClusterLoadAssignment
}

func newResources() Resources {
	return Resources{
		Listeners:       map[string]*listenerv3.Listener{},
		RouteConfigs:    map[string]*routev3.RouteConfiguration{},
		Clusters:        map[string]*clusterv3.Cluster{},
		LoadAssignments: map[string]*endpointv3.ClusterLoadAssignment{},
	}
}

// Len is the number of resources of every type.
func (r Resources) Len() int {
	return len(r.Listeners) + len(r.RouteConfigs) + len(r.Clusters) + len(r.LoadAssignments)
}

// Snapshot packs the resources into a go-control-plane snapshot, the form
// its consistency check works on.
func (r Resources) Snapshot(version string) (*cache.Snapshot, error) {
	return cache.NewSnapshot(version, map[resource.Type][]types.Resource{
		resource.ListenerType: values(r.Listeners),
		resource.RouteType:    values(r.RouteConfigs),
		resource.ClusterType:  values(r.Clusters),
		resource.EndpointType: values(r.LoadAssignments),
	})
}

func values[M proto.Message](m map[string]M) []types.Resource {
	out := make([]types.Resource, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, m[k])
	}
	return out
}

// Build turns a whole table into resources: a cluster and a load
// assignment per entry with routes, the HTTP listener and its route
// configuration, and a listener per TCP external port.
func (o ResourceOptions) Build(t *Table) Resources {
	r := newResources()
	for _, e := range t.Entries() {
		if !e.HasRoutes() {
			continue
		}
		name := ClusterName(e.Key)
		r.Clusters[name] = o.Cluster(e)
		r.LoadAssignments[name] = o.LoadAssignment(e)
	}
	if o.HTTPPort != 0 {
		r.Listeners[HTTPListenerName] = o.HTTPListener()
		r.RouteConfigs[RouteConfigName] = o.RouteConfiguration(t.HTTPEntries())
	}
	for port := range t.tcp {
		if l := o.TCPListener(port, t.TCPEntries(port)); l != nil {
			r.Listeners[l.Name] = l
		}
	}
	return r
}

// Update is what a table change does to the resources: resources to set
// (added or changed) and names to delete, by type.
type Update struct {
	Set    Resources
	Delete Deletions
}

// Deletions are resource names to remove, by type.
type Deletions struct {
	Listeners, RouteConfigs, Clusters, LoadAssignments []string
}

// Empty reports whether the update changes nothing.
func (u Update) Empty() bool {
	d := u.Delete
	return u.Set.Len() == 0 && len(d.Listeners)+len(d.RouteConfigs)+len(d.Clusters)+len(d.LoadAssignments) == 0
}

// UpdateFor computes the resources a Diff touches, from t (the table after
// the change): an entry whose endpoints changed touches only its load
// assignment; a change of routes also touches its cluster, the route
// configuration (HTTP) and the listeners of the external ports involved
// (TCP). Resources whose content comes out unchanged are still listed;
// the publisher drops those.
func (o ResourceOptions) UpdateFor(t *Table, d Diff) Update {
	u := Update{Set: newResources()}
	httpDirty := false
	tcpDirty := map[uint32]struct{}{}
	for _, c := range d {
		name := ClusterName(c.Key)
		switch {
		case c.After.HasRoutes():
			if !c.Before.HasRoutes() || c.Before.Routes.Options != c.After.Routes.Options {
				u.Set.Clusters[name] = o.Cluster(c.After)
			}
			u.Set.LoadAssignments[name] = o.LoadAssignment(c.After)
		case c.Before.HasRoutes():
			u.Delete.Clusters = append(u.Delete.Clusters, name)
			u.Delete.LoadAssignments = append(u.Delete.LoadAssignments, name)
		}
		if !c.RoutesChanged() {
			continue
		}
		var before, after PortRoutes
		if c.Before != nil {
			before = c.Before.Routes
		}
		if c.After != nil {
			after = c.After.Routes
		}
		if !slices.Equal(before.HTTP, after.HTTP) {
			httpDirty = true
		}
		// A listener lists the clusters on its port, so only ports this key
		// joined or left need a new one.
		bp, ap := externalPorts(before.TCP), externalPorts(after.TCP)
		for p := range bp {
			if _, ok := ap[p]; !ok {
				tcpDirty[p] = struct{}{}
			}
		}
		for p := range ap {
			if _, ok := bp[p]; !ok {
				tcpDirty[p] = struct{}{}
			}
		}
	}
	if httpDirty && o.HTTPPort != 0 {
		u.Set.RouteConfigs[RouteConfigName] = o.RouteConfiguration(t.HTTPEntries())
	}
	for _, port := range slices.Sorted(maps.Keys(tcpDirty)) {
		if l := o.TCPListener(port, t.TCPEntries(port)); l != nil {
			u.Set.Listeners[l.Name] = l
		} else {
			u.Delete.Listeners = append(u.Delete.Listeners, TCPListenerName(port))
		}
	}
	return u
}

func externalPorts(routes []TCPRoute) map[uint32]struct{} {
	out := make(map[uint32]struct{}, len(routes))
	for _, r := range routes {
		out[r.ExternalPort] = struct{}{}
	}
	return out
}

// adsSource is "over the ADS stream this resource came on".
func adsSource() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ResourceApiVersion:    corev3.ApiVersion_V3,
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
	}
}

func socketAddress(host string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address:       host,
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}

// mustAny packs a message; it cannot fail for the generated types used
// here.
func mustAny(m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		panic(fmt.Sprintf("pack %T: %v", m, err))
	}
	return a
}

// Cluster is an entry's cluster: EDS over ADS, named like its load
// assignment.
func (o ResourceOptions) Cluster(e *Entry) *clusterv3.Cluster {
	name := ClusterName(e.Key)
	c := &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{EdsConfig: adsSource(), ServiceName: name},
		ConnectTimeout:       durationpb.New(o.ConnectTimeout),
		LbPolicy:             clusterv3.Cluster_ROUND_ROBIN,
	}
	if e.Routes.Options.LeastRequest {
		c.LbPolicy = clusterv3.Cluster_LEAST_REQUEST
	}
	if e.Routes.Options.HTTP2 {
		c.TypedExtensionProtocolOptions = map[string]*anypb.Any{
			"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": mustAny(&upstreamhttpv3.HttpProtocolOptions{
				UpstreamProtocolOptions: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_{
					ExplicitHttpConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig{
						ProtocolConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{
							Http2ProtocolOptions: &corev3.Http2ProtocolOptions{},
						},
					},
				},
			}),
		}
	}
	return c
}

// LoadAssignment lists an entry's routable endpoints. An evacuating
// instance is sent as DRAINING: Envoy prefers the others, and still uses
// it while it is all there is (panic mode), which keeps the app reachable
// until its replacement runs.
func (o ResourceOptions) LoadAssignment(e *Entry) *endpointv3.ClusterLoadAssignment {
	cla := &endpointv3.ClusterLoadAssignment{ClusterName: ClusterName(e.Key)}
	eps := e.Routable()
	if len(eps) == 0 {
		return cla
	}
	lbs := make([]*endpointv3.LbEndpoint, len(eps))
	for i, ep := range eps {
		health := corev3.HealthStatus_HEALTHY
		if ep.Evacuating() {
			health = corev3.HealthStatus_DRAINING
		}
		lbs[i] = &endpointv3.LbEndpoint{
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
				Address: socketAddress(ep.Address, ep.Port),
			}},
			HealthStatus: health,
			Metadata: &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
				MetadataNamespace: {Fields: map[string]*structpb.Value{
					"instance_guid": structpb.NewStringValue(ep.InstanceGUID),
					"index":         structpb.NewNumberValue(float64(ep.Index)),
					"cell_id":       structpb.NewStringValue(ep.CellID),
				}},
			}},
		}
	}
	cla.Endpoints = []*endpointv3.LocalityLbEndpoints{{LbEndpoints: lbs}}
	return cla
}

// HTTPListener is the one HTTP listener: an HTTP connection manager whose
// routes come over RDS. The port is stripped from Host before matching, so
// app.example.com:8080 finds app.example.com.
func (o ResourceOptions) HTTPListener() *listenerv3.Listener {
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix: HTTPListenerName,
		CodecType:  hcmv3.HttpConnectionManager_AUTO,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			ConfigSource:    adsSource(),
			RouteConfigName: RouteConfigName,
		}},
		HttpFilters: []*hcmv3.HttpFilter{{
			Name:       wellknown.Router,
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&routerv3.Router{})},
		}},
		StripPortMode: &hcmv3.HttpConnectionManager_StripAnyHostPort{StripAnyHostPort: true},
	}
	return &listenerv3.Listener{
		Name:    HTTPListenerName,
		Address: socketAddress(o.HTTPAddress, o.HTTPPort),
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{
			Name:       wellknown.HTTPConnectionManager,
			ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(hcm)},
		}}}},
	}
}

// RouteConfiguration has one virtual host per hostname. Within a host,
// longer path prefixes come first so the most specific route wins, and a
// host or path mapped to several LRPs splits traffic evenly between them.
func (o ResourceOptions) RouteConfiguration(entries []*Entry) *routev3.RouteConfiguration {
	byHost := map[string]map[string][]string{} // hostname → path → clusters
	for _, e := range entries {
		name := ClusterName(e.Key)
		for _, r := range e.Routes.HTTP {
			paths := byHost[r.Hostname]
			if paths == nil {
				paths = map[string][]string{}
				byHost[r.Hostname] = paths
			}
			paths[r.Path] = append(paths[r.Path], name)
		}
	}
	rc := &routev3.RouteConfiguration{Name: RouteConfigName}
	for _, host := range slices.Sorted(maps.Keys(byHost)) {
		paths := byHost[host]
		order := slices.SortedFunc(maps.Keys(paths), func(a, b string) int {
			if len(a) != len(b) {
				return cmp.Compare(len(b), len(a))
			}
			return strings.Compare(a, b)
		})
		vh := &routev3.VirtualHost{Name: host, Domains: []string{host}}
		for _, path := range order {
			vh.Routes = append(vh.Routes, &routev3.Route{
				Match:  pathMatch(path),
				Action: &routev3.Route_Route{Route: routeAction(paths[path])},
			})
		}
		rc.VirtualHosts = append(rc.VirtualHosts, vh)
	}
	return rc
}

func pathMatch(path string) *routev3.RouteMatch {
	if path == "" {
		return &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}}
	}
	// A separated prefix matches /api and /api/..., never /apiary.
	return &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: path}}
}

func routeAction(clusters []string) *routev3.RouteAction {
	slices.Sort(clusters)
	if len(clusters) == 1 {
		return &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: clusters[0]}}
	}
	w := &routev3.WeightedCluster{}
	for _, c := range clusters {
		w.Clusters = append(w.Clusters, &routev3.WeightedCluster_ClusterWeight{Name: c, Weight: wrapperspb.UInt32(1)})
	}
	return &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_WeightedClusters{WeightedClusters: w}}
}

// TCPListener forwards an external port to the clusters routed to it
// (evenly when several LRPs share the port). It returns nil when no entry
// uses the port, or when the port is the HTTP listener's.
func (o ResourceOptions) TCPListener(port uint32, entries []*Entry) *listenerv3.Listener {
	if len(entries) == 0 || (o.HTTPPort != 0 && port == o.HTTPPort) {
		return nil
	}
	name := TCPListenerName(port)
	proxy := &tcpproxyv3.TcpProxy{StatPrefix: name}
	if len(entries) == 1 {
		proxy.ClusterSpecifier = &tcpproxyv3.TcpProxy_Cluster{Cluster: ClusterName(entries[0].Key)}
	} else {
		w := &tcpproxyv3.TcpProxy_WeightedCluster{}
		for _, e := range entries {
			w.Clusters = append(w.Clusters, &tcpproxyv3.TcpProxy_WeightedCluster_ClusterWeight{Name: ClusterName(e.Key), Weight: 1})
		}
		proxy.ClusterSpecifier = &tcpproxyv3.TcpProxy_WeightedClusters{WeightedClusters: w}
	}
	return &listenerv3.Listener{
		Name:    name,
		Address: socketAddress(o.TCPAddress, port),
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{
			Name:       wellknown.TCPProxy,
			ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(proxy)},
		}}}},
	}
}
