package converger

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/gavel-scheduler/gavel/proto/models"
)

var t0 = time.Unix(1_800_000_000, 0)

func ago(d time.Duration) int64 { return t0.Add(-d).UnixNano() }

func desired(guid string, instances int32) *models.DesiredLRPSchedulingInfo {
	return &models.DesiredLRPSchedulingInfo{
		DesiredLrpKey:      &models.DesiredLRPKey{ProcessGuid: guid, Domain: "apps", LogGuid: guid},
		Instances:          instances,
		Rootfs:             "preloaded:busybox",
		DesiredLrpResource: &models.DesiredLRPResource{MemoryMb: 64, DiskMb: 64},
		ModificationTag:    &models.ModificationTag{Epoch: "d-" + guid, Index: 1},
		PlacementTags:      nil,
		VolumePlacement:    nil,
		MetricTags:         nil,
		Routes:             nil,
		Annotation:         "",
		UpdateStrategy:     models.UpdateStrategy_ROLLING,
	}
}

type row struct {
	guid     string
	index    int32
	state    models.ActualLRP_State
	presence models.ActualLRP_Presence
	cell     string
	since    time.Duration // ago
	crashes  int32
	domain   string
	// routes and tags are the stored internal routes and metric tags.
	routes []string
	tags   map[string]string
}

// instanceGuid is the guid lrp gives the row's instance.
func (r row) instanceGuid() string { return fmt.Sprintf("i-%s-%d-%d", r.guid, r.index, r.presence) }

// with stores internal routes and metric tags on the row.
func (r row) with(routes []string, tags map[string]string) row {
	r.routes, r.tags = routes, tags
	return r
}

// routed is desired(guid, instances) with internal routes and metric tags
// resolving to {"index": <index>, "id": <instance guid>, "app": "web"}.
func routed(guid string, instances int32, hosts ...string) *models.DesiredLRPSchedulingInfo {
	d := desired(guid, instances)
	d.Routes = internalRouter(hosts...)
	d.MetricTags = map[string]*models.MetricTagValue{
		"index": {Dynamic: models.MetricTagValue_INDEX}, "id": {Dynamic: models.MetricTagValue_INSTANCE_GUID}, "app": {Static: "web"},
	}
	return d
}

// internalRouter is a routes map of one internal-router entry for hosts.
func internalRouter(hosts ...string) map[string]*structpb.Value {
	list := make([]*structpb.Value, len(hosts))
	for i, h := range hosts {
		list[i] = structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{"hostname": structpb.NewStringValue(h)}})
	}
	return map[string]*structpb.Value{models.InternalRouter: structpb.NewListValue(&structpb.ListValue{Values: list})}
}

// inStep is a running row carrying what routed gives it.
func inStep(guid string, index int32, cell string, hosts ...string) row {
	r := running(guid, index, cell)
	return r.with(hosts, map[string]string{"index": fmt.Sprint(index), "id": r.instanceGuid(), "app": "web"})
}

func (r row) lrp() *models.ActualLRP {
	domain := r.domain
	if domain == "" {
		domain = "apps"
	}
	a := &models.ActualLRP{
		ActualLrpKey:    &models.ActualLRPKey{ProcessGuid: r.guid, Index: r.index, Domain: domain},
		State:           r.state,
		Presence:        r.presence,
		Since:           ago(r.since),
		CrashCount:      r.crashes,
		ModificationTag: &models.ModificationTag{Epoch: fmt.Sprintf("%s-%d-%d", r.guid, r.index, r.presence), Index: 2},
	}
	if r.cell != "" {
		a.ActualLrpInstanceKey = &models.ActualLRPInstanceKey{InstanceGuid: r.instanceGuid(), CellId: r.cell}
	}
	for _, h := range r.routes {
		a.ActualLrpInternalRoutes = append(a.ActualLrpInternalRoutes, &models.ActualLRPInternalRoute{Hostname: h})
	}
	a.MetricTags = r.tags
	return a
}

func running(guid string, index int32, cell string) row {
	return row{guid: guid, index: index, state: models.ActualLRP_RUNNING, cell: cell, since: time.Minute}
}

func suspect(guid string, index int32, cell string) row {
	r := running(guid, index, cell)
	r.presence = models.ActualLRP_SUSPECT
	return r
}

func unclaimed(guid string, index int32, since time.Duration) row {
	return row{guid: guid, index: index, state: models.ActualLRP_UNCLAIMED, since: since}
}

func crashed(guid string, index int32, count int32, since time.Duration) row {
	return row{guid: guid, index: index, state: models.ActualLRP_CRASHED, crashes: count, since: since}
}

type task struct {
	guid             string
	state            models.Task_State
	cell             string
	created, updated time.Duration // ago
	firstCompleted   time.Duration // ago
	callback         bool
}

