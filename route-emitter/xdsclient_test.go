package routeemitter

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// adsClient is a test xDS client that behaves like Envoy on ADS: it asks
// for every listener and cluster, then for the route configurations the
// listeners name and the load assignments of the EDS clusters, ACKs every
// response, and keeps the resources it holds. It speaks either
// state-of-the-world or delta, and reconnects (resuming with what it
// holds) when its stream ends, like Envoy does.
type adsClient struct {
	t     testing.TB
	conn  *grpc.ClientConn
	delta bool
	node  *corev3.Node

	// mu guards everything below.
	mu        sync.Mutex
	res       Resources
	versions  map[string]string            // sotw: last ACKed version per type
	known     map[string]map[string]string // delta: resource versions per type
	responses map[string]int               // responses received per type
	resources map[string]int               // resources received per type
	connects  int
	lastErr   error
	// watch, when set, sees every state after a response.
	watch func(Resources)
	// onLoadAssignment, when set, sees each load assignment received.
	onLoadAssignment func(name string, endpoints int)
}

func newADSClient(t testing.TB, conn *grpc.ClientConn, delta bool) *adsClient {
	c := &adsClient{t: t, conn: conn, delta: delta, node: &corev3.Node{Id: "envoy-test", Cluster: "gavel-ingress"},
		res: newResources(), versions: map[string]string{}, known: map[string]map[string]string{},
		responses: map[string]int{}, resources: map[string]int{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			err := c.session(ctx)
			c.mu.Lock()
			c.lastErr = err
			c.mu.Unlock()
			select {
			case <-ctx.Done():
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return c
}

// names the client subscribes to for a type ("" = wildcard).
func (c *adsClient) wanted(typ string) []string {
	switch typ {
	case resource.RouteType:
		var out []string
		for _, l := range c.res.Listeners {
			for _, fc := range l.GetFilterChains() {
				for _, f := range fc.GetFilters() {
					var hcm hcmv3.HttpConnectionManager
					if f.GetTypedConfig().UnmarshalTo(&hcm) == nil && hcm.GetRds() != nil {
						out = append(out, hcm.GetRds().GetRouteConfigName())
					}
				}
			}
		}
		slices.Sort(out)
		return slices.Compact(out)
	case resource.EndpointType:
		var out []string
		for _, cl := range c.res.Clusters {
			if cl.GetType() == clusterv3.Cluster_EDS {
				out = append(out, cl.GetEdsClusterConfig().GetServiceName())
			}
		}
		slices.Sort(out)
		return out
	}
	return nil
}

func (c *adsClient) session(ctx context.Context) error {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ads := discovery.NewAggregatedDiscoveryServiceClient(c.conn)
	if c.delta {
		s, err := ads.DeltaAggregatedResources(sctx)
		if err != nil {
			return err
		}
		return c.runDelta(s)
	}
	s, err := ads.StreamAggregatedResources(sctx)
	if err != nil {
		return err
	}
	return c.runSotw(s)
}

func (c *adsClient) runSotw(s discovery.AggregatedDiscoveryService_StreamAggregatedResourcesClient) error {
	c.mu.Lock()
	c.connects++
	subscribed := map[string][]string{}
	var first []*discovery.DiscoveryRequest
	for _, typ := range []string{resource.ListenerType, resource.ClusterType} {
		first = append(first, &discovery.DiscoveryRequest{Node: c.node, TypeUrl: typ, VersionInfo: c.versions[typ]})
	}
	// Resume the dependent types with what is held, as Envoy does.
	for _, typ := range []string{resource.RouteType, resource.EndpointType} {
		if names := c.wanted(typ); len(names) > 0 {
			subscribed[typ] = names
			first = append(first, &discovery.DiscoveryRequest{Node: c.node, TypeUrl: typ, VersionInfo: c.versions[typ], ResourceNames: names})
		}
	}
	c.mu.Unlock()
	for _, r := range first {
		if err := s.Send(r); err != nil {
			return err
		}
	}
	for {
		resp, err := s.Recv()
		if err != nil {
			return err
		}
		typ := resp.GetTypeUrl()
		c.mu.Lock()
		if err := c.absorb(typ, resp.GetResources(), nil, ResourceRequiresFullState(typ)); err != nil {
			c.mu.Unlock()
			return err
		}
		c.versions[typ] = resp.GetVersionInfo()
		c.responses[typ]++
		c.resources[typ] += len(resp.GetResources())
		ack := []*discovery.DiscoveryRequest{{Node: c.node, TypeUrl: typ, VersionInfo: resp.GetVersionInfo(),
			ResponseNonce: resp.GetNonce(), ResourceNames: subscribed[typ]}}
		for _, dep := range dependents(typ) {
			if names := c.wanted(dep); !slices.Equal(names, subscribed[dep]) {
				subscribed[dep] = names
				ack = append(ack, &discovery.DiscoveryRequest{Node: c.node, TypeUrl: dep, VersionInfo: c.versions[dep], ResourceNames: names})
			}
		}
		c.notify()
		c.mu.Unlock()
		for _, r := range ack {
			if err := s.Send(r); err != nil {
				return err
			}
		}
	}
}

func (c *adsClient) runDelta(s discovery.AggregatedDiscoveryService_DeltaAggregatedResourcesClient) error {
	c.mu.Lock()
	c.connects++
	subscribed := map[string][]string{}
	var first []*discovery.DeltaDiscoveryRequest
	for _, typ := range []string{resource.ListenerType, resource.ClusterType} {
		first = append(first, &discovery.DeltaDiscoveryRequest{Node: c.node, TypeUrl: typ, InitialResourceVersions: maps.Clone(c.known[typ])})
	}
	for _, typ := range []string{resource.RouteType, resource.EndpointType} {
		if names := c.wanted(typ); len(names) > 0 {
			subscribed[typ] = names
			first = append(first, &discovery.DeltaDiscoveryRequest{Node: c.node, TypeUrl: typ, ResourceNamesSubscribe: names,
				InitialResourceVersions: maps.Clone(c.known[typ])})
		}
	}
	c.mu.Unlock()
	for _, r := range first {
		if err := s.Send(r); err != nil {
			return err
		}
	}
	for {
		resp, err := s.Recv()
		if err != nil {
			return err
		}
		typ := resp.GetTypeUrl()
		c.mu.Lock()
		var anys []*anypb.Any
		if c.known[typ] == nil {
			c.known[typ] = map[string]string{}
		}
		for _, r := range resp.GetResources() {
			anys = append(anys, r.GetResource())
			c.known[typ][r.GetName()] = r.GetVersion()
		}
		for _, n := range resp.GetRemovedResources() {
			delete(c.known[typ], n)
		}
		if err := c.absorb(typ, anys, resp.GetRemovedResources(), false); err != nil {
			c.mu.Unlock()
			return err
		}
		c.responses[typ]++
		c.resources[typ] += len(resp.GetResources()) + len(resp.GetRemovedResources())
		ack := []*discovery.DeltaDiscoveryRequest{{Node: c.node, TypeUrl: typ, ResponseNonce: resp.GetNonce()}}
		for _, dep := range dependents(typ) {
			names := c.wanted(dep)
			add, drop := setDiff(names, subscribed[dep]), setDiff(subscribed[dep], names)
			if len(add)+len(drop) > 0 {
				subscribed[dep] = names
				ack = append(ack, &discovery.DeltaDiscoveryRequest{Node: c.node, TypeUrl: dep, ResourceNamesSubscribe: add, ResourceNamesUnsubscribe: drop})
				for _, n := range drop {
					deleteResource(c.res, dep, n)
				}
			}
		}
		c.notify()
		c.mu.Unlock()
		for _, r := range ack {
			if err := s.Send(r); err != nil {
				return err
			}
		}
	}
}

// ResourceRequiresFullState is whether a sotw response of typ replaces
// everything held (listeners and clusters) rather than naming changes.
func ResourceRequiresFullState(typ string) bool {
	return typ == resource.ListenerType || typ == resource.ClusterType
}

func dependents(typ string) []string {
	switch typ {
	case resource.ListenerType:
		return []string{resource.RouteType}
	case resource.ClusterType:
		return []string{resource.EndpointType}
	}
	return nil
}

func setDiff(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

// absorb stores resources of a response: all of them for a full-state
// response, else by name; removed names are dropped.
func (c *adsClient) absorb(typ string, anys []*anypb.Any, removedNames []string, full bool) error {
	decoded := map[string]proto.Message{}
	for _, a := range anys {
		var m proto.Message
		switch typ {
		case resource.ListenerType:
			m = &listenerv3.Listener{}
		case resource.ClusterType:
			m = &clusterv3.Cluster{}
		case resource.RouteType:
			m = &routev3.RouteConfiguration{}
		case resource.EndpointType:
			m = &endpointv3.ClusterLoadAssignment{}
		default:
			return fmt.Errorf("unexpected type %s", typ)
		}
		if err := a.UnmarshalTo(m); err != nil {
			return err
		}
		decoded[nameOf(m)] = m
	}
	if full {
		switch typ {
		case resource.ListenerType:
			c.res.Listeners = map[string]*listenerv3.Listener{}
		case resource.ClusterType:
			c.res.Clusters = map[string]*clusterv3.Cluster{}
		}
	}
	for name, m := range decoded {
		storeResource(c.res, typ, name, m)
		if cla, ok := m.(*endpointv3.ClusterLoadAssignment); ok && c.onLoadAssignment != nil {
			n := 0
			for _, l := range cla.GetEndpoints() {
				n += len(l.GetLbEndpoints())
			}
			c.onLoadAssignment(name, n)
		}
	}
	for _, n := range removedNames {
		deleteResource(c.res, typ, n)
	}
	if full && typ == resource.ClusterType {
		// Envoy drops load assignments of clusters that are gone.
		for n := range c.res.LoadAssignments {
			if _, ok := c.res.Clusters[n]; !ok {
				delete(c.res.LoadAssignments, n)
			}
		}
	}
	return nil
}

func nameOf(m proto.Message) string {
	switch r := m.(type) {
	case *listenerv3.Listener:
		return r.GetName()
	case *clusterv3.Cluster:
		return r.GetName()
	case *routev3.RouteConfiguration:
		return r.GetName()
	case *endpointv3.ClusterLoadAssignment:
		return r.GetClusterName()
	}
	return ""
}

func (c *adsClient) notify() {
	if c.watch != nil {
		c.watch(c.copyState())
	}
}

func (c *adsClient) copyState() Resources {
	return Resources{
		Listeners:       maps.Clone(c.res.Listeners),
		RouteConfigs:    maps.Clone(c.res.RouteConfigs),
		Clusters:        maps.Clone(c.res.Clusters),
		LoadAssignments: maps.Clone(c.res.LoadAssignments),
	}
}

// state returns a copy of what the client holds.
func (c *adsClient) state() Resources {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.copyState()
}

// counts returns responses received per type.
func (c *adsClient) counts() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.responses)
}

// endpoints lists the "address:port" of a cluster's endpoints with a
// "(draining)" mark, sorted.
func (r Resources) endpointsOf(cluster string) []string {
	var out []string
	for _, l := range r.LoadAssignments[cluster].GetEndpoints() {
		for _, lb := range l.GetLbEndpoints() {
			sa := lb.GetEndpoint().GetAddress().GetSocketAddress()
			s := fmt.Sprintf("%s:%d", sa.GetAddress(), sa.GetPortValue())
			if lb.GetHealthStatus() == corev3.HealthStatus_DRAINING {
				s += "(draining)"
			}
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}

// waitFor polls cond against the client's state until it holds or the
// deadline passes.
func (c *adsClient) waitFor(what string, cond func(Resources) bool) Resources {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := c.state()
		if cond(r) {
			return r
		}
		if time.Now().After(deadline) {
			c.mu.Lock()
			err := c.lastErr
			c.mu.Unlock()
			c.t.Fatalf("timed out waiting for %s (delta=%v); last stream error %v; holding clusters %v endpoints %v",
				what, c.delta, err, sortedNames(r.Clusters), sortedNames(r.LoadAssignments))
		}
		time.Sleep(10 * time.Millisecond)
	}
}
