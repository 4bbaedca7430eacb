package converger

import (
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/gavel-scheduler/gavel/bbs/db"
	"github.com/gavel-scheduler/gavel/proto/models"
)

// A missing index is recreated through the BBS and auctioned: the
// auctioneer, with no cells to offer, reports the placement failure back on
// the very row the converger created. Later, the unclaimed rows are stale
// and auctioned again.
func TestMissingIndexIsRecreatedAndAuctioned(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.desire("web", 3)
	if _, err := e.bbs.RemoveActualLRP(e.ctx(), &models.RemoveActualLRPRequest{ProcessGuid: "web", Index: 1}); err != nil {
		t.Fatal(err)
	}
	p, r := e.pass()
	if len(p.Missing) != 1 || applied(r, "create_missing") != 1 || r.LRPAuctions != 1 {
		t.Fatalf("plan missing %v, report %+v", p.Missing, r)
	}
	e.pollUntil("the auctioneer to report on the recreated row", func() bool {
		row := e.rows("web", 1)[models.ActualLRP_ORDINARY]
		return row != nil && row.State == models.ActualLRP_UNCLAIMED && row.PlacementError != ""
	})
	if got := testutil.ToFloat64(e.metrics.Missing); got != 1 {
		t.Fatalf("missing gauge %v", got)
	}

	e.later(31 * time.Second)
	p, r = e.pass()
	if len(p.StaleUnclaimed) != 3 || r.LRPAuctions != 3 || len(p.Missing) != 0 {
		t.Fatalf("stale %d, auctions %d, missing %v", len(p.StaleUnclaimed), r.LRPAuctions, p.Missing)
	}
}

// A crashed instance waits out its backoff, then is unclaimed for a restart
// with its crash count kept.
func TestCrashedInstanceRestartsAfterBackoff(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.cell("cell-1", 15*time.Second)
	e.desire("web", 1)
	key := &models.ActualLRPKey{ProcessGuid: "web", Index: 0, Domain: "apps"}
	for range 3 {
		e.start("web", 0, "cell-1")
		if _, err := e.bbs.CrashActualLRP(e.ctx(), &models.CrashActualLRPRequest{ActualLrpKey: key, ActualLrpInstanceKey: instanceKey("web", 0, "cell-1"), ErrorMessage: "exit 1"}); err != nil {
			t.Fatal(err)
		}
	}
	row := e.rows("web", 0)[models.ActualLRP_ORDINARY]
	if row.State != models.ActualLRP_CRASHED || row.CrashCount != 3 {
		t.Fatalf("row %v", row)
	}
	p, _ := e.pass()
	if len(p.RestartCrashed) != 0 || e.rows("web", 0)[models.ActualLRP_ORDINARY].State != models.ActualLRP_CRASHED {
		t.Fatal("restarted inside its backoff")
	}
	if got := testutil.ToFloat64(e.metrics.Crashed); got != 1 {
		t.Fatalf("crashed gauge %v", got)
	}
	e.later(31 * time.Second)
	_, r := e.pass()
	if applied(r, "restart_crashed") != 1 || r.LRPAuctions != 1 {
		t.Fatalf("report %+v", r)
	}
	row = e.rows("web", 0)[models.ActualLRP_ORDINARY]
	if row.State != models.ActualLRP_UNCLAIMED || row.CrashCount != 3 {
		t.Fatalf("restarted row %v", row)
	}
}

