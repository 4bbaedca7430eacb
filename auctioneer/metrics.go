package auctioneer

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the auctioneer's Prometheus series (Diego's auctioneer
// indicators: fetch-state duration, failed cell-state requests, auctions
// started and failed).
type Metrics struct {
	AuctionDuration     prometheus.Histogram
	FetchStatesDuration prometheus.Histogram
	FailedCellStates    prometheus.Counter
	BatchSize           prometheus.Histogram
	Placements          *prometheus.CounterVec
	Failures            *prometheus.CounterVec
	Retries             *prometheus.CounterVec
	CommitErrors        prometheus.Counter
	Cells               prometheus.Gauge
	Leader              prometheus.Gauge
}

// NewMetrics creates the series and registers them on reg (nil: none).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		AuctionDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "gavel_auctioneer_auction_duration_seconds",
			Help:    "Time of one auction round: state fetch, scheduling, commit and reporting.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}),
		FetchStatesDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "gavel_auctioneer_fetch_states_duration_seconds",
			Help:    "Time to fetch the state of every cell for one round.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}),
		FailedCellStates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gavel_auctioneer_failed_cell_state_requests_total",
			Help: "Cell state requests that failed or timed out (the cell sat the round out).",
		}),
		BatchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "gavel_auctioneer_batch_size",
			Help:    "Instances and tasks placed in one round.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 10),
		}),
		Placements: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gavel_auctioneer_placements_total",
			Help: "Work accepted by a cell, by kind (lrp, task).",
		}, []string{"kind"}),
		Failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gavel_auctioneer_failures_total",
			Help: "Work that could not be placed, by kind and by the stage that stopped it.",
		}, []string{"kind", "reason"}),
		Retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gavel_auctioneer_retries_total",
			Help: "Work a cell refused at commit and that went into the next round, by kind.",
		}, []string{"kind"}),
		CommitErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gavel_auctioneer_commit_errors_total",
			Help: "Perform calls that failed in transport (their work is left to convergence).",
		}),
		Cells: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gavel_auctioneer_cells",
			Help: "Cells that answered the last round's state fetch.",
		}),
		Leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gavel_auctioneer_leader",
			Help: "1 while this auctioneer is the elected one.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.AuctionDuration, m.FetchStatesDuration, m.FailedCellStates, m.BatchSize,
			m.Placements, m.Failures, m.Retries, m.CommitErrors, m.Cells, m.Leader)
	}
	return m
}
