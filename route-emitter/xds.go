package routeemitter

import (
	"context"
	"log/slog"
	"maps"
	"strconv"
	"sync"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Publisher holds the xDS resources of one serving term in
// go-control-plane caches: one LinearCache per resource type, so that
// every resource has its own version and a response carries only the
// resources that changed (an endpoint change is one load assignment, and
// no other type moves). A Publisher is safe for concurrent use.
type Publisher struct {
	logger *slog.Logger
	prefix string
	caches map[string]*cache.LinearCache
	mux    *cache.MuxCache

	// mu guards current, versions and applied: what the caches hold, each
	// cache's version counter (it counts one per update, as LinearCache
	// does) and when recent versions were set.
	mu       sync.Mutex
	current  Resources
	versions map[string]uint64
	applied  map[string]*versionTimes
}

// Resource types in the order a make-before-break update sets them:
// endpoints before the clusters that use them, clusters before the routes
// and listeners that name them. Deletions go the other way.
var publishOrder = []string{resource.EndpointType, resource.ClusterType, resource.RouteType, resource.ListenerType}

// NewPublisher returns an empty publisher. prefix starts every version it
// hands out; give each process start (and term) its own, so an Envoy that
// reconnects with a version from before is always sent the full state.
func NewPublisher(prefix string, logger *slog.Logger) *Publisher {
	if logger == nil {
		logger = slog.Default()
	}
	p := &Publisher{
		logger:   logger,
		prefix:   prefix,
		caches:   map[string]*cache.LinearCache{},
		current:  newResources(),
		versions: map[string]uint64{},
		applied:  map[string]*versionTimes{},
	}
	for _, typ := range publishOrder {
		p.caches[typ] = cache.NewLinearCache(typ, cache.WithVersionPrefix(prefix))
		p.applied[typ] = &versionTimes{at: map[string]time.Time{}}
	}
	p.mux = &cache.MuxCache{
		Classify:      func(r *cache.Request) string { return r.GetTypeUrl() },
		ClassifyDelta: func(r *cache.DeltaRequest) string { return r.GetTypeUrl() },
		Caches:        map[string]cache.Cache{},
	}
	for typ, c := range p.caches {
		p.mux.Caches[typ] = c
	}
	return p
}

// Cache is what the xDS server serves from.
func (p *Publisher) Cache() cache.Cache { return p.mux }

// Resources returns a copy of the published resources.
func (p *Publisher) Resources() Resources {
	p.mu.Lock()
	defer p.mu.Unlock()
	return Resources{
		Listeners:       maps.Clone(p.current.Listeners),
		RouteConfigs:    maps.Clone(p.current.RouteConfigs),
		Clusters:        maps.Clone(p.current.Clusters),
		LoadAssignments: maps.Clone(p.current.LoadAssignments),
	}
}

// PushStats counts the resources an Apply set and deleted, by type URL.
type PushStats map[string]int

// Apply publishes an update. A resource identical to the one published is
// left alone (its version stays, nobody is sent it again); a resource that
// fails Envoy's validation is refused and logged, and the one published
// before stays, so one bad resource never reaches Envoy (which would
// reject the whole response).
func (p *Publisher) Apply(u Update) PushStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	stats := PushStats{}
	sets := map[string]map[string]types.Resource{
		resource.EndpointType: changedResources(p, resource.EndpointType, u.Set.LoadAssignments, p.current.LoadAssignments),
		resource.ClusterType:  changedResources(p, resource.ClusterType, u.Set.Clusters, p.current.Clusters),
		resource.RouteType:    changedResources(p, resource.RouteType, u.Set.RouteConfigs, p.current.RouteConfigs),
		resource.ListenerType: changedResources(p, resource.ListenerType, u.Set.Listeners, p.current.Listeners),
	}
	deletes := map[string][]string{
		resource.EndpointType: present(u.Delete.LoadAssignments, p.current.LoadAssignments),
		resource.ClusterType:  present(u.Delete.Clusters, p.current.Clusters),
		resource.RouteType:    present(u.Delete.RouteConfigs, p.current.RouteConfigs),
		resource.ListenerType: present(u.Delete.Listeners, p.current.Listeners),
	}
	for _, typ := range publishOrder {
		p.update(typ, sets[typ], nil)
		stats[typ] += len(sets[typ])
	}
	for i := len(publishOrder) - 1; i >= 0; i-- {
		typ := publishOrder[i]
		p.update(typ, nil, deletes[typ])
		stats[typ] += len(deletes[typ])
	}
	return stats
}