// The instances of a cell whose presence lapses become SUSPECT (still
// RUNNING, still routable) and get an UNCLAIMED replacement; when the cell's
// presence returns, the suspects are promoted back and the replacements go.
func TestLostCellInstancesAreSuspectThenPromoted(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.cell("cell-1", 15*time.Second)
	e.cell("cell-2", 15*time.Second)
	e.cell("cell-3", 2*time.Second) // never refreshed: lapses
	e.desire("web", 4)
	for i, c := range []string{"cell-1", "cell-2", "cell-3", "cell-3"} {
		e.start("web", int32(i), c)
	}
	if p, _ := e.pass(); len(p.Suspect)+len(p.UnclaimLost) > 0 {
		t.Fatalf("acted while every cell is present: %v", describe(p))
	}
	e.pollUntil("cell-3's presence to lapse", func() bool {
		resp, err := e.bbs.GetCell(e.ctx(), &models.GetCellRequest{CellId: "cell-3"})
		return err != nil && resp == nil
	})
	p, r := e.pass()
	if !equalStrings(p.Cells.Lost, "cell-3") || applied(r, "suspect") != 2 || r.LRPAuctions != 2 {
		t.Fatalf("cells %+v report %+v", p.Cells, r)
	}
	for _, i := range []int32{2, 3} {
		rows := e.rows("web", i)
		if s := rows[models.ActualLRP_SUSPECT]; s == nil || s.State != models.ActualLRP_RUNNING || s.CellID() != "cell-3" {
			t.Fatalf("index %d suspect %v", i, s)
		}
		if o := rows[models.ActualLRP_ORDINARY]; o == nil || o.State != models.ActualLRP_UNCLAIMED {
			t.Fatalf("index %d replacement %v", i, o)
		}
	}
	if got := testutil.ToFloat64(e.metrics.SuspectRunning); got != 0 {
		t.Fatalf("suspect gauge counted before the pass saw them: %v", got)
	}
	// A second pass leaves the suspects alone while the cell stays lost.
	if p, _ := e.pass(); len(p.Suspect)+len(p.PromoteSuspect)+len(p.RemoveExtraSuspect) != 0 || p.Counts.SuspectRunning != 2 {
		t.Fatalf("second pass %v counts %+v", describe(p), p.Counts)
	}
	if got := testutil.ToFloat64(e.metrics.SuspectRunning); got != 2 {
		t.Fatalf("suspect gauge %v", got)
	}
	// Index 3's replacement starts elsewhere: its suspect goes (the BBS
	// does that on start). Then cell-3 returns: index 2 is promoted.
	e.start("web", 3, "cell-1")
	if rows := e.rows("web", 3); rows[models.ActualLRP_SUSPECT] != nil {
		t.Fatalf("suspect survived its replacement's start: %v", rows)
	}
	e.cell("cell-3", 15*time.Second)
	p, r = e.pass()
	if applied(r, "promote_suspect") != 1 || len(p.PromoteSuspect) != 1 {
		t.Fatalf("plan %v report %+v", describe(p), r)
	}
	rows := e.rows("web", 2)
	if o := rows[models.ActualLRP_ORDINARY]; o == nil || o.State != models.ActualLRP_RUNNING || o.CellID() != "cell-3" || rows[models.ActualLRP_SUSPECT] != nil {
		t.Fatalf("after promotion %v", rows)
	}
}

// Killing two of three cells' presences at once replaces nothing and raises
// the guard; an operator's confirmation lets the next pass proceed.
func TestMassCellLossIsHeldUntilConfirmed(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.cell("cell-1", 15*time.Second)
	lease2, lease3 := e.cell("cell-2", 15*time.Second), e.cell("cell-3", 15*time.Second)
	e.desire("web", 3)
	for i, c := range []string{"cell-1", "cell-2", "cell-3"} {
		e.start("web", int32(i), c)
	}
	if _, err := e.bbs.DesireTask(e.ctx(), &models.DesireTaskRequest{TaskGuid: "job", Domain: "apps",
		TaskDefinition: &models.TaskDefinition{Rootfs: "preloaded:busybox", Action: desiredLRP("x", 1).Action}}); err != nil {
		t.Fatal(err)
	}
	// With no cells, the auctioneer rejects the task's first auction; let
	// that land before the task starts.
	e.pollUntil("the task's first auction to be rejected", func() bool { return e.task("job").RejectionCount == 1 })
	if _, err := e.bbs.StartTask(e.ctx(), &models.StartTaskRequest{TaskGuid: "job", CellId: "cell-3"}); err != nil {
		t.Fatal(err)
	}
	e.pass()
	e.lose(lease2, lease3)

	p, r := e.pass()
	if !p.Cells.GuardRaised || !equalStrings(p.Cells.Held, "cell-2", "cell-3") || len(r.Actions) != 0 {
		t.Fatalf("cells %+v actions %v", p.Cells, r.Actions)
	}
	if got := testutil.ToFloat64(e.metrics.GuardRaised); got != 1 {
		t.Fatalf("guard gauge %v", got)
	}
	for i := int32(1); i < 3; i++ {
		if rows := e.rows("web", i); rows[models.ActualLRP_SUSPECT] != nil || rows[models.ActualLRP_ORDINARY].State != models.ActualLRP_RUNNING {
			t.Fatalf("index %d was replaced: %v", i, rows)
		}
	}
	if st := e.task("job").State; st != models.Task_RUNNING {
		t.Fatalf("task on a held cell is %s", st)
	}
	// Still held long after the presence TTL.
	e.later(time.Minute)
	if p, _ := e.pass(); !p.Cells.GuardRaised || len(p.Suspect) != 0 {
		t.Fatalf("guard lapsed: %+v", p.Cells)
	}

	if _, err := e.bbs.ConfirmCellLoss(e.ctx(), &models.ConfirmCellLossRequest{CellIds: []string{"cell-1"}}); err == nil {
		t.Fatal("confirmed a present cell")
	}
	conf, err := e.bbs.ConfirmCellLoss(e.ctx(), &models.ConfirmCellLossRequest{})
	if err != nil || !equalStrings(conf.Confirmation.CellIds, "cell-2", "cell-3") {
		t.Fatalf("confirm: %v, %v", conf, err)
	}
	p, r = e.pass()
	if p.Cells.GuardRaised || applied(r, "suspect") != 2 || applied(r, "fail_on_lost_cell") != 1 {
		t.Fatalf("after confirmation: cells %+v report %+v", p.Cells, r.Actions)
	}
	if got := testutil.ToFloat64(e.metrics.GuardRaised); got != 0 {
		t.Fatalf("guard gauge %v", got)
	}
	if task := e.task("job"); task.State != models.Task_COMPLETED || task.FailureReason != db.ReasonCellLost {
		t.Fatalf("task %v", task)
	}
	// The confirmation is spent: nothing is held again.
	if p, _ := e.pass(); p.Cells.GuardRaised {
		t.Fatalf("held again: %+v", p.Cells)
	}
}

