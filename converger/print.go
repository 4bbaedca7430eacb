package converger

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gavel-scheduler/gavel/proto/models"
)

// Action is one step of a plan, as `gavel converge --dry-run` prints it.
type Action struct {
	// Rule is the diego-facts section the step follows, e.g. "6.1.5".
	Rule string `json:"rule"`
	// Action is the step, named like the request field that carries it.
	Action      string  `json:"action"`
	ProcessGuid string  `json:"process_guid,omitempty"`
	Index       *int32  `json:"index,omitempty"`
	Indices     []int32 `json:"indices,omitempty"`
	Presence    string  `json:"presence,omitempty"`
	State       string  `json:"state,omitempty"`
	CellID      string  `json:"cell_id,omitempty"`
	TaskGuid    string  `json:"task_guid,omitempty"`
	// Detail says why, where the action alone does not (extra or orphan).
	Detail string `json:"detail,omitempty"`
}

// Actions lists the plan's steps in the order a pass runs them.
func (p *Plan) Actions() []Action {
	var out []Action
	lrp := func(rule, action string, a *models.ActualLRP, detail string) {
		i := a.Index()
		out = append(out, Action{Rule: rule, Action: action, ProcessGuid: a.ProcessGuid(), Index: &i,
			Presence: a.GetPresence().String(), State: a.GetState().String(), CellID: a.CellID(), Detail: detail})
	}
	task := func(rule, action string, t *models.Task) {
		out = append(out, Action{Rule: rule, Action: action, TaskGuid: t.GetTaskGuid(), State: t.GetState().String(), CellID: t.GetCellId()})
	}
	retirementDetail := func(r Retirement) string {
		if r.Desired == nil {
			return "orphan: no desired LRP"
		}
		return fmt.Sprintf("extra: desired instances %d", r.Desired.GetInstances())
	}
	for _, a := range p.RemoveEvacuating {
		lrp("6.1.2", "remove_evacuating", a, "")
	}
	for _, a := range p.StaleUnclaimed {
		lrp("6.1.4", "auction_stale_unclaimed", a, "")
	}
	for _, a := range p.Suspect {
		lrp("6.1.5", "suspect", a, "cell lost: kept as SUSPECT, replacement auctioned")
	}
	for _, a := range p.UnclaimLost {
		lrp("6.1.5", "unclaim_lost", a, "cell lost, index already has a SUSPECT")
	}
	for _, m := range p.Missing {
		out = append(out, Action{Rule: "6.1.6", Action: "create_missing", ProcessGuid: m.Desired.ProcessGuid(), Indices: m.Indices})
	}
	for _, r := range p.Retire {
		rule := "6.1.6"
		if r.Desired == nil {
			rule = "6.1.7"
		}
		lrp(rule, "retire", r.Actual, retirementDetail(r))
	}
	for _, r := range p.RemoveOrphanedSuspect {
		lrp("6.1.8", "remove_orphaned_suspect", r.Actual, retirementDetail(r))
	}
	for _, a := range p.RemoveExtraSuspect {
		lrp("6.1.9", "remove_extra_suspect", a, "replacement RUNNING")
	}
	for _, a := range p.PromoteSuspect {
		lrp("6.1.10", "promote_suspect", a, "cell back")
	}
	for _, a := range p.RestartCrashed {
		lrp("6.1.12", "restart_crashed", a, fmt.Sprintf("crash count %d", a.GetCrashCount()))
	}
	for _, u := range p.UpdateInstances {
		rule, detail := "6.1.13", "internal routes drifted"
		switch {
		case u.Drift.InternalRoutes && u.Drift.MetricTags:
			rule, detail = "6.1.13+14", "internal routes and metric tags drifted"
		case u.Drift.MetricTags:
			rule, detail = "6.1.14", "metric tags drifted"
		}
		lrp(rule, ActionUpdateInstance, u.Actual, detail)
	}
	for _, t := range p.ExpirePending {
		task("6.2.1", "expire_pending", t)
	}
	for _, t := range p.AuctionTasks {
		task("6.2.2", "auction_pending", t)
	}
	for _, t := range p.FailOnLostCell {
		task("6.2.3", "fail_on_lost_cell", t)
	}
	for _, t := range p.DemoteResolving {
		task("6.2.4", "demote_resolving", t)
	}
	for _, t := range p.DeleteCompleted {
		task("6.2.5", "delete_completed", t)
	}
	for _, t := range p.KickCallbacks {
		task("6.2.6", "kick_callbacks", t)
	}
	return out
}