func (p *Publisher) update(typ string, set map[string]types.Resource, del []string) {
	if len(set) == 0 && len(del) == 0 {
		return
	}
	for name, r := range set {
		storeResource(p.current, typ, name, r)
	}
	for _, name := range del {
		deleteResource(p.current, typ, name)
	}
	p.versions[typ]++
	p.applied[typ].record(p.prefix+strconv.FormatUint(p.versions[typ], 10), time.Now())
	if err := p.caches[typ].UpdateResources(set, del); err != nil {
		// Only a failure to hash a resource for delta versions lands
		// here; the resource is in the cache all the same.
		p.logger.Error("xds cache update", "type", typ, "error", err)
	}
}

// changedResources keeps the resources of set that differ from the published ones
// and pass validation.
func changedResources[M interface {
	proto.Message
	Validate() error
}](p *Publisher, typ string, set map[string]M, cur map[string]M) map[string]types.Resource {
	out := map[string]types.Resource{}
	for name, r := range set {
		if old, ok := cur[name]; ok && proto.Equal(old, r) {
			continue
		}
		if err := r.Validate(); err != nil {
			p.logger.Error("refusing invalid xds resource", "type", typ, "name", name, "error", err)
			continue
		}
		out[name] = r
	}
	return out
}

func present[M any](names []string, cur map[string]M) []string {
	var out []string
	for _, n := range names {
		if _, ok := cur[n]; ok {
			out = append(out, n)
		}
	}
	return out
}

func storeResource(r Resources, typ, name string, res types.Resource) {
	switch typ {
	case resource.EndpointType:
		r.LoadAssignments[name] = res.(*endpointv3.ClusterLoadAssignment)
	case resource.ClusterType:
		r.Clusters[name] = res.(*clusterv3.Cluster)
	case resource.RouteType:
		r.RouteConfigs[name] = res.(*routev3.RouteConfiguration)
	case resource.ListenerType:
		r.Listeners[name] = res.(*listenerv3.Listener)
	}
}

func deleteResource(r Resources, typ, name string) {
	switch typ {
	case resource.EndpointType:
		delete(r.LoadAssignments, name)
	case resource.ClusterType:
		delete(r.Clusters, name)
	case resource.RouteType:
		delete(r.RouteConfigs, name)
	case resource.ListenerType:
		delete(r.Listeners, name)
	}
}

// appliedAt returns when version of type typ was published, if it is
// recent enough to be remembered.
func (p *Publisher) appliedAt(typ, version string) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	vt := p.applied[typ]
	if vt == nil {
		return time.Time{}, false
	}
	t, ok := vt.at[version]
	return t, ok
}

// versionTimes remembers when the last few versions of one type were set.
type versionTimes struct {
	at    map[string]time.Time
	order []string
}

const rememberedVersions = 256

func (v *versionTimes) record(version string, t time.Time) {
	v.at[version] = t
	v.order = append(v.order, version)
	if len(v.order) > rememberedVersions {
		delete(v.at, v.order[0])
		v.order = v.order[1:]
	}
}

// XDSServer is the ADS endpoint Envoy connects to. It serves only while a
// term is open (the emitter has synced, and in global mode leads); at
// other times it refuses streams as Unavailable, so an Envoy keeps the
// configuration it has and retries, instead of being sent an empty one.
// Closing a term ends its streams, so Envoys reconnect to whoever serves
// next.
type XDSServer struct {
	discovery.UnimplementedAggregatedDiscoveryServiceServer
	metrics *Metrics
	logger  *slog.Logger

	// mu guards term and reason.
	mu     sync.Mutex
	term   *xdsTerm
	reason string
}

type xdsTerm struct {
	ctx    context.Context
	cancel context.CancelFunc
	srv    server.Server
	pub    *Publisher
}