func (t task) proto() *models.Task {
	out := &models.Task{
		TaskGuid: t.guid, Domain: "apps", State: t.state, CellId: t.cell,
		CreatedAt: ago(t.created), UpdatedAt: ago(t.updated),
		TaskDefinition: &models.TaskDefinition{Rootfs: "preloaded:busybox"},
	}
	if t.firstCompleted != 0 {
		out.FirstCompletedAt = ago(t.firstCompleted)
	}
	if t.callback {
		out.TaskDefinition.CompletionCallbackUrl = "http://127.0.0.1:1/done"
	}
	return out
}

// world builds a snapshot; every listed cell is present and was present at
// the previous pass too, unless the memory is given explicitly.
type world struct {
	desired []*models.DesiredLRPSchedulingInfo
	rows    []row
	tasks   []task
	cells   []string
	// known are cells the previous pass saw present (default: cells plus
	// every cell a row or task names).
	known []string
	state *models.ConvergerState
	conf  *models.CellLossConfirmation
	stale bool // domain "apps" not fresh
}

func (w world) snapshot() Snapshot {
	s := Snapshot{Now: t0, Revision: 7, Desired: w.desired, State: w.state, Confirmation: w.conf}
	if !w.stale {
		s.Domains = []*models.Domain{{Domain: "apps"}, {Domain: "expired", Ttl: 10, ExpiresAt: ago(time.Second)}}
	}
	for _, r := range w.rows {
		s.Actual = append(s.Actual, r.lrp())
	}
	for _, t := range w.tasks {
		s.Tasks = append(s.Tasks, t.proto())
	}
	for _, c := range w.cells {
		s.Cells = append(s.Cells, &models.CellPresence{CellId: c, RepAddress: "rep-of-" + c})
	}
	if s.State == nil {
		known := w.known
		if known == nil {
			known = slices.Clone(w.cells)
			for _, r := range w.rows {
				if r.cell != "" {
					known = append(known, r.cell)
				}
			}
			for _, t := range w.tasks {
				if t.cell != "" {
					known = append(known, t.cell)
				}
			}
		}
		s.State = &models.ConvergerState{Generation: 4}
		seen := map[string]bool{}
		for _, c := range known {
			if !seen[c] {
				seen[c] = true
				s.State.Cells = append(s.State.Cells, &models.ConvergerCell{CellId: c, LastSeen: ago(30 * time.Second)})
			}
		}
	}
	return s
}

// describe renders a plan's actions compactly: "action guid/index@cell",
// "create_missing guid[1 2]", "expire_pending task".
func describe(p *Plan) []string {
	var out []string
	for _, a := range p.Actions() {
		switch {
		case a.TaskGuid != "":
			out = append(out, a.Action+" "+a.TaskGuid)
		case a.Indices != nil:
			out = append(out, fmt.Sprintf("%s %s%v", a.Action, a.ProcessGuid, a.Indices))
		default:
			s := fmt.Sprintf("%s %s/%d", a.Action, a.ProcessGuid, *a.Index)
			if a.CellID != "" {
				s += "@" + a.CellID
			}
			out = append(out, s)
		}
	}
	return out
}

// healthy cells: three present, so one lost cell is a quarter of them.
var three = []string{"cell-1", "cell-2", "cell-3"}