// Summary is a plan as `gavel converge --dry-run -o json` prints it.
type Summary struct {
	Revision int64      `json:"revision"`
	Now      time.Time  `json:"now"`
	Cells    CellReport `json:"cells"`
	Counts   Counts     `json:"counts"`
	Actions  []Action   `json:"actions"`
}

// Summary returns the printable form of the plan.
func (p *Plan) Summary() Summary {
	a := p.Actions()
	if a == nil {
		a = []Action{}
	}
	return Summary{Revision: p.Revision, Now: p.Now.UTC(), Cells: p.Cells, Counts: p.Counts, Actions: a}
}

// WriteJSON writes the plan as one JSON object on one line.
func (p *Plan) WriteJSON(w io.Writer) error {
	b, err := json.Marshal(p.Summary())
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// WriteTable writes the plan for a person: what the pass saw, then its
// steps as a table.
func (p *Plan) WriteTable(w io.Writer) error {
	c := p.Counts
	guard := "guard not raised"
	if p.Cells.GuardRaised {
		guard = fmt.Sprintf("GUARD RAISED (%.0f%% of cells vanished at once; confirm with `gavel converge --confirm-cell-loss`)", p.Cells.WaveShare*100)
	}
	fmt.Fprintf(w, "revision %d: %d cells present, lost %s, held %s; %s\n",
		p.Revision, p.Cells.Present, list(p.Cells.Lost), list(p.Cells.Held), guard)
	fmt.Fprintf(w, "instances: %d desired, %d running, %d claimed, %d unclaimed, %d crashed; %d missing, %d extra; suspect %d running, %d claimed\n",
		c.DesiredInstances, c.Running, c.Claimed, c.Unclaimed, c.Crashed, c.Missing, c.Extra, c.SuspectRunning, c.SuspectClaimed)
	if c.HeldInstances+c.HeldTasks > 0 {
		fmt.Fprintf(w, "held back by the guard: %d instances, %d tasks\n", c.HeldInstances, c.HeldTasks)
	}
	fmt.Fprintf(w, "tasks: %d pending, %d running, %d completed, %d resolving\n",
		c.TasksPending, c.TasksRunning, c.TasksCompleted, c.TasksResolving)
	actions := p.Actions()
	if len(actions) == 0 {
		_, err := fmt.Fprintln(w, "nothing to do")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RULE\tACTION\tPROCESS_GUID\tINDEX\tSTATE\tCELL\tTASK\tDETAIL")
	for _, a := range actions {
		index := "-"
		switch {
		case a.Index != nil:
			index = strconv.Itoa(int(*a.Index))
		case len(a.Indices) > 0:
			index = indexList(a.Indices)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.Rule, a.Action, dash(a.ProcessGuid), index,
			dash(a.State), dash(a.CellID), dash(a.TaskGuid), dash(a.Detail))
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func list(ids []string) string {
	if len(ids) == 0 {
		return "none"
	}
	return strings.Join(ids, ",")
}

// indexList shortens long index lists: "0,1,2 … (+97)".
func indexList(idx []int32) string {
	const show = 8
	parts := make([]string, 0, min(len(idx), show))
	for _, i := range idx[:min(len(idx), show)] {
		parts = append(parts, strconv.Itoa(int(i)))
	}
	s := strings.Join(parts, ",")
	if len(idx) > show {
		s += fmt.Sprintf(" … (+%d)", len(idx)-show)
	}
	return s
}
