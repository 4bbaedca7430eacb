package db

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/gavel-scheduler/gavel/proto/models"
)

// present writes a cell presence under a lease and returns the lease.
func present(t testing.TB, s *Store, cell string) clientv3.LeaseID {
	t.Helper()
	id, err := s.SetCellPresence(context.Background(), &models.CellPresence{CellId: cell, RepAddress: "127.0.0.1:1"}, 15*time.Second, 0)
	if err != nil {
		t.Fatal(err)
	}
	return clientv3.LeaseID(id)
}

// runningOn desires guid with n instances and starts index i on cell.
func runningOn(t testing.TB, s *Store, guid string, n int32, cells ...string) []*models.ActualLRP {
	t.Helper()
	ctx := context.Background()
	if _, _, err := s.DesireLRP(ctx, desired(guid, n)); err != nil {
		t.Fatal(err)
	}
	var out []*models.ActualLRP
	for i, cell := range cells {
		_, after, err := s.StartActualLRP(ctx, startReq(guid, int32(i), ik(fmt.Sprintf("%s-%d", guid, i), cell), uint32(61000+i)))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, after)
	}
	return out
}

func TestConvergenceSnapshotReadsEverythingAtOneRevision(t *testing.T) {
	s, _, _ := newTestStore(t)
	ctx := ctxT(t)
	present(t, s, "cell-1")
	runningOn(t, s, "web", 2, "cell-1")
	if _, err := s.DesireTask(ctx, "job", "apps", &models.TaskDefinition{Rootfs: "preloaded:x"}); err != nil {
		t.Fatal(err)
	}
	if err := s.UpsertDomain(ctx, "apps", 0); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveConvergerState(ctx, &models.ConvergerState{Generation: 1, Cells: []*models.ConvergerCell{{CellId: "cell-1"}}}); err != nil {
		t.Fatal(err)
	}
	snap, err := s.ConvergenceSnapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.ActualLrps) != 2 || len(snap.DesiredLrpSchedulingInfos) != 1 || len(snap.Tasks) != 1 ||
		len(snap.Cells) != 1 || len(snap.Domains) != 1 || snap.ConvergerState.GetGeneration() != 1 || snap.CellLossConfirmation != nil {
		t.Fatalf("snapshot %v", snap)
	}
	rev, err := s.Revision(ctx)
	if err != nil || snap.Revision != rev {
		t.Fatalf("snapshot revision %d, store at %d (%v)", snap.Revision, rev, err)
	}
}

func TestSuspectOnlyWhileTheCellIsAbsent(t *testing.T) {
	s, client, _ := newTestStore(t)
	ctx := ctxT(t)
	lease := present(t, s, "cell-1")
	rows := runningOn(t, s, "web", 1, "cell-1")
	if _, err := s.SuspectActualLRP(ctx, rows[0]); !IsSkipped(err) {
		t.Fatalf("suspect while the cell is present: %v, want skipped", err)
	}
	if _, err := client.Revoke(ctx, lease); err != nil {
		t.Fatal(err)
	}
	repl, err := s.SuspectActualLRP(ctx, rows[0])
	if err != nil {
		t.Fatal(err)
	}
	susp := mustActual(t, s, "web", 0, models.ActualLRP_SUSPECT)
	ord := mustActual(t, s, "web", 0, models.ActualLRP_ORDINARY)
	if susp.State != models.ActualLRP_RUNNING || susp.CellID() != "cell-1" || susp.GetActualLrpNetInfo() == nil {
		t.Fatalf("suspect row %v", susp)
	}
	if ord.State != models.ActualLRP_UNCLAIMED || ord.GetModificationTag().GetEpoch() != repl.GetModificationTag().GetEpoch() {
		t.Fatalf("replacement %v", ord)
	}
	// Planned from the old row, a second suspect is skipped.
	if _, err := s.SuspectActualLRP(ctx, rows[0]); !IsSkipped(err) {
		t.Fatalf("second suspect: %v", err)
	}
	// The cell comes back: the suspect is promoted, the replacement goes.
	present(t, s, "cell-1")
	replaced, err := s.PromoteSuspectActualLRP(ctx, susp)
	if err != nil {
		t.Fatal(err)
	}
	if replaced.GetState() != models.ActualLRP_UNCLAIMED {
		t.Fatalf("replaced %v", replaced)
	}
	ord = mustActual(t, s, "web", 0, models.ActualLRP_ORDINARY)
	if ord.State != models.ActualLRP_RUNNING || ord.InstanceGuid() != "web-0" || ord.Presence != models.ActualLRP_ORDINARY {
		t.Fatalf("promoted %v", ord)
	}
	if _, err := s.ActualLRP(ctx, "web", 0, models.ActualLRP_SUSPECT); !models.IsNotFound(err) {
		t.Fatalf("suspect row left: %v", err)
	}
}