func TestCalculateLRPRules(t *testing.T) {
	cases := []struct {
		name string
		w    world
		want []string
	}{
		{"converged: nothing to do", world{
			desired: []*models.DesiredLRPSchedulingInfo{desired("web", 2)},
			rows:    []row{running("web", 0, "cell-1"), running("web", 1, "cell-2")},
			cells:   three,
		}, nil},
		{"6.1.2 evacuating row on a lost cell is removed, one on a present cell kept", world{
			desired: []*models.DesiredLRPSchedulingInfo{desired("web", 2)},
			rows: []row{
				running("web", 0, "cell-1"), {guid: "web", index: 0, state: models.ActualLRP_RUNNING, presence: models.ActualLRP_EVACUATING, cell: "gone"},
				running("web", 1, "cell-2"), {guid: "web", index: 1, state: models.ActualLRP_RUNNING, presence: models.ActualLRP_EVACUATING, cell: "cell-3"},
			},
			cells: three,
		}, []string{"remove_evacuating web/0@gone"}},
		{"6.1.4 unclaimed for more than 30s is auctioned again, a recent one is not", world{
			desired: []*models.DesiredLRPSchedulingInfo{desired("web", 2)},
			rows:    []row{unclaimed("web", 0, 31*time.Second), unclaimed("web", 1, 10*time.Second)},
			cells:   three,
		}, []string{"auction_stale_unclaimed web/0"}},
		{"6.1.5 running and claimed instances on a lost cell become SUSPECT with a replacement", world{
			desired: []*models.DesiredLRPSchedulingInfo{desired("web", 3)},
			rows: []row{running("web", 0, "cell-4"), {guid: "web", index: 1, state: models.ActualLRP_CLAIMED, cell: "cell-4"},
				running("web", 2, "cell-1")},
			cells: three,
		}, []string{"suspect web/0@cell-4", "suspect web/1@cell-4"}},
		{"6.1.5 a replacement on a lost cell whose index has a SUSPECT is unclaimed", world{
			desired: []*models.DesiredLRPSchedulingInfo{desired("web", 1)},
			rows:    []row{running("web", 0, "cell-5"), suspect("web", 0, "cell-4")},
			cells:   []string{"cell-1", "cell-2", "cell-3", "cell-6", "cell-7"},
		}, []string{"unclaim_lost web/0@cell-5"}},
		{"6.1.6 missing indices are created", world{
			desired: []*models.DesiredLRPSchedulingInfo{desired("web", 4)},
			rows:    []row{running("web", 0, "cell-1"), running("web", 2, "cell-2")},
			cells:   three,
		}, []string{"create_missing web[1 3]"}},
		{"6.1.6 a crashed index is not missing", world{
			desired: []*models.DesiredLRPSchedulingInfo{desired("web", 1)},
			rows:    []row{crashed("web", 0, 5, time.Second)},
			cells:   three,
		}, nil},
		{"6.1.6 extra indices are retired in a fresh domain", world{
			desired: []*models.DesiredLRPSchedulingInfo{desired("web", 1)},
			rows:    []row{running("web", 0, "cell-1"), running("web", 1, "cell-2"), unclaimed("web", 2, time.Minute)},
			cells:   three,
		}, []string{"retire web/1@cell-2", "retire web/2"}},
		{"6.1.6 extra indices are kept in a stale domain", world{
			desired: []*models.DesiredLRPSchedulingInfo{desired("web", 1)},
			rows:    []row{running("web", 0, "cell-1"), running("web", 1, "cell-2")},
			cells:   three,
			stale:   true,
		}, nil},
		{"6.1.6 an extra crashed instance is retired, not restarted", world{
			desired: []*models.DesiredLRPSchedulingInfo{desired("web", 1)},
			rows:    []row{running("web", 0, "cell-1"), crashed("web", 1, 1, time.Hour)},
			cells:   three,
		}, []string{"retire web/1"}},
		{"6.1.7 orphans are retired in a fresh domain", world{
			rows:  []row{running("gone", 0, "cell-1"), crashed("gone", 1, 4, time.Hour)},
			cells: three,
		}, []string{"retire gone/0@cell-1", "retire gone/1"}},
		{"6.1.7 orphans are kept in a stale domain", world{
			rows:  []row{running("gone", 0, "cell-1")},
			cells: three,
			stale: true,
		}, nil},
		{"6.1.7 an orphan on a lost cell is retired, not replaced", world{
			rows:  []row{running("gone", 0, "cell-4")},
			cells: three,
		}, []string{"retire gone/0@cell-4"}},
		{"6.1.8 orphaned and extra SUSPECT rows are removed in a fresh domain", world{
			desired: []*models.DesiredLRPSchedulingInfo{desired("web", 1)},
			rows:    []row{suspect("gone", 0, "cell-4"), running("web", 0, "cell-1"), suspect("web", 1, "cell-4")},
			cells:   three,
		}, []string{"remove_orphaned_suspect gone/0@cell-4", "remove_orphaned_suspect web/1@cell-4"}},
		{"6.1.8 orphaned SUSPECT rows are kept in a stale domain", world{
			rows:  []row{suspect("gone", 0, "cell-4")},
			cells: three,
			stale: true,
		}, nil},
		{"6.1.9 a SUSPECT row whose replacement runs is removed, even with its cell back", world{
			desired: []*models.DesiredLRPSchedulingInfo{desired("web", 1)},
			rows:    []row{running("web", 0, "cell-1"), suspect("web", 0, "cell-2")},
			cells:   three,
		}, []string{"remove_extra_suspect web/0@cell-2"}},
		{"6.1.10 a SUSPECT row whose cell is back is promoted", world{
			desired: []*models.DesiredLRPSchedulingInfo{desired("web", 1)},
			rows:    []row{{guid: "web", index: 0, state: models.ActualLRP_CLAIMED, cell: "cell-3"}, suspect("web", 0, "cell-2")},
			cells:   three,
		}, []string{"promote_suspect web/0@cell-2"}},
		{"6.1.10 a SUSPECT row whose cell is still lost waits for its replacement", world{
			desired: []*models.DesiredLRPSchedulingInfo{desired("web", 1)},
			rows:    []row{unclaimed("web", 0, time.Second), suspect("web", 0, "cell-4")},
			cells:   three,
		}, nil},
		{"6.1.12 crashed instances restart once their backoff passed", world{
			desired: []*models.DesiredLRPSchedulingInfo{desired("web", 5)},
			rows: []row{
				crashed("web", 0, 3, 31*time.Second),            // 30 s backoff passed
				crashed("web", 1, 3, 20*time.Second),            // not yet
				crashed("web", 2, 8, 17*time.Minute),            // 16 min cap passed
				crashed("web", 3, 200, 24*time.Hour),            // given up
				crashed("web", 4, 5, 2*time.Minute+time.Second), // 2 min passed
			},
			cells: three,
		}, []string{"restart_crashed web/0", "restart_crashed web/2", "restart_crashed web/4"}},
		{"6.1.13 a running instance whose internal routes drifted is updated", world{
			desired: []*models.DesiredLRPSchedulingInfo{routed("web", 3, "web.apps.internal", "api.apps.internal")},
			rows: []row{
				inStep("web", 0, "cell-1", "web.apps.internal", "api.apps.internal"),
				inStep("web", 1, "cell-2", "web.apps.internal"),
				inStep("web", 2, "cell-3", "api.apps.internal", "web.apps.internal"),
			},
			cells: three,
		}, []string{"update_lrp_instance web/1@cell-2", "update_lrp_instance web/2@cell-3"}},
		{"6.1.14 a running instance whose metric tags drifted is updated", world{
			desired: []*models.DesiredLRPSchedulingInfo{routed("web", 4, "web.apps.internal")},
			rows: []row{
				inStep("web", 0, "cell-1", "web.apps.internal"),
				inStep("web", 1, "cell-2", "web.apps.internal").with([]string{"web.apps.internal"}, map[string]string{"index": "0", "id": "i-web-1-0", "app": "web"}),
				inStep("web", 2, "cell-3", "web.apps.internal").with([]string{"web.apps.internal"}, nil),
				inStep("web", 3, "cell-3", "web.apps.internal").with([]string{"web.apps.internal"},
					map[string]string{"index": "3", "id": "i-web-3-0", "app": "web", "extra": "x"}),
			},
			cells: three,
		}, []string{"update_lrp_instance web/1@cell-2", "update_lrp_instance web/2@cell-3", "update_lrp_instance web/3@cell-3"}},
		{"6.1.13/14 only running ORDINARY instances the desired LRP wants, on present cells", world{
			desired: []*models.DesiredLRPSchedulingInfo{routed("web", 4, "web.apps.internal"), desired("plain", 1)},
			rows: []row{
				{guid: "web", index: 0, state: models.ActualLRP_CLAIMED, cell: "cell-1"}, // reports when it starts
				{guid: "web", index: 0, state: models.ActualLRP_RUNNING, presence: models.ActualLRP_EVACUATING, cell: "cell-2"},
				running("web", 1, "cell-4"), // lost cell: §6.1.5
				suspect("web", 2, "cell-4"), unclaimed("web", 2, time.Second),
				crashed("web", 3, 5, time.Second),
				running("web", 4, "cell-1"),   // extra: retired
				running("gone", 0, "cell-2"),  // orphan: retired
				running("plain", 0, "cell-3"), // no routes, no tags, none stored
			},
			cells: three,
		}, []string{"suspect web/1@cell-4", "retire web/4@cell-1", "retire gone/0@cell-2"}},
		{"rules run in the order of §6.1", world{
			desired: []*models.DesiredLRPSchedulingInfo{desired("web", 4), routed("api", 1, "api.apps.internal")},
			rows: []row{
				crashed("api", 0, 3, time.Hour),
				running("api", 1, "cell-1"),
				running("web", 0, "cell-4"),
				unclaimed("web", 1, time.Hour),
				running("web", 2, "cell-2").with([]string{"stale.apps.internal"}, nil),
			},
			cells: three,
		}, []string{"auction_stale_unclaimed web/1", "suspect web/0@cell-4", "create_missing web[3]", "retire api/1@cell-1", "restart_crashed api/0",
			"update_lrp_instance web/2@cell-2"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := Calculate(tc.w.snapshot(), DefaultSettings())
			if got := describe(p); !slices.Equal(got, tc.want) {
				t.Fatalf("plan:\n  got  %q\n  want %q", got, tc.want)
			}
			if p.Cells.GuardRaised {
				t.Fatalf("guard raised: %+v", p.Cells)
			}
		})
	}
}

