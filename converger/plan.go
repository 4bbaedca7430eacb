package converger

import (
	"time"

	"github.com/gavel-scheduler/gavel/proto/models"
)

// Snapshot is everything one pass decides on, read at one revision, plus the
// converger's memory from the previous pass and the clock.
type Snapshot struct {
	Now          time.Time
	Revision     int64
	Desired      []*models.DesiredLRPSchedulingInfo
	Actual       []*models.ActualLRP
	Tasks        []*models.Task
	Cells        []*models.CellPresence
	Domains      []*models.Domain
	State        *models.ConvergerState
	Confirmation *models.CellLossConfirmation
}

// NewSnapshot wraps what the BBS returned, read at now.
func NewSnapshot(r *models.ConvergenceSnapshotResponse, now time.Time) Snapshot {
	return Snapshot{
		Now: now, Revision: r.GetRevision(),
		Desired: r.GetDesiredLrpSchedulingInfos(), Actual: r.GetActualLrps(), Tasks: r.GetTasks(),
		Cells: r.GetCells(), Domains: r.GetDomains(),
		State: r.GetConvergerState(), Confirmation: r.GetCellLossConfirmation(),
	}
}

// Missing are empty index slots of one desired LRP.
type Missing struct {
	Desired *models.DesiredLRPSchedulingInfo
	Indices []int32
}

// Retirement is an instance no desired LRP wants: Desired is the LRP it is
// extra for, nil for an orphan.
type Retirement struct {
	Actual  *models.ActualLRP
	Desired *models.DesiredLRPSchedulingInfo
}

// InstanceUpdate is a RUNNING instance whose stored internal routes or
// metric tags differ from what its desired LRP gives it (Drift says which):
// its cell is asked to report InternalRoutes and MetricTags from now on.
type InstanceUpdate struct {
	Actual         *models.ActualLRP
	Cell           *models.CellPresence
	Drift          models.Drift
	InternalRoutes []*models.ActualLRPInternalRoute
	MetricTags     map[string]string
}

// Counts describe the actual state a pass saw (Diego's convergence metrics).
type Counts struct {
	// ORDINARY rows by state.
	Unclaimed int `json:"unclaimed"`
	Claimed   int `json:"claimed"`
	Running   int `json:"running"`
	Crashed   int `json:"crashed"`
	// SUSPECT rows by state, and EVACUATING rows.
	SuspectRunning int `json:"suspect_running"`
	SuspectClaimed int `json:"suspect_claimed"`
	Evacuating     int `json:"evacuating"`
	// Missing and Extra count instances.
	Missing          int `json:"missing"`
	Extra            int `json:"extra"`
	DesiredInstances int `json:"desired_instances"`
	// CrashingDesired counts desired LRPs with a CRASHED instance.
	CrashingDesired int `json:"crashing_desired"`
	FreshDomains    int `json:"fresh_domains"`
	TasksPending    int `json:"tasks_pending"`
	TasksRunning    int `json:"tasks_running"`
	TasksCompleted  int `json:"tasks_completed"`
	TasksResolving  int `json:"tasks_resolving"`
	// HeldInstances and HeldTasks are left alone because their cell is
	// held by the mass-failure guard.
	HeldInstances int `json:"held_instances"`
	HeldTasks     int `json:"held_tasks"`
}

// Plan is what one pass does, in the order it does it (diego-facts §6.1 and
// §6.2). It is a value: it can be printed, logged and tested without any
// server, and Executor carries it out.
type Plan struct {
	Now      time.Time
	Revision int64
	Settings Settings

	// LRP rules, in execution order.
	RemoveEvacuating      []*models.ActualLRP // §6.1.2 EVACUATING rows on lost cells
	StaleUnclaimed        []*models.ActualLRP // §6.1.4 auctioned again
	Suspect               []*models.ActualLRP // §6.1.5 → SUSPECT + replacement
	UnclaimLost           []*models.ActualLRP // §6.1.5 replacement lost too → unclaimed
	Missing               []Missing           // §6.1.6 created and auctioned
	Retire                []Retirement        // §6.1.6 extra, §6.1.7 orphans (fresh domains)
	RemoveOrphanedSuspect []Retirement        // §6.1.8 (fresh domains)
	RemoveExtraSuspect    []*models.ActualLRP // §6.1.9 replacement RUNNING
	PromoteSuspect        []*models.ActualLRP // §6.1.10 cell back
	RestartCrashed        []*models.ActualLRP // §6.1.12 unclaimed and auctioned
	// §6.1.13 internal-route drift, §6.1.14 metric-tag drift: one rep
	// UpdateLRPInstance per instance, whichever drifted.
	UpdateInstances []InstanceUpdate

	// Task rules, in execution order.
	ExpirePending   []*models.Task // §6.2.1
	AuctionTasks    []*models.Task // §6.2.2
	FailOnLostCell  []*models.Task // §6.2.3
	DemoteResolving []*models.Task // §6.2.4
	DeleteCompleted []*models.Task // §6.2.5
	KickCallbacks   []*models.Task // §6.2.6

	Cells  CellReport
	Counts Counts
	// State is the converger's memory after this pass; Executor stores it
	// before it acts.
	State *models.ConvergerState

	desired map[string]*models.DesiredLRPSchedulingInfo
	cells   []*models.CellPresence
}