func TestPromoteOnlyWhileTheCellIsPresent(t *testing.T) {
	s, client, _ := newTestStore(t)
	ctx := ctxT(t)
	lease := present(t, s, "cell-1")
	rows := runningOn(t, s, "web", 1, "cell-1")
	if _, err := client.Revoke(ctx, lease); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SuspectActualLRP(ctx, rows[0]); err != nil {
		t.Fatal(err)
	}
	susp := mustActual(t, s, "web", 0, models.ActualLRP_SUSPECT)
	if _, err := s.PromoteSuspectActualLRP(ctx, susp); !IsSkipped(err) {
		t.Fatalf("promote while the cell is absent: %v", err)
	}
	// The replacement lost its cell too: unclaimed, only while a suspect
	// exists and its cell is absent.
	present(t, s, "cell-2")
	if _, _, err := s.ClaimActualLRP(ctx, "web", 0, ik("web-r", "cell-2")); err != nil {
		t.Fatal(err)
	}
	repl := mustActual(t, s, "web", 0, models.ActualLRP_ORDINARY)
	if err := s.UnclaimLostActualLRP(ctx, repl); !IsSkipped(err) {
		t.Fatalf("unclaim while cell-2 is present: %v", err)
	}
}

func TestRestartCrashedSkipsARowThatMovedOn(t *testing.T) {
	s, _, _ := newTestStore(t)
	ctx := ctxT(t)
	runningOn(t, s, "web", 1)
	for range 3 {
		if _, _, err := s.ClaimActualLRP(ctx, "web", 0, ik("i", "cell-1")); err != nil {
			t.Fatal(err)
		}
		if _, _, _, err := s.CrashActualLRP(ctx, &models.ActualLRPKey{ProcessGuid: "web", Index: 0, Domain: "apps"}, ik("i", "cell-1"), "boom"); err != nil {
			t.Fatal(err)
		}
	}
	crashed := mustActual(t, s, "web", 0, models.ActualLRP_ORDINARY)
	if crashed.State != models.ActualLRP_CRASHED || crashed.CrashCount != 3 {
		t.Fatalf("row %v", crashed)
	}
	stale := mustActual(t, s, "web", 0, models.ActualLRP_ORDINARY)
	stale.ModificationTag.Index--
	if err := s.RestartCrashedActualLRP(ctx, stale); !IsSkipped(err) {
		t.Fatalf("restart planned from an older row: %v", err)
	}
	if err := s.RestartCrashedActualLRP(ctx, crashed); err != nil {
		t.Fatal(err)
	}
	if a := mustActual(t, s, "web", 0, models.ActualLRP_ORDINARY); a.State != models.ActualLRP_UNCLAIMED || a.CrashCount != 3 {
		t.Fatalf("restarted %v", a)
	}
}