// An update carries which of the two drifted, the values the desired LRP
// gives the instance, and the cell's presence to reach its rep at.
func TestCalculateInstanceUpdates(t *testing.T) {
	w := world{
		desired: []*models.DesiredLRPSchedulingInfo{routed("web", 3, "web.apps.internal")},
		rows: []row{
			inStep("web", 0, "cell-1", "old.apps.internal"),
			inStep("web", 1, "cell-2", "web.apps.internal").with([]string{"web.apps.internal"}, map[string]string{"index": "1"}),
			running("web", 2, "cell-3"),
		},
		cells: three,
	}
	p := Calculate(w.snapshot(), DefaultSettings())
	if len(p.UpdateInstances) != 3 {
		t.Fatalf("updates %v", describe(p))
	}
	wantDrift := []models.Drift{{InternalRoutes: true}, {MetricTags: true}, {InternalRoutes: true, MetricTags: true}}
	wantRule := []string{"6.1.13", "6.1.14", "6.1.13+14"}
	actions := p.Actions()
	for i, u := range p.UpdateInstances {
		if u.Drift != wantDrift[i] || actions[i].Rule != wantRule[i] {
			t.Errorf("update %d: drift %+v rule %s, want %+v %s", i, u.Drift, actions[i].Rule, wantDrift[i], wantRule[i])
		}
		wantTags := map[string]string{"index": fmt.Sprint(i), "id": w.rows[i].instanceGuid(), "app": "web"}
		if len(u.InternalRoutes) != 1 || u.InternalRoutes[0].Hostname != "web.apps.internal" || !maps.Equal(u.MetricTags, wantTags) {
			t.Errorf("update %d carries %v %v", i, u.InternalRoutes, u.MetricTags)
		}
		if u.Cell.GetRepAddress() != "rep-of-"+w.rows[i].cell || u.Actual.InstanceGuid() != w.rows[i].instanceGuid() {
			t.Errorf("update %d goes to %v for %s", i, u.Cell, u.Actual.InstanceGuid())
		}
	}
	if p.Empty() {
		t.Fatal("a plan of updates reads as empty")
	}

	// Bad internal-router entries are skipped, as the rep skips them: an
	// instance carrying the good ones is in step.
	d := routed("web", 1)
	bad, err := structpb.NewValue([]any{"junk", map[string]any{"hostname": "web.apps.internal"}, map[string]any{}})
	if err != nil {
		t.Fatal(err)
	}
	d.Routes[models.InternalRouter] = bad
	w = world{desired: []*models.DesiredLRPSchedulingInfo{d}, rows: []row{inStep("web", 0, "cell-1", "web.apps.internal")}, cells: three}
	if p := Calculate(w.snapshot(), DefaultSettings()); len(p.UpdateInstances) != 0 {
		t.Fatalf("malformed routes: %v", describe(p))
	}
}