// Tasks: a pending one past its deadline fails, one on a lost cell fails,
// a completed one is deleted once nobody came for it, and one whose callback
// receiver was away has its callback sent again.
func TestTasksAreExpiredFailedAndKicked(t *testing.T) {
	var answers atomic.Int32
	var delivered atomic.Int32
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if answers.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		delivered.Add(1)
	})}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() { _ = srv.Close() })

	e := newEnv(t, envOptions{callbackAttempts: 1})
	for _, c := range []string{"cell-1", "cell-2", "cell-3"} {
		e.cell(c, 15*time.Second)
	}
	def := func(callback string) *models.TaskDefinition {
		return &models.TaskDefinition{Rootfs: "preloaded:busybox", Action: desiredLRP("x", 1).Action, CompletionCallbackUrl: callback}
	}
	desire := func(guid, callback string) {
		if _, err := e.bbs.DesireTask(e.ctx(), &models.DesireTaskRequest{TaskGuid: guid, Domain: "apps", TaskDefinition: def(callback)}); err != nil {
			t.Fatal(err)
		}
	}
	desire("pending", "")
	desire("lost", "")
	desire("done", "")
	desire("callback", "http://"+lis.Addr().String()+"/done")
	// With no cells, the auctioneer rejects every task it is sent; wait for
	// each rejection so none lands on a task this test moved on.
	rejected := func(guid string, n int32) {
		t.Helper()
		e.pollUntil("the auctioneer's rejection of "+guid, func() bool { return e.task(guid).RejectionCount == n })
	}
	for _, g := range []string{"pending", "lost", "done", "callback"} {
		rejected(g, 1)
	}
	if _, err := e.bbs.StartTask(e.ctx(), &models.StartTaskRequest{TaskGuid: "lost", CellId: "cell-9"}); err != nil {
		t.Fatal(err)
	}
	for _, g := range []string{"done", "callback"} {
		if _, err := e.bbs.StartTask(e.ctx(), &models.StartTaskRequest{TaskGuid: g, CellId: "cell-1"}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.bbs.CompleteTask(e.ctx(), &models.CompleteTaskRequest{TaskGuid: g, CellId: "cell-1", Result: "ok"}); err != nil {
			t.Fatal(err)
		}
	}
	// The receiver answered 503 to the only attempt: the task is handed
	// back to convergence as COMPLETED.
	e.pollUntil("the callback to be handed back", func() bool {
		return answers.Load() == 1 && e.task("callback").State == models.Task_COMPLETED
	})

	p, r := e.pass()
	if applied(r, "fail_on_lost_cell") != 1 || r.TaskAuctions != 1 {
		t.Fatalf("first pass %q %+v %+v", describe(p), p.Cells, r)
	}
	if task := e.task("lost"); task.FailureReason != db.ReasonCellLost {
		t.Fatalf("lost task %v", task)
	}
	rejected("pending", 2)

	e.later(31 * time.Second)
	_, r = e.pass()
	if applied(r, "kick_callbacks") != 1 {
		t.Fatalf("kick pass %+v", r.Actions)
	}
	e.pollUntil("the kicked callback to be delivered and the task deleted", func() bool {
		_, err := e.bbs.GetTask(e.ctx(), &models.TaskGuidRequest{TaskGuid: "callback"})
		return delivered.Load() == 1 && models.IsNotFound(models.FromStatus(err))
	})
	rejected("pending", 3)

	e.later(31 * time.Minute)
	_, r = e.pass()
	if applied(r, "expire_pending") != 1 || applied(r, "delete_completed") != 2 {
		t.Fatalf("expiry pass %+v", r.Actions)
	}
	if task := e.task("pending"); task.State != models.Task_COMPLETED || task.FailureReason != db.ReasonPendingExpired {
		t.Fatalf("pending task %v", task)
	}
	for _, g := range []string{"done", "lost"} {
		if _, err := e.bbs.GetTask(e.ctx(), &models.TaskGuidRequest{TaskGuid: g}); !models.IsNotFound(models.FromStatus(err)) {
			t.Fatalf("task %s not deleted: %v", g, err)
		}
	}
	if got := testutil.ToFloat64(e.metrics.TasksExpired.WithLabelValues("pending")); got != 1 {
		t.Fatalf("expired metric %v", got)
	}
}

