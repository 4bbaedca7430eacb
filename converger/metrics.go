package converger

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gavel-scheduler/gavel/proto/models"
)

// Metrics are the converger's Prometheus series (Diego's convergence
// indicators, and the guard's).
type Metrics struct {
	PassDuration   prometheus.Histogram
	Passes         *prometheus.CounterVec
	LRPs           *prometheus.GaugeVec
	Missing        prometheus.Gauge
	Extra          prometheus.Gauge
	Crashed        prometheus.Gauge
	SuspectRunning prometheus.Gauge
	SuspectClaimed prometheus.Gauge
	Desired        prometheus.Gauge
	Crashing       prometheus.Gauge
	Actions        *prometheus.CounterVec
	TasksKicked    *prometheus.CounterVec
	TasksExpired   *prometheus.CounterVec
	TasksFailed    prometheus.Counter
	CellsPresent   prometheus.Gauge
	CellsLost      prometheus.Gauge
	CellsHeld      prometheus.Gauge
	GuardRaised    prometheus.Gauge
	Leader         prometheus.Gauge
}

// NewMetrics creates the series and registers them on reg (nil: none).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	gauge := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Name: "gavel_converger_" + name, Help: help})
	}
	m := &Metrics{
		PassDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "gavel_converger_pass_duration_seconds",
			Help:    "Time of one convergence pass: snapshot, plan, repairs and auction requests.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}),
		Passes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gavel_converger_passes_total",
			Help: "Convergence passes by result (ok, error).",
		}, []string{"result"}),
		LRPs: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gavel_converger_lrps",
			Help: "ORDINARY actual LRPs seen by the last pass, by state.",
		}, []string{"state"}),
		Missing:        gauge("lrps_missing", "Desired instances with no actual LRP in the last pass."),
		Extra:          gauge("lrps_extra", "Actual LRPs at or past their desired instance count in the last pass."),
		Crashed:        gauge("lrps_crashed", "CRASHED actual LRPs in the last pass."),
		SuspectRunning: gauge("lrps_suspect_running", "SUSPECT actual LRPs still RUNNING in the last pass."),
		SuspectClaimed: gauge("lrps_suspect_claimed", "SUSPECT actual LRPs CLAIMED in the last pass."),
		Desired:        gauge("lrps_desired", "Desired instances in the last pass."),
		Crashing:       gauge("crashing_desired_lrps", "Desired LRPs with a CRASHED instance in the last pass."),
		Actions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gavel_converger_actions_total",
			Help: "Repairs sent to the BBS, by action and result (applied, skipped, failed).",
		}, []string{"action", "result"}),
		TasksKicked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gavel_converger_tasks_kicked_total",
			Help: "Tasks sent on again, by kind (auction: pending task auctioned again; callback: completion callback re-sent).",
		}, []string{"kind"}),
		TasksExpired: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gavel_converger_tasks_expired_total",
			Help: "Tasks expired, by kind (pending: failed unstarted; completed: deleted uncollected).",
		}, []string{"kind"}),
		TasksFailed:  prometheus.NewCounter(prometheus.CounterOpts{Name: "gavel_converger_tasks_failed_cell_lost_total", Help: "Running tasks failed because their cell disappeared."}),
		CellsPresent: gauge("cells_present", "Cells whose presence the last pass found."),
		CellsLost:    gauge("cells_lost", "Absent cells the last pass acted on."),
		CellsHeld:    gauge("cells_held", "Absent cells held by the mass-failure guard."),
		GuardRaised:  gauge("guard_raised", "1 while the mass-failure guard holds cells back."),
		Leader:       gauge("leader", "1 while this converger is the elected one."),
	}
	if reg != nil {
		reg.MustRegister(m.PassDuration, m.Passes, m.LRPs, m.Missing, m.Extra, m.Crashed, m.SuspectRunning,
			m.SuspectClaimed, m.Desired, m.Crashing, m.Actions, m.TasksKicked, m.TasksExpired, m.TasksFailed,
			m.CellsPresent, m.CellsLost, m.CellsHeld, m.GuardRaised, m.Leader)
	}
	return m
}

// observePlan records what a pass saw.
func (m *Metrics) observePlan(p *Plan) {
	c := p.Counts
	m.LRPs.WithLabelValues("unclaimed").Set(float64(c.Unclaimed))
	m.LRPs.WithLabelValues("claimed").Set(float64(c.Claimed))
	m.LRPs.WithLabelValues("running").Set(float64(c.Running))
	m.LRPs.WithLabelValues("crashed").Set(float64(c.Crashed))
	m.Missing.Set(float64(c.Missing))
	m.Extra.Set(float64(c.Extra))
	m.Crashed.Set(float64(c.Crashed))
	m.SuspectRunning.Set(float64(c.SuspectRunning))
	m.SuspectClaimed.Set(float64(c.SuspectClaimed))
	m.Desired.Set(float64(c.DesiredInstances))
	m.Crashing.Set(float64(c.CrashingDesired))
	m.CellsPresent.Set(float64(p.Cells.Present))
	m.CellsLost.Set(float64(len(p.Cells.Lost)))
	m.CellsHeld.Set(float64(len(p.Cells.Held)))
	if p.Cells.GuardRaised {
		m.GuardRaised.Set(1)
	} else {
		m.GuardRaised.Set(0)
	}
}

// observeOutcome counts one repair's result.
func (m *Metrics) observeOutcome(o *models.ConvergenceOutcome) {
	result := "failed"
	switch o.Result {
	case models.ConvergenceOutcome_APPLIED:
		result = "applied"
	case models.ConvergenceOutcome_SKIPPED:
		result = "skipped"
	}
	m.Actions.WithLabelValues(o.Action, result).Inc()
	if o.Result != models.ConvergenceOutcome_APPLIED {
		return
	}
	switch o.Action {
	case "expire_pending":
		m.TasksExpired.WithLabelValues("pending").Inc()
	case "delete_completed":
		m.TasksExpired.WithLabelValues("completed").Inc()
	case "kick_callbacks", "demote_resolving":
		m.TasksKicked.WithLabelValues("callback").Inc()
	case "fail_on_lost_cell":
		m.TasksFailed.Inc()
	}
}