func TestCalculateTaskRules(t *testing.T) {
	w := world{
		cells: three,
		tasks: []task{
			{guid: "old-pending", state: models.Task_PENDING, created: 31 * time.Minute, updated: 31 * time.Minute},
			{guid: "pending", state: models.Task_PENDING, created: 29 * time.Minute, updated: time.Minute},
			{guid: "lost", state: models.Task_RUNNING, cell: "cell-4", created: time.Minute, updated: time.Minute},
			{guid: "running", state: models.Task_RUNNING, cell: "cell-1", created: time.Hour, updated: time.Hour},
			{guid: "stuck-resolving", state: models.Task_RESOLVING, created: time.Hour, updated: 31 * time.Second, firstCompleted: 40 * time.Second},
			{guid: "resolving", state: models.Task_RESOLVING, created: time.Hour, updated: 10 * time.Second, firstCompleted: 40 * time.Second},
			{guid: "expired", state: models.Task_COMPLETED, created: time.Hour, updated: 31 * time.Second, firstCompleted: 121 * time.Second, callback: true},
			{guid: "kick", state: models.Task_COMPLETED, created: time.Hour, updated: 31 * time.Second, firstCompleted: 60 * time.Second, callback: true},
			{guid: "no-callback", state: models.Task_COMPLETED, created: time.Hour, updated: 31 * time.Second, firstCompleted: 60 * time.Second},
			{guid: "recent", state: models.Task_COMPLETED, created: time.Hour, updated: 10 * time.Second, firstCompleted: 10 * time.Second, callback: true},
		},
	}
	p := Calculate(w.snapshot(), DefaultSettings())
	want := []string{
		"expire_pending old-pending",       // §6.2.1
		"auction_pending pending",          // §6.2.2
		"fail_on_lost_cell lost",           // §6.2.3
		"demote_resolving stuck-resolving", // §6.2.4
		"delete_completed expired",         // §6.2.5 (not also kicked)
		"kick_callbacks kick",              // §6.2.6 (only with a callback URL)
	}
	if got := describe(p); !slices.Equal(got, want) {
		t.Fatalf("plan:\n  got  %q\n  want %q", got, want)
	}
	if c := p.Counts; c.TasksPending != 2 || c.TasksRunning != 2 || c.TasksResolving != 2 || c.TasksCompleted != 4 {
		t.Fatalf("counts %+v", c)
	}
}