// slot is the rows of one index, one per presence.
type slot struct {
	guid  string
	index int32
	rows  [3]*models.ActualLRP
}

func (s *slot) get(p models.ActualLRP_Presence) *models.ActualLRP { return s.rows[p] }

type slotKey struct {
	guid  string
	index int32
}

func claimedOrRunning(a *models.ActualLRP) bool {
	return a.GetState() == models.ActualLRP_CLAIMED || a.GetState() == models.ActualLRP_RUNNING
}

// Calculate plans one pass over s. It is pure: the same snapshot and
// settings always give the same plan.
func Calculate(s Snapshot, set Settings) *Plan {
	if set.Restart == (models.RestartCalculator{}) {
		set.Restart = models.NewDefaultRestartCalculator()
	}
	now := s.Now.UnixNano()
	p := &Plan{Now: s.Now, Revision: s.Revision, Settings: set,
		desired: make(map[string]*models.DesiredLRPSchedulingInfo, len(s.Desired)), cells: s.Cells}
	for _, d := range s.Desired {
		p.desired[d.ProcessGuid()] = d
	}

	// Rows by index, in snapshot (key) order.
	slots := make(map[slotKey]*slot, len(s.Actual))
	order := make([]*slot, 0, len(s.Actual))
	referenced := make(map[string]bool)
	for _, a := range s.Actual {
		pr := a.GetPresence()
		if pr < 0 || int(pr) >= 3 {
			continue
		}
		k := slotKey{a.ProcessGuid(), a.Index()}
		sl := slots[k]
		if sl == nil {
			sl = &slot{guid: k.guid, index: k.index}
			slots[k] = sl
			order = append(order, sl)
		}
		sl.rows[pr] = a
		if claimedOrRunning(a) && a.CellID() != "" {
			referenced[a.CellID()] = true
		}
	}
	for _, t := range s.Tasks {
		if t.GetState() == models.Task_RUNNING && t.GetCellId() != "" {
			referenced[t.GetCellId()] = true
		}
	}
	present := make(map[string]bool, len(s.Cells))
	presences := make(map[string]*models.CellPresence, len(s.Cells))
	for _, c := range s.Cells {
		present[c.GetCellId()] = true
		presences[c.GetCellId()] = c
	}
	var next *models.ConvergerState
	p.Cells, next = evaluateCells(s.State, present, referenced, s.Confirmation, now, set)
	p.State = next
	held := make(map[string]bool, len(p.Cells.Held))
	for _, id := range p.Cells.Held {
		held[id] = true
	}

	// §6.1.3 fresh domains.
	fresh := make(map[string]bool, len(s.Domains))
	for _, d := range s.Domains {
		if d.GetExpiresAt() == 0 || d.GetExpiresAt() > now {
			fresh[d.GetDomain()] = true
		}
	}
	p.Counts.FreshDomains = len(fresh)

	staleBefore := now - int64(set.StaleUnclaimed)
	crashing := make(map[string]bool)
	for _, sl := range order {
		ord, evac, susp := sl.get(models.ActualLRP_ORDINARY), sl.get(models.ActualLRP_EVACUATING), sl.get(models.ActualLRP_SUSPECT)
		d := p.desired[sl.guid]
		wanted := d != nil && sl.index < d.GetInstances()

		// §6.1.2 EVACUATING rows whose cell is gone.
		if evac != nil {
			p.Counts.Evacuating++
			if c := evac.CellID(); !present[c] {
				if held[c] {
					p.Counts.HeldInstances++
				} else {
					p.RemoveEvacuating = append(p.RemoveEvacuating, evac)
				}
			}
		}

		if ord != nil {
			switch ord.State {
			case models.ActualLRP_UNCLAIMED:
				p.Counts.Unclaimed++
				// §6.1.4 stale unclaimed: auctioned again, row left as is.
				if wanted && ord.Since < staleBefore {
					p.StaleUnclaimed = append(p.StaleUnclaimed, ord)
				}
			case models.ActualLRP_CLAIMED, models.ActualLRP_RUNNING:
				if ord.State == models.ActualLRP_CLAIMED {
					p.Counts.Claimed++
				} else {
					p.Counts.Running++
				}
				// §6.1.5 instances on lost cells. An instance no desired
				// LRP wants is not replaced; §6.1.6/7 retire it.
				if c := ord.CellID(); !present[c] && wanted {
					switch {
					case held[c]:
						p.Counts.HeldInstances++
					case susp != nil:
						p.UnclaimLost = append(p.UnclaimLost, ord)
					default:
						p.Suspect = append(p.Suspect, ord)
					}
				}
			case models.ActualLRP_CRASHED:
				p.Counts.Crashed++
				crashing[sl.guid] = true
			}
		}
		if susp != nil {
			if susp.State == models.ActualLRP_RUNNING {
				p.Counts.SuspectRunning++
			} else {
				p.Counts.SuspectClaimed++
			}
		}
	}

	// §6.1.6 instance counts: missing indices are created, extra ones
	// retired (fresh domains only).
	for _, d := range s.Desired {
		guid := d.ProcessGuid()
		p.Counts.DesiredInstances += int(d.GetInstances())
		var missing []int32
		for i := range d.GetInstances() {
			if sl := slots[slotKey{guid, i}]; sl == nil || sl.get(models.ActualLRP_ORDINARY) == nil {
				missing = append(missing, i)
			}
		}
		if len(missing) > 0 {
			p.Missing = append(p.Missing, Missing{Desired: d, Indices: missing})
			p.Counts.Missing += len(missing)
		}
	}
	unwanted := func(a *models.ActualLRP) bool {
		return fresh[a.GetActualLrpKey().GetDomain()] && !(claimedOrRunning(a) && held[a.CellID()])
	}
	for _, sl := range order {
		ord := sl.get(models.ActualLRP_ORDINARY)
		if ord == nil {
			continue
		}
		d := p.desired[sl.guid]
		if d != nil && sl.index >= d.GetInstances() {
			p.Counts.Extra++
			if unwanted(ord) {
				p.Retire = append(p.Retire, Retirement{Actual: ord, Desired: d})
			}
		}
	}
	// §6.1.7 orphans (fresh domains only).
	for _, sl := range order {
		if ord := sl.get(models.ActualLRP_ORDINARY); ord != nil && p.desired[sl.guid] == nil && unwanted(ord) {
			p.Retire = append(p.Retire, Retirement{Actual: ord})
		}
	}
	// §6.1.8 SUSPECT rows no desired instance needs (fresh domains only).
	// §6.1.9 SUSPECT rows whose replacement runs. §6.1.10 SUSPECT rows whose
	// cell is back: promoted.
	var extraSuspect, promote []*models.ActualLRP
	for _, sl := range order {
		susp := sl.get(models.ActualLRP_SUSPECT)
		if susp == nil {
			continue
		}
		d := p.desired[sl.guid]
		if d == nil || sl.index >= d.GetInstances() {
			if unwanted(susp) {
				p.RemoveOrphanedSuspect = append(p.RemoveOrphanedSuspect, Retirement{Actual: susp, Desired: d})
			}
			continue
		}
		if ord := sl.get(models.ActualLRP_ORDINARY); ord != nil && ord.State == models.ActualLRP_RUNNING && present[ord.CellID()] {
			// The replacement is up: the suspect, running or only claimed,
			// has nothing left to stand in for. (A replacement on a lost
			// cell is no replacement; §6.1.5 unclaims it.)
			extraSuspect = append(extraSuspect, susp)
			continue
		}
		if present[susp.CellID()] {
			promote = append(promote, susp)
		}
	}
	p.RemoveExtraSuspect, p.PromoteSuspect = extraSuspect, promote

	// §6.1.12 crashed instances due for a restart.
	for _, sl := range order {
		ord := sl.get(models.ActualLRP_ORDINARY)
		d := p.desired[sl.guid]
		if ord != nil && d != nil && sl.index < d.GetInstances() && ord.ShouldRestartCrash(now, set.Restart) {
			p.RestartCrashed = append(p.RestartCrashed, ord)
		}
	}
	p.Counts.CrashingDesired = len(crashing)

	p.UpdateInstances = planInstanceUpdates(order, p.desired, presences)

	planTasks(p, s.Tasks, present, held, now, set)
	return p
}

