package routeemitter

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the route emitter's gavel_route_emitter_* series.
type Metrics struct {
	// SyncDuration times each full sync: the BBS lists, the table build
	// and the push of its diff.
	SyncDuration prometheus.Histogram
	// Routes and Endpoints count what the table serves.
	Routes    prometheus.Gauge
	Endpoints prometheus.Gauge
	// PushLatency is from a table change to the xDS response that carries
	// it leaving for an Envoy, by resource type.
	PushLatency *prometheus.HistogramVec
	// ConnectedEnvoys counts open ADS streams.
	ConnectedEnvoys prometheus.Gauge
	// Leader is 1 while this emitter serves (always, in local mode).
	Leader prometheus.Gauge
	// Events counts BBS events applied, by kind.
	Events *prometheus.CounterVec
	// StreamRestarts counts event stream resumes, by reason (transient,
	// compacted).
	StreamRestarts *prometheus.CounterVec
	// InvalidRoutes counts DesiredLRPs with at least one refused route.
	InvalidRoutes prometheus.Gauge
}

// NewMetrics creates the metrics and registers them on reg (nil registers
// nothing).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		SyncDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "gavel_route_emitter_sync_duration_seconds",
			Help:    "Duration of a full sync (list from the BBS, rebuild the table, push the diff).",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}),
		Routes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gavel_route_emitter_routes",
			Help: "HTTP and TCP routes in the routing table.",
		}),
		Endpoints: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gavel_route_emitter_endpoints",
			Help: "Routable endpoints of routed entries in the routing table.",
		}),
		PushLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gavel_route_emitter_push_latency_seconds",
			Help:    "Time from a routing table change to the xDS response carrying it, by resource type.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}, []string{"type"}),
		ConnectedEnvoys: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gavel_route_emitter_connected_envoys",
			Help: "Open ADS streams (one per connected Envoy).",
		}),
		Leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gavel_route_emitter_leader",
			Help: "1 while this route emitter serves xDS (the elected one in global mode).",
		}),
		Events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gavel_route_emitter_events_total",
			Help: "BBS LRP events applied to the routing table, by kind.",
		}, []string{"kind"}),
		StreamRestarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gavel_route_emitter_event_stream_restarts_total",
			Help: "Times the BBS event stream was reopened, by reason.",
		}, []string{"reason"}),
		InvalidRoutes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gavel_route_emitter_invalid_route_lrps",
			Help: "Desired LRPs with at least one route entry refused as invalid.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.SyncDuration, m.Routes, m.Endpoints, m.PushLatency, m.ConnectedEnvoys, m.Leader,
			m.Events, m.StreamRestarts, m.InvalidRoutes)
	}
	return m
}