// NewXDSServer returns a server that refuses streams until Open.
func NewXDSServer(metrics *Metrics, logger *slog.Logger) *XDSServer {
	if logger == nil {
		logger = slog.Default()
	}
	return &XDSServer{metrics: metrics, logger: logger, reason: "route emitter starting: first sync not done"}
}

// Open starts serving pub's resources; close ends the term and every
// stream of it, after which streams are refused with reason.
func (x *XDSServer) Open(pub *Publisher) (closeTerm func(reason string)) {
	ctx, cancel := context.WithCancel(context.Background())
	term := &xdsTerm{ctx: ctx, cancel: cancel, pub: pub}
	term.srv = server.NewServer(ctx, pub.Cache(), x.callbacks(pub))
	x.mu.Lock()
	if x.term != nil {
		x.term.cancel()
	}
	x.term = term
	x.mu.Unlock()
	return func(reason string) {
		x.mu.Lock()
		if x.term == term {
			x.term, x.reason = nil, reason
		}
		x.mu.Unlock()
		cancel()
	}
}

// Refuse sets the reason streams are refused with while no term is open.
func (x *XDSServer) Refuse(reason string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.reason = reason
}

func (x *XDSServer) current() (*xdsTerm, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.term == nil {
		return nil, status.Error(codes.Unavailable, x.reason)
	}
	return x.term, nil
}

// StreamAggregatedResources serves state-of-the-world ADS.
func (x *XDSServer) StreamAggregatedResources(s discovery.AggregatedDiscoveryService_StreamAggregatedResourcesServer) error {
	term, err := x.current()
	if err != nil {
		return err
	}
	err = term.srv.StreamAggregatedResources(s)
	return x.ended(term, err)
}

// DeltaAggregatedResources serves incremental (delta) ADS.
func (x *XDSServer) DeltaAggregatedResources(s discovery.AggregatedDiscoveryService_DeltaAggregatedResourcesServer) error {
	term, err := x.current()
	if err != nil {
		return err
	}
	err = term.srv.DeltaAggregatedResources(s)
	return x.ended(term, err)
}

// ended turns the quiet end of a closed term's stream into Unavailable,
// which tells the Envoy to reconnect.
func (x *XDSServer) ended(term *xdsTerm, err error) error {
	if term.ctx.Err() != nil {
		x.mu.Lock()
		reason := x.reason
		x.mu.Unlock()
		return status.Error(codes.Unavailable, "route emitter stopped serving: "+reason)
	}
	return err
}

// callbacks count streams and time pushes.
func (x *XDSServer) callbacks(pub *Publisher) server.Callbacks {
	observe := func(typ, version string) {
		if at, ok := pub.appliedAt(typ, version); ok {
			x.metrics.PushLatency.WithLabelValues(shortType(typ)).Observe(time.Since(at).Seconds())
		}
	}
	return server.CallbackFuncs{
		StreamOpenFunc: func(context.Context, int64, string) error {
			x.metrics.ConnectedEnvoys.Inc()
			return nil
		},
		StreamClosedFunc: func(int64, *corev3.Node) { x.metrics.ConnectedEnvoys.Dec() },
		DeltaStreamOpenFunc: func(context.Context, int64, string) error {
			x.metrics.ConnectedEnvoys.Inc()
			return nil
		},
		DeltaStreamClosedFunc: func(int64, *corev3.Node) { x.metrics.ConnectedEnvoys.Dec() },
		StreamResponseFunc: func(_ context.Context, _ int64, _ *discovery.DiscoveryRequest, resp *discovery.DiscoveryResponse) {
			observe(resp.GetTypeUrl(), resp.GetVersionInfo())
		},
		StreamDeltaResponseFunc: func(_ int64, _ *discovery.DeltaDiscoveryRequest, resp *discovery.DeltaDiscoveryResponse) {
			observe(resp.GetTypeUrl(), resp.GetSystemVersionInfo())
		},
	}
}

func shortType(typ string) string {
	switch typ {
	case resource.ListenerType:
		return "lds"
	case resource.RouteType:
		return "rds"
	case resource.ClusterType:
		return "cds"
	case resource.EndpointType:
		return "eds"
	}
	return typ
}