// planInstanceUpdates applies §6.1.13 and §6.1.14: every RUNNING ORDINARY
// instance that its desired LRP wants, on a present cell, whose stored
// internal routes or metric tags differ from what the desired LRP gives
// it. (An instance on a lost cell is §6.1.5's; a CLAIMED one reports its
// values when it starts.)
func planInstanceUpdates(order []*slot, desired map[string]*models.DesiredLRPSchedulingInfo, cells map[string]*models.CellPresence) []InstanceUpdate {
	var out []InstanceUpdate
	routes := make(map[string][]*models.ActualLRPInternalRoute)
	for _, sl := range order {
		ord := sl.get(models.ActualLRP_ORDINARY)
		d := desired[sl.guid]
		if ord == nil || d == nil || ord.State != models.ActualLRP_RUNNING || sl.index >= d.GetInstances() {
			continue
		}
		cell := cells[ord.CellID()]
		if cell == nil {
			continue
		}
		r, ok := routes[sl.guid]
		if !ok {
			// Bad entries are skipped the way the rep skips them, so
			// both sides want the same routes.
			r, _ = d.InternalRoutes()
			routes[sl.guid] = r
		}
		if drift := models.InstanceDrift(ord, r, d.GetMetricTags()); drift.Any() {
			out = append(out, InstanceUpdate{Actual: ord, Cell: cell, Drift: drift, InternalRoutes: r,
				MetricTags: d.InstanceMetricTags(sl.index, ord.InstanceGuid())})
		}
	}
	return out
}