func TestCreateMissingAndRetireFollowTheDesiredLRP(t *testing.T) {
	s, _, _ := newTestStore(t)
	ctx := ctxT(t)
	sched, _, err := s.DesireLRP(ctx, desired("web", 2))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.RemoveActualLRP(ctx, "web", 1, nil); err != nil {
		t.Fatal(err)
	}
	// Indices past the count are never created; taken slots are left.
	created, err := s.CreateMissingActualLRPs(ctx, "web", sched.ModificationTag, []int32{0, 1, 5})
	if err != nil || len(created) != 1 || created[0].Index() != 1 {
		t.Fatalf("created %v, %v", created, err)
	}
	// Scaled down after the plan was made: nothing is created.
	if _, err := s.RemoveActualLRP(ctx, "web", 1, nil); err != nil {
		t.Fatal(err)
	}
	one := int32(1)
	_, after, err := s.UpdateDesiredLRP(ctx, "web", &models.DesiredLRPUpdate{Instances: &one})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateMissingActualLRPs(ctx, "web", sched.ModificationTag, []int32{1}); !IsSkipped(err) {
		t.Fatalf("create after the desired LRP changed: %v", err)
	}
	// An extra index: retired while the desired LRP is as read.
	if _, err := s.CreateUnclaimedActualLRPs(ctx, "web", "apps", []int32{1}); err != nil {
		t.Fatal(err)
	}
	extra := mustActual(t, s, "web", 1, models.ActualLRP_ORDINARY)
	if err := s.RetireUnplacedActualLRP(ctx, extra, sched.ModificationTag); !IsSkipped(err) {
		t.Fatalf("retire planned from an older desired LRP: %v", err)
	}
	if err := s.RetireUnplacedActualLRP(ctx, mustActual(t, s, "web", 0, models.ActualLRP_ORDINARY), after.ModificationTag); !IsSkipped(err) {
		t.Fatalf("retire of a wanted index: %v", err)
	}
	if err := s.RetireUnplacedActualLRP(ctx, extra, after.ModificationTag); err != nil {
		t.Fatal(err)
	}
	// An orphan is retired only while its process is not desired.
	if _, err := s.CreateUnclaimedActualLRPs(ctx, "ghost", "apps", []int32{0}); err != nil {
		t.Fatal(err)
	}
	ghost := mustActual(t, s, "ghost", 0, models.ActualLRP_ORDINARY)
	if _, _, err := s.DesireLRP(ctx, desired("ghost", 1)); err != nil {
		t.Fatal(err)
	}
	if err := s.RetireUnplacedActualLRP(ctx, ghost, nil); !IsSkipped(err) {
		t.Fatalf("orphan retire after it was desired again: %v", err)
	}
	if _, err := s.RemoveDesiredLRP(ctx, "ghost"); err != nil {
		t.Fatal(err)
	}
	if err := s.RetireUnplacedActualLRP(ctx, ghost, nil); err != nil {
		t.Fatal(err)
	}
}

func TestConvergeTasksOnlyWhileAsRead(t *testing.T) {
	s, client, clk := newTestStore(t)
	ctx := ctxT(t)
	def := &models.TaskDefinition{Rootfs: "preloaded:x"}
	pending, err := s.DesireTask(ctx, "pending", "apps", def)
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second)
	if _, _, err := s.RejectTask(ctx, "pending", "no room"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ExpirePendingTask(ctx, pending); !IsSkipped(err) {
		t.Fatalf("expire of a task that changed: %v", err)
	}
	cur, _ := s.Task(ctx, "pending")
	after, err := s.ExpirePendingTask(ctx, cur)
	if err != nil || after.State != models.Task_COMPLETED || !after.Failed || after.FailureReason != ReasonPendingExpired {
		t.Fatalf("expired %v, %v", after, err)
	}

	lease := present(t, s, "cell-1")
	if _, err := s.DesireTask(ctx, "job", "apps", def); err != nil {
		t.Fatal(err)
	}
	_, runningTask, _, err := s.StartTask(ctx, "job", "cell-1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.FailTaskOnLostCell(ctx, runningTask); !IsSkipped(err) {
		t.Fatalf("fail while the cell is present: %v", err)
	}
	if _, err := client.Revoke(ctx, lease); err != nil {
		t.Fatal(err)
	}
	failed, err := s.FailTaskOnLostCell(ctx, runningTask)
	if err != nil || failed.FailureReason != ReasonCellLost || failed.CellId != "" {
		t.Fatalf("failed %v, %v", failed, err)
	}
	clk.Advance(time.Second)
	_, resolving, err := s.ResolvingTask(ctx, "job")
	if err != nil {
		t.Fatal(err)
	}
	demoted, err := s.DemoteResolvingTask(ctx, resolving)
	if err != nil || demoted.State != models.Task_COMPLETED {
		t.Fatalf("demoted %v, %v", demoted, err)
	}
	if err := s.DeleteCompletedTask(ctx, failed); !IsSkipped(err) {
		t.Fatalf("delete planned from before the demotion: %v", err)
	}
	if err := s.DeleteCompletedTask(ctx, demoted); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Task(ctx, "job"); !models.IsNotFound(err) {
		t.Fatalf("task left: %v", err)
	}
}