func TestCalculateCounts(t *testing.T) {
	w := world{
		desired: []*models.DesiredLRPSchedulingInfo{desired("web", 4), desired("api", 1)},
		rows: []row{
			running("web", 0, "cell-1"), {guid: "web", index: 1, state: models.ActualLRP_CLAIMED, cell: "cell-2"},
			crashed("web", 2, 4, time.Second), running("api", 0, "cell-1"), running("api", 1, "cell-1"),
			suspect("api", 0, "cell-4"),
		},
		cells: three,
	}
	p := Calculate(w.snapshot(), DefaultSettings())
	want := Counts{Running: 3, Claimed: 1, Crashed: 1, SuspectRunning: 1, Missing: 1, Extra: 1,
		DesiredInstances: 5, CrashingDesired: 1, FreshDomains: 1}
	if p.Counts != want {
		t.Fatalf("counts\n got  %+v\n want %+v", p.Counts, want)
	}
}

// lostWorld has instances and a task on cell-2 and cell-3, which the
// previous pass saw present, and only cell-1 present now.
func lostWorld() world {
	return world{
		desired: []*models.DesiredLRPSchedulingInfo{desired("web", 3)},
		rows:    []row{running("web", 0, "cell-1"), running("web", 1, "cell-2"), running("web", 2, "cell-3")},
		tasks:   []task{{guid: "job", state: models.Task_RUNNING, cell: "cell-3", created: time.Minute, updated: time.Minute}},
		cells:   []string{"cell-1"},
		known:   three,
	}
}

func TestGuardHoldsMassLoss(t *testing.T) {
	p := Calculate(lostWorld().snapshot(), DefaultSettings())
	if got := describe(p); got != nil {
		t.Fatalf("2 of 3 cells lost at once: plan should replace nothing, got %q", got)
	}
	if !p.Cells.GuardRaised || !slices.Equal(p.Cells.Held, []string{"cell-2", "cell-3"}) || len(p.Cells.Lost) != 0 {
		t.Fatalf("cells %+v", p.Cells)
	}
	if p.Counts.HeldInstances != 2 || p.Counts.HeldTasks != 1 {
		t.Fatalf("held counts %+v", p.Counts)
	}
	if p.State.GuardRaisedAt != t0.UnixNano() || p.State.Generation != 5 {
		t.Fatalf("state %v", p.State)
	}
	for _, c := range p.State.Cells {
		if want := c.CellId != "cell-1"; c.Held != want {
			t.Fatalf("cell %s held=%v", c.CellId, c.Held)
		}
	}
}

func TestGuardLetsOrdinaryLossThrough(t *testing.T) {
	w := lostWorld()
	w.cells = []string{"cell-1", "cell-3"} // only cell-2 lost: a third
	p := Calculate(w.snapshot(), DefaultSettings())
	if got, want := describe(p), []string{"suspect web/1@cell-2"}; !slices.Equal(got, want) {
		t.Fatalf("plan %q, want %q", got, want)
	}
	if p.Cells.GuardRaised || !slices.Equal(p.Cells.Lost, []string{"cell-2"}) {
		t.Fatalf("cells %+v", p.Cells)
	}
}

func TestGuardThresholdIsASetting(t *testing.T) {
	set := DefaultSettings()
	set.GuardThreshold = 0.7 // 2 of 3 is under it
	p := Calculate(lostWorld().snapshot(), set)
	want := []string{"suspect web/1@cell-2", "suspect web/2@cell-3", "fail_on_lost_cell job"}
	if got := describe(p); !slices.Equal(got, want) {
		t.Fatalf("plan %q, want %q", got, want)
	}
}

// passes runs Calculate over successive snapshots, carrying the memory.
func passes(t *testing.T, set Settings, steps ...func(*world, *time.Time)) *Plan {
	t.Helper()
	var p *Plan
	var state *models.ConvergerState
	now := t0
	for _, step := range steps {
		w := lostWorld()
		step(&w, &now)
		s := w.snapshot()
		if state != nil {
			s.State = state
		}
		s.Now = now
		p = Calculate(s, set)
		state = p.State
	}
	return p
}