// Orphans and extra instances are retired in a fresh domain and kept in a
// stale one.
func TestOrphansAndExtrasAreRetiredOnlyInFreshDomains(t *testing.T) {
	e := newEnv(t, envOptions{})
	for _, c := range []string{"cell-1", "cell-2", "cell-3"} {
		e.cell(c, 15*time.Second)
	}
	e.desire("web", 1)
	// An instance reported past the desired count, on a cell that is gone,
	// and an orphan left unclaimed by a crash, in the fresh domain "apps".
	e.startRunning("web", 2, "cell-9")
	e.startRunning("ghost", 0, "cell-1")
	if _, err := e.bbs.CrashActualLRP(e.ctx(), &models.CrashActualLRPRequest{
		ActualLrpKey: &models.ActualLRPKey{ProcessGuid: "ghost", Index: 0, Domain: "apps"}, ActualLrpInstanceKey: instanceKey("ghost", 0, "cell-1")}); err != nil {
		t.Fatal(err)
	}
	// An orphan in a domain nobody marked fresh.
	if _, err := e.bbs.StartActualLRP(e.ctx(), &models.StartActualLRPRequest{
		ActualLrpKey: &models.ActualLRPKey{ProcessGuid: "kept", Index: 0, Domain: "legacy"}, ActualLrpInstanceKey: instanceKey("kept", 0, "cell-1"),
		ActualLrpNetInfo: &models.ActualLRPNetInfo{Address: "127.0.0.1"},
	}); err != nil {
		t.Fatal(err)
	}
	p, r := e.pass()
	if applied(r, "retire") != 2 || len(p.Retire) != 2 {
		t.Fatalf("plan %v report %+v", describe(p), r.Actions)
	}
	if rows := e.rows("web", 2); len(rows) != 0 {
		t.Fatalf("extra instance left: %v", rows)
	}
	if rows := e.rows("ghost", 0); len(rows) != 0 {
		t.Fatalf("orphan left: %v", rows)
	}
	if rows := e.rows("kept", 0); rows[models.ActualLRP_ORDINARY] == nil {
		t.Fatal("orphan of a stale domain was retired")
	}
}

func equalStrings(got []string, want ...string) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i] != want[i] {
			return false
		}
	}
	return true
}