func TestConvergerStateGenerationsAndConfirmation(t *testing.T) {
	s, _, _ := newTestStore(t)
	ctx := ctxT(t)
	if _, err := s.ConfirmCellLoss(ctx, nil); err == nil {
		t.Fatal("confirmed with no state stored")
	}
	if err := s.SaveConvergerState(ctx, &models.ConvergerState{Generation: 2}); !IsSkipped(err) {
		t.Fatalf("first save at generation 2: %v", err)
	}
	held := &models.ConvergerState{Generation: 1, Cells: []*models.ConvergerCell{{CellId: "a", LostAt: 1, Held: true}, {CellId: "b", LostAt: 1, Held: true}, {CellId: "c", LastSeen: 1}}}
	if err := s.SaveConvergerState(ctx, held); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveConvergerState(ctx, held); !IsSkipped(err) {
		t.Fatalf("second save of generation 1: %v", err)
	}
	if _, err := s.ConfirmCellLoss(ctx, []string{"c"}); err == nil {
		t.Fatal("confirmed a cell that is not held")
	}
	conf, err := s.ConfirmCellLoss(ctx, nil)
	if err != nil || len(conf.CellIds) != 2 {
		t.Fatalf("confirm all: %v, %v", conf, err)
	}
	snap, err := s.ConvergenceSnapshot(ctx)
	if err != nil || snap.CellLossConfirmation.GetConfirmedAt() != conf.ConfirmedAt {
		t.Fatalf("snapshot confirmation %v, %v", snap.GetCellLossConfirmation(), err)
	}
}

// Two convergers planning the same suspect from the same read, and the
// cell's rep reporting the instance at the same time: the index ends with
// exactly one SUSPECT and one ORDINARY row, never two replacements.
func TestConcurrentSuspectsApplyOnce(t *testing.T) {
	s, client, _ := newTestStore(t)
	other := New(client, Config{})
	ctx := ctxT(t)
	lease := present(t, s, "cell-1")
	const n = 20
	var cells []string
	for range n {
		cells = append(cells, "cell-1")
	}
	rows := runningOn(t, s, "web", n, cells...)
	if _, err := client.Revoke(ctx, lease); err != nil {
		t.Fatal(err)
	}
	var applied, skipped atomic.Int32
	var wg sync.WaitGroup
	for _, st := range []*Store{s, other, s, other} {
		for _, row := range rows {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := st.SuspectActualLRP(ctx, row)
				switch {
				case err == nil:
					applied.Add(1)
				case IsSkipped(err):
					skipped.Add(1)
				default:
					t.Error(err)
				}
			}()
		}
	}
	wg.Wait()
	if applied.Load() != n || skipped.Load() != 3*n {
		t.Fatalf("applied %d, skipped %d; want %d and %d", applied.Load(), skipped.Load(), n, 3*n)
	}
	lrps, _, err := s.ActualLRPs(ctx, ActualLRPFilter{ProcessGuid: "web"})
	if err != nil {
		t.Fatal(err)
	}
	count := map[models.ActualLRP_Presence]int{}
	for _, a := range lrps {
		count[a.Presence]++
	}
	if count[models.ActualLRP_ORDINARY] != n || count[models.ActualLRP_SUSPECT] != n {
		t.Fatalf("rows by presence %v", count)
	}
}