func TestGuardStaysRaisedUntilConfirmed(t *testing.T) {
	lose := func(w *world, now *time.Time) {}
	later := func(d time.Duration) func(*world, *time.Time) {
		return func(w *world, now *time.Time) { *now = now.Add(d) }
	}
	// Long after the window, the held cells are still held.
	p := passes(t, DefaultSettings(), lose, later(time.Minute), later(10*time.Minute))
	if !p.Cells.GuardRaised || len(p.Cells.Held) != 2 || describe(p) != nil {
		t.Fatalf("guard lapsed: %+v %q", p.Cells, describe(p))
	}
	// An operator confirms one of them: it is acted on, the other stays held.
	confirm := func(ids ...string) func(*world, *time.Time) {
		return func(w *world, now *time.Time) {
			*now = now.Add(time.Second)
			w.conf = &models.CellLossConfirmation{CellIds: ids, ConfirmedAt: now.UnixNano()}
		}
	}
	p = passes(t, DefaultSettings(), lose, later(time.Minute), confirm("cell-2"))
	if got, want := describe(p), []string{"suspect web/1@cell-2"}; !slices.Equal(got, want) {
		t.Fatalf("after confirming cell-2: %q, want %q", got, want)
	}
	if !p.Cells.GuardRaised || !slices.Equal(p.Cells.Held, []string{"cell-3"}) || !slices.Equal(p.Cells.Confirmed, []string{"cell-2"}) {
		t.Fatalf("cells %+v", p.Cells)
	}
	// Confirming all releases everything; the confirmation is applied once
	// and a later pass does not re-hold the confirmed cells.
	p = passes(t, DefaultSettings(), lose, confirm(), confirm("cell-2", "cell-3"), later(time.Second))
	want := []string{"suspect web/1@cell-2", "suspect web/2@cell-3", "fail_on_lost_cell job"}
	if got := describe(p); !slices.Equal(got, want) {
		t.Fatalf("after confirming all: %q, want %q", got, want)
	}
	if p.Cells.GuardRaised || len(p.Cells.Held) != 0 || p.State.GuardRaisedAt != 0 {
		t.Fatalf("cells %+v state %v", p.Cells, p.State)
	}
}

func TestGuardIgnoresAnOldConfirmation(t *testing.T) {
	old := func(w *world, now *time.Time) {
		w.conf = &models.CellLossConfirmation{CellIds: []string{"cell-2", "cell-3"}, ConfirmedAt: ago(time.Hour)}
	}
	w := lostWorld()
	old(&w, nil)
	s := w.snapshot()
	s.State.AppliedConfirmationAt = ago(time.Hour)
	p := Calculate(s, DefaultSettings())
	if !p.Cells.GuardRaised || describe(p) != nil {
		t.Fatalf("an already applied confirmation released a new loss: %+v %q", p.Cells, describe(p))
	}
}

func TestGuardReleasesCellsThatReturn(t *testing.T) {
	lose := func(w *world, now *time.Time) {}
	back := func(w *world, now *time.Time) {
		*now = now.Add(20 * time.Second)
		w.cells = three
	}
	p := passes(t, DefaultSettings(), lose, back)
	if p.Cells.GuardRaised || describe(p) != nil || p.State.GuardRaisedAt != 0 {
		t.Fatalf("after the cells returned: %+v %q", p.Cells, describe(p))
	}
}

func TestGuardLetsGradualLossThrough(t *testing.T) {
	// cell-3 is lost, then cell-2 a window later: two separate failures.
	first := func(w *world, now *time.Time) { w.cells = []string{"cell-1", "cell-2"} }
	second := func(w *world, now *time.Time) { *now = now.Add(20 * time.Second) }
	p := passes(t, DefaultSettings(), first, second)
	if p.Cells.GuardRaised {
		t.Fatalf("guard raised for losses a window apart: %+v", p.Cells)
	}
	if got, want := describe(p), []string{"suspect web/1@cell-2", "suspect web/2@cell-3", "fail_on_lost_cell job"}; !slices.Equal(got, want) {
		t.Fatalf("plan %q, want %q", got, want)
	}
}

func TestGuardCountsLossesInsideOneWindowTogether(t *testing.T) {
	// cell-3 is lost (and acted on), then cell-2 inside the same window:
	// together they are two thirds, so cell-2 (and cell-3) are held.
	first := func(w *world, now *time.Time) { w.cells = []string{"cell-1", "cell-2"} }
	second := func(w *world, now *time.Time) { *now = now.Add(5 * time.Second) }
	p := passes(t, DefaultSettings(), first, second)
	if !p.Cells.GuardRaised || !slices.Equal(p.Cells.Held, []string{"cell-2", "cell-3"}) || describe(p) != nil {
		t.Fatalf("%+v %q", p.Cells, describe(p))
	}
}

func TestGuardHoldsWithoutMemory(t *testing.T) {
	// A converger starting with no memory, while rows name cells that are
	// gone: they count as lost now, so a mass loss is still held.
	w := lostWorld()
	s := w.snapshot()
	s.State = nil
	p := Calculate(s, DefaultSettings())
	if !p.Cells.GuardRaised || describe(p) != nil || p.State.Generation != 1 {
		t.Fatalf("%+v %q %v", p.Cells, describe(p), p.State)
	}
}

func TestGuardForgetsCellsNothingNamesAnyMore(t *testing.T) {
	w := world{cells: []string{"cell-1", "cell-2", "cell-3"}}
	s := w.snapshot()
	s.State = &models.ConvergerState{Generation: 1, Cells: []*models.ConvergerCell{
		{CellId: "cell-1", LastSeen: ago(time.Minute)},
		{CellId: "old", LastSeen: ago(time.Hour), LostAt: ago(50 * time.Minute)},
		{CellId: "recent", LastSeen: ago(10 * time.Second), LostAt: ago(5 * time.Second)},
	}}
	p := Calculate(s, DefaultSettings())
	var ids []string
	for _, c := range p.State.Cells {
		ids = append(ids, c.CellId)
	}
	if want := []string{"cell-1", "cell-2", "cell-3", "recent"}; !slices.Equal(ids, want) {
		t.Fatalf("remembered %v, want %v", ids, want)
	}
}

