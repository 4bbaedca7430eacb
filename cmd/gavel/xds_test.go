package main

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/gavel-scheduler/gavel/internal/tlsutil"
)

// xdsWatcher is a minimal Envoy stand-in: one state-of-the-world ADS
// stream, wildcard listeners and clusters, then the route configurations
// and endpoints they name, every response acknowledged. It keeps what it
// was last sent, per type.
type xdsWatcher struct {
	mu        sync.Mutex
	listeners map[string]*listenerv3.Listener
	routes    map[string]*routev3.RouteConfiguration
	clusters  map[string]*clusterv3.Cluster
	endpoints map[string]*endpointv3.ClusterLoadAssignment
	responses map[string]int
	err       error
}

func watchXDS(t testing.TB, home, addr string) *xdsWatcher {
	t.Helper()
	certs := tlsutil.PathsFor(filepath.Join(home, ".gavel", "dev", "certs"))
	cc := certs.Components["client"]
	tc, err := tlsutil.ClientConfig(certs.CACert, cc.Cert, cc.Key, "")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &xdsWatcher{listeners: map[string]*listenerv3.Listener{}, routes: map[string]*routev3.RouteConfiguration{},
		clusters: map[string]*clusterv3.Cluster{}, endpoints: map[string]*endpointv3.ClusterLoadAssignment{}, responses: map[string]int{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			if err := w.session(ctx, conn); err != nil && ctx.Err() == nil {
				w.mu.Lock()
				w.err = err
				w.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done; conn.Close() })
	return w
}

// session runs one ADS stream until it breaks (the emitter may not serve
// yet: it refuses streams until elected and synced).
func (w *xdsWatcher) session(ctx context.Context, conn *grpc.ClientConn) error {
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		return err
	}
	send := func(typ, version, nonce string, names []string) error {
		return stream.Send(&discoveryv3.DiscoveryRequest{TypeUrl: typ, VersionInfo: version, ResponseNonce: nonce, ResourceNames: names})
	}
	for _, typ := range []string{resource.ListenerType, resource.ClusterType} {
		if err := send(typ, "", "", nil); err != nil {
			return err
		}
	}
	subscribed := map[string][]string{}
	for {
		resp, err := stream.Recv()
		if err != nil {
			return err
		}
		names, err := w.absorb(resp.TypeUrl, resp.Resources)
		if err != nil {
			return err
		}
		if err := send(resp.TypeUrl, resp.VersionInfo, resp.Nonce, subscribed[resp.TypeUrl]); err != nil {
			return err
		}
		// Listeners name route configurations, clusters name endpoints:
		// subscribe to those as they appear.
		var dep string
		switch resp.TypeUrl {
		case resource.ListenerType:
			dep = resource.RouteType
		case resource.ClusterType:
			dep = resource.EndpointType
		}
		if dep != "" && !slices.Equal(subscribed[dep], names) {
			subscribed[dep] = names
			if err := send(dep, "", "", names); err != nil {
				return err
			}
		}
	}
}

// absorb stores a response's resources and returns the names they refer
// to (route configuration names of listeners, cluster names).
func (w *xdsWatcher) absorb(typ string, anys []*anypb.Any) ([]string, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.responses[typ]++
	var refs []string
	unpack := func(a *anypb.Any, m proto.Message) error { return a.UnmarshalTo(m) }
	switch typ {
	case resource.ListenerType:
		w.listeners = map[string]*listenerv3.Listener{}
		for _, a := range anys {
			l := &listenerv3.Listener{}
			if err := unpack(a, l); err != nil {
				return nil, err
			}
			w.listeners[l.Name] = l
		}
		if len(w.listeners) > 0 {
			refs = []string{"gavel_http"}
		}
	case resource.RouteType:
		for _, a := range anys {
			r := &routev3.RouteConfiguration{}
			if err := unpack(a, r); err != nil {
				return nil, err
			}
			w.routes[r.Name] = r
		}
	case resource.ClusterType:
		w.clusters = map[string]*clusterv3.Cluster{}
		for _, a := range anys {
			c := &clusterv3.Cluster{}
			if err := unpack(a, c); err != nil {
				return nil, err
			}
			w.clusters[c.Name] = c
			refs = append(refs, c.Name)
		}
		slices.Sort(refs)
	case resource.EndpointType:
		for _, a := range anys {
			e := &endpointv3.ClusterLoadAssignment{}
			if err := unpack(a, e); err != nil {
				return nil, err
			}
			w.endpoints[e.ClusterName] = e
		}
	default:
		return nil, fmt.Errorf("unexpected type %s", typ)
	}
	return refs, nil
}

// addresses lists the host:port of every endpoint of the clusters whose
// name contains guid.
func (w *xdsWatcher) addresses(guid string) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for name := range w.clusters {
		if !strings.Contains(name, guid) {
			continue
		}
		cla := w.endpoints[name]
		for _, le := range cla.GetEndpoints() {
			for _, lb := range le.GetLbEndpoints() {
				sa := lb.GetEndpoint().GetAddress().GetSocketAddress()
				out = append(out, fmt.Sprintf("%s:%d", sa.GetAddress(), sa.GetPortValue()))
			}
		}
	}
	slices.Sort(out)
	return out
}

// hasVirtualHost reports whether the HTTP route configuration routes host.
func (w *xdsWatcher) hasVirtualHost(host string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, rc := range w.routes {
		for _, vh := range rc.VirtualHosts {
			if slices.Contains(vh.Domains, host) {
				return true
			}
		}
	}
	return false
}

func (w *xdsWatcher) count(typ string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.responses[typ]
}