// Bad convergence requests are refused by the BBS with InvalidArgument
// naming the field, before anything is read or written.
func TestConvergenceCallsRefuseBadInput(t *testing.T) {
	e := newEnv(t, envOptions{noAuctioneer: true})
	untagged := &models.ActualLRP{ActualLrpKey: &models.ActualLRPKey{ProcessGuid: "web", Domain: "apps"}, State: models.ActualLRP_RUNNING,
		ActualLrpInstanceKey: &models.ActualLRPInstanceKey{InstanceGuid: "i", CellId: "cell-1"}}
	cases := []struct {
		call  func() error
		field string
	}{
		{func() error {
			_, err := e.bbs.ConvergeLRPs(e.ctx(), &models.ConvergeLRPsRequest{Suspect: []*models.ActualLRP{untagged}})
			return err
		}, "suspect[0].modification_tag"},
		{func() error {
			_, err := e.bbs.ConvergeTasks(e.ctx(), &models.ConvergeTasksRequest{FailOnLostCell: []*models.Task{{TaskGuid: "job", State: models.Task_PENDING, CellId: "cell-1"}}})
			return err
		}, "fail_on_lost_cell[0].state"},
		{func() error {
			_, err := e.bbs.SaveConvergerState(e.ctx(), &models.SaveConvergerStateRequest{})
			return err
		}, "state"},
		{func() error {
			_, err := e.bbs.ConfirmCellLoss(e.ctx(), &models.ConfirmCellLossRequest{CellIds: []string{"a b"}})
			return err
		}, "cell_ids[0]"},
	}
	for _, tc := range cases {
		err := tc.call()
		st, _ := status.FromError(err)
		if st.Code() != codes.InvalidArgument {
			t.Fatalf("%s: got %v, want InvalidArgument", tc.field, err)
		}
		var fields []string
		for _, d := range st.Details() {
			if br, ok := d.(*errdetails.BadRequest); ok {
				for _, v := range br.FieldViolations {
					fields = append(fields, v.Field)
				}
			}
		}
		if !equalStrings(fields, tc.field) {
			t.Fatalf("%v: fields %v, want %s", err, fields, tc.field)
		}
	}
}