func TestGuardHoldsEvacuatingRowsAndRetiresOnHeldCells(t *testing.T) {
	w := lostWorld()
	w.desired = []*models.DesiredLRPSchedulingInfo{desired("web", 1)}
	w.rows = append(w.rows,
		row{guid: "web", index: 0, state: models.ActualLRP_RUNNING, presence: models.ActualLRP_EVACUATING, cell: "cell-2"},
		running("gone", 0, "cell-3"), suspect("gone", 1, "cell-2"))
	p := Calculate(w.snapshot(), DefaultSettings())
	if !p.Cells.GuardRaised || describe(p) != nil {
		t.Fatalf("held cells were acted on: %q", describe(p))
	}
}

func TestPlanRequestsKeepRuleOrderAcrossChunks(t *testing.T) {
	w := world{
		desired: []*models.DesiredLRPSchedulingInfo{desired("web", 6)},
		rows: []row{running("web", 0, "cell-4"), running("web", 1, "cell-4"), crashed("web", 2, 1, time.Hour),
			crashed("web", 3, 1, time.Hour), running("web", 6, "cell-1")},
		cells: []string{"cell-1", "cell-2", "cell-3", "cell-5", "cell-6"},
		tasks: []task{
			{guid: "a", state: models.Task_PENDING, created: time.Hour, updated: time.Hour},
			{guid: "b", state: models.Task_COMPLETED, updated: time.Hour, firstCompleted: time.Hour},
		},
	}
	p := Calculate(w.snapshot(), DefaultSettings())
	reqs := p.lrpRequests(2, 1<<20)
	var got []string
	for _, r := range reqs {
		if n := len(r.Suspect) + len(r.CreateMissing) + len(r.Retire) + len(r.RestartCrashed); n > 2 {
			t.Fatalf("request of %d actions", n)
		}
		for _, a := range r.Suspect {
			got = append(got, fmt.Sprintf("suspect/%d", a.Index()))
		}
		for _, m := range r.CreateMissing {
			got = append(got, fmt.Sprintf("missing%v", m.Indices))
		}
		for _, a := range r.Retire {
			got = append(got, fmt.Sprintf("retire/%d", a.ActualLrp.Index()))
		}
		for _, a := range r.RestartCrashed {
			got = append(got, fmt.Sprintf("restart/%d", a.Index()))
		}
	}
	want := []string{"suspect/0", "suspect/1", "missing[4 5]", "retire/6", "restart/2", "restart/3"}
	if !slices.Equal(got, want) {
		t.Fatalf("chunked requests %v, want %v", got, want)
	}
	for _, r := range reqs {
		if err := r.Validate(); err != nil {
			t.Fatalf("request does not validate: %v", err)
		}
	}
	tr := p.TaskRequests()
	if len(tr) != 1 || len(tr[0].ExpirePending) != 1 || len(tr[0].DeleteCompleted) != 1 {
		t.Fatalf("task requests %v", tr)
	}
	if err := tr[0].Validate(); err != nil {
		t.Fatal(err)
	}
	// Start requests: one per process, in order, indices deduplicated.
	starts := p.startRequests([]*models.ActualLRPKey{{ProcessGuid: "web", Index: 4}, {ProcessGuid: "gone", Index: 0}, {ProcessGuid: "web", Index: 2}, {ProcessGuid: "web", Index: 4}})
	if len(starts) != 1 || !slices.Equal(starts[0].Indices, []int32{4, 2}) || starts[0].Resource.MemoryMb != 64 {
		t.Fatalf("start requests %v", starts)
	}
}

func TestPlanPrints(t *testing.T) {
	p := Calculate(lostWorld().snapshot(), DefaultSettings())
	var b strings.Builder
	if err := p.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "GUARD RAISED") || !strings.Contains(b.String(), "held cell-2,cell-3") || !strings.Contains(b.String(), "nothing to do") {
		t.Fatalf("table:\n%s", b.String())
	}
	w := lostWorld()
	w.cells = three
	w.rows = append(w.rows, unclaimed("web", 3, time.Hour))
	p = Calculate(w.snapshot(), DefaultSettings())
	b.Reset()
	if err := p.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	if strings.Count(b.String(), "\n") != 1 || !strings.Contains(b.String(), `"action":"retire"`) || !strings.Contains(b.String(), `"rule":"6.1.6"`) {
		t.Fatalf("json: %s", b.String())
	}
}