// planTasks applies the task rules (diego-facts §6.2).
func planTasks(p *Plan, tasks []*models.Task, present, held map[string]bool, now int64, set Settings) {
	pendingBefore := now - int64(set.ExpirePendingTask)
	kickBefore := now - int64(set.KickTask)
	completedBefore := now - int64(set.ExpireCompletedTask)
	var running, resolving, completed []*models.Task
	for _, t := range tasks {
		switch t.GetState() {
		case models.Task_PENDING:
			p.Counts.TasksPending++
			if t.GetCreatedAt() < pendingBefore {
				p.ExpirePending = append(p.ExpirePending, t)
			} else {
				p.AuctionTasks = append(p.AuctionTasks, t)
			}
		case models.Task_RUNNING:
			p.Counts.TasksRunning++
			running = append(running, t)
		case models.Task_RESOLVING:
			p.Counts.TasksResolving++
			resolving = append(resolving, t)
		case models.Task_COMPLETED:
			p.Counts.TasksCompleted++
			completed = append(completed, t)
		}
	}
	for _, t := range running {
		if c := t.GetCellId(); !present[c] {
			if held[c] {
				p.Counts.HeldTasks++
			} else {
				p.FailOnLostCell = append(p.FailOnLostCell, t)
			}
		}
	}
	for _, t := range resolving {
		if t.GetUpdatedAt() < kickBefore {
			p.DemoteResolving = append(p.DemoteResolving, t)
		}
	}
	for _, t := range completed {
		switch {
		case t.GetFirstCompletedAt() < completedBefore:
			p.DeleteCompleted = append(p.DeleteCompleted, t)
		case t.GetUpdatedAt() < kickBefore && t.GetTaskDefinition().GetCompletionCallbackUrl() != "":
			p.KickCallbacks = append(p.KickCallbacks, t)
		}
	}
}

// Empty reports whether the plan changes nothing and auctions nothing.
func (p *Plan) Empty() bool {
	return len(p.RemoveEvacuating)+len(p.StaleUnclaimed)+len(p.Suspect)+len(p.UnclaimLost)+len(p.Missing)+
		len(p.Retire)+len(p.RemoveOrphanedSuspect)+len(p.RemoveExtraSuspect)+len(p.PromoteSuspect)+
		len(p.RestartCrashed)+len(p.UpdateInstances)+len(p.ExpirePending)+len(p.AuctionTasks)+len(p.FailOnLostCell)+
		len(p.DemoteResolving)+len(p.DeleteCompleted)+len(p.KickCallbacks) == 0
}