// Two convergers that planned from the same snapshot (a leader and one
// that does not know yet it lost the election): the first to store its
// memory acts, the other is refused before it changes anything.
func TestOnlyOnePlanPerGenerationActs(t *testing.T) {
	e := newEnv(t, envOptions{noAuctioneer: true})
	e.desire("web", 2)
	if _, err := e.bbs.RemoveActualLRP(e.ctx(), &models.RemoveActualLRPRequest{ProcessGuid: "web", Index: 0}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.bbs.RemoveActualLRP(e.ctx(), &models.RemoveActualLRPRequest{ProcessGuid: "web", Index: 1}); err != nil {
		t.Fatal(err)
	}
	p1, err := e.conv.Plan(e.ctx())
	if err != nil {
		t.Fatal(err)
	}
	p2, err := e.conv.Plan(e.ctx())
	if err != nil {
		t.Fatal(err)
	}
	// The second plan's missing indices are trimmed to one, so that its
	// action, were it applied, would show.
	p2.Missing[0].Indices = p2.Missing[0].Indices[1:]
	r, err := e.conv.Executor.Execute(e.ctx(), p1)
	if err != nil || applied(r, "create_missing") != 1 {
		t.Fatalf("first plan: %+v, %v", r, err)
	}
	if _, err := e.bbs.RemoveActualLRP(e.ctx(), &models.RemoveActualLRPRequest{ProcessGuid: "web", Index: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.conv.Executor.Execute(e.ctx(), p2); err == nil || !strings.Contains(err.Error(), "another converger saved in between") {
		t.Fatalf("second plan: %v", err)
	}
	if rows := e.rows("web", 1); len(rows) != 0 {
		t.Fatalf("the refused plan acted: %v", rows)
	}
}

// The remaining rules, set up by BBS calls as cells would make them: an
// EVACUATING row left on a cell that died, a replacement that lost its cell
// too, a SUSPECT row orphaned by its desired LRP's removal, and a task whose
// resolver went away. Losses are spaced beyond the guard window.
func TestEvacuatingLeftoversReplacementsLostAgainOrphanedSuspectsAndStuckResolvers(t *testing.T) {
	e := newEnv(t, envOptions{})
	leases := map[string]clientv3.LeaseID{}
	for _, c := range []string{"cell-1", "cell-2", "cell-3", "cell-4", "cell-5"} {
		leases[c] = e.cell(c, 15*time.Second)
	}
	e.desire("web", 2)
	e.start("web", 0, "cell-1")
	e.start("web", 1, "cell-2")
	e.pass()

	// cell-1 evacuates web/0, then dies before the replacement runs.
	if _, err := e.bbs.EvacuateRunningActualLRP(e.ctx(), &models.EvacuateRunningActualLRPRequest{
		ActualLrpKey: &models.ActualLRPKey{ProcessGuid: "web", Index: 0, Domain: "apps"}, ActualLrpInstanceKey: instanceKey("web", 0, "cell-1"),
		ActualLrpNetInfo: &models.ActualLRPNetInfo{Address: "127.0.0.1"}}); err != nil {
		t.Fatal(err)
	}
	if e.rows("web", 0)[models.ActualLRP_EVACUATING] == nil {
		t.Fatal("no EVACUATING row")
	}
	e.lose(leases["cell-1"])
	_, r := e.pass()
	if applied(r, "remove_evacuating") != 1 || e.rows("web", 0)[models.ActualLRP_EVACUATING] != nil {
		t.Fatalf("report %+v rows %v", r.Actions, e.rows("web", 0))
	}

	// cell-2 dies: web/1 becomes SUSPECT; its replacement is claimed on
	// cell-3, which dies too: the replacement is unclaimed.
	e.later(20 * time.Second)
	e.lose(leases["cell-2"])
	if _, r := e.pass(); applied(r, "suspect") != 1 {
		t.Fatalf("report %+v", r.Actions)
	}
	if _, err := e.bbs.ClaimActualLRP(e.ctx(), &models.ClaimActualLRPRequest{ProcessGuid: "web", Index: 1, ActualLrpInstanceKey: instanceKey("web", 1, "cell-3")}); err != nil {
		t.Fatal(err)
	}
	e.later(40 * time.Second)
	e.lose(leases["cell-3"])
	p, r := e.pass()
	if applied(r, "unclaim_lost") != 1 || p.Cells.GuardRaised {
		t.Fatalf("plan %q cells %+v report %+v", describe(p), p.Cells, r.Actions)
	}
	rows := e.rows("web", 1)
	if o := rows[models.ActualLRP_ORDINARY]; o.State != models.ActualLRP_UNCLAIMED || rows[models.ActualLRP_SUSPECT] == nil {
		t.Fatalf("rows %v", rows)
	}

	// The desired LRP goes: the BBS removes its unclaimed rows; the SUSPECT
	// row is an orphan the converger removes.
	if _, err := e.bbs.RemoveDesiredLRP(e.ctx(), &models.RemoveDesiredLRPRequest{ProcessGuid: "web"}); err != nil {
		t.Fatal(err)
	}
	if _, r := e.pass(); applied(r, "remove_orphaned_suspect") != 1 {
		t.Fatalf("report %+v", r.Actions)
	}
	if rows := e.rows("web", 1); len(rows) != 0 {
		t.Fatalf("rows left %v", rows)
	}

	// A task resolved by a worker that went away goes back to COMPLETED.
	if _, err := e.bbs.DesireTask(e.ctx(), &models.DesireTaskRequest{TaskGuid: "job", Domain: "apps",
		TaskDefinition: &models.TaskDefinition{Rootfs: "preloaded:busybox", Action: desiredLRP("x", 1).Action}}); err != nil {
		t.Fatal(err)
	}
	e.pollUntil("the task's first auction to be rejected", func() bool { return e.task("job").RejectionCount == 1 })
	for _, call := range []func() error{
		func() error {
			_, err := e.bbs.StartTask(e.ctx(), &models.StartTaskRequest{TaskGuid: "job", CellId: "cell-4"})
			return err
		},
		func() error {
			_, err := e.bbs.CompleteTask(e.ctx(), &models.CompleteTaskRequest{TaskGuid: "job", CellId: "cell-4"})
			return err
		},
		func() error {
			_, err := e.bbs.ResolvingTask(e.ctx(), &models.TaskGuidRequest{TaskGuid: "job"})
			return err
		},
	} {
		if err := call(); err != nil {
			t.Fatal(err)
		}
	}
	e.later(100 * time.Second)
	if _, r := e.pass(); applied(r, "demote_resolving") != 1 || e.task("job").State != models.Task_COMPLETED {
		t.Fatalf("report %+v task %v", r.Actions, e.task("job"))
	}
}
