package db

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gavel-scheduler/gavel/proto/models"
)

func TestDesireLRPCreatesEveryInstanceAcrossBatches(t *testing.T) {
	s, _, _ := newTestStore(t)
	ctx := ctxT(t)
	// 300 instances need three transactions (126 with the desired LRP, then
	// 128 and 46).
	sched, created, err := s.DesireLRP(ctx, desired("big", 300))
	if err != nil {
		t.Fatal(err)
	}
	if got := sched.ProcessGuid(); got != "big" {
		t.Fatalf("scheduling info guid = %q", got)
	}
	if len(created) != 300 {
		t.Fatalf("created %d rows, want 300", len(created))
	}
	lrps, _, err := s.ActualLRPs(ctx, ActualLRPFilter{ProcessGuid: "big"})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int32]bool{}
	for _, a := range lrps {
		if a.State != models.ActualLRP_UNCLAIMED || a.Presence != models.ActualLRP_ORDINARY {
			t.Fatalf("row %d is %s/%s", a.Index(), a.State, a.Presence)
		}
		if err := a.Validate(); err != nil {
			t.Fatalf("row %d invalid: %v", a.Index(), err)
		}
		seen[a.Index()] = true
	}
	if len(seen) != 300 {
		t.Fatalf("found %d distinct indices, want 300", len(seen))
	}
	if _, _, err := s.DesireLRP(ctx, desired("big", 1)); !errors.Is(err, models.ErrResourceExists) {
		t.Fatalf("second desire: got %v, want ResourceExists", err)
	}
	full, err := s.DesiredLRP(ctx, "big")
	if err != nil {
		t.Fatal(err)
	}
	if full.Action.GetRun().GetPath() != "/bin/sh" || full.Instances != 300 {
		t.Fatalf("stored desired LRP lost fields: %v", full)
	}
}

func TestClaimStartCrashFollowsTheRestartPolicy(t *testing.T) {
	s, _, clk := newTestStore(t)
	ctx := ctxT(t)
	if _, _, err := s.DesireLRP(ctx, desired("app", 1)); err != nil {
		t.Fatal(err)
	}
	key := &models.ActualLRPKey{ProcessGuid: "app", Index: 0, Domain: "apps"}
	run := func(n int) {
		t.Helper()
		i := ik(fmt.Sprintf("inst-%d", n), "cell-1")
		if _, after, err := s.ClaimActualLRP(ctx, "app", 0, i); err != nil || after.State != models.ActualLRP_CLAIMED {
			t.Fatalf("claim %d: %v %v", n, after, err)
		}
		if _, after, err := s.StartActualLRP(ctx, startReq("app", 0, i, 61000)); err != nil || after.State != models.ActualLRP_RUNNING {
			t.Fatalf("start %d: %v %v", n, after, err)
		}
	}
	crash := func(n int) *models.ActualLRP {
		t.Helper()
		_, after, _, err := s.CrashActualLRP(ctx, key, ik(fmt.Sprintf("inst-%d", n), "cell-1"), "exit status 1")
		if err != nil {
			t.Fatalf("crash %d: %v", n, err)
		}
		return after
	}
	run(1)
	if a := crash(1); a.State != models.ActualLRP_UNCLAIMED || a.CrashCount != 1 || a.CrashReason != "exit status 1" {
		t.Fatalf("after first crash: %v", a)
	}
	run(2)
	if a := crash(2); a.State != models.ActualLRP_UNCLAIMED || a.CrashCount != 2 {
		t.Fatalf("after second crash: %v", a)
	}
	run(3)
	a := crash(3)
	if a.State != models.ActualLRP_CRASHED || a.CrashCount != 3 || a.ActualLrpInstanceKey != nil {
		t.Fatalf("after third crash: %v", a)
	}
	if err := a.Validate(); err != nil {
		t.Fatalf("crashed row invalid: %v", err)
	}
	// A CRASHED row can only be unclaimed (by convergence), not crashed again.
	if _, _, _, err := s.CrashActualLRP(ctx, key, ik("inst-3", "cell-1"), "again"); !errors.Is(err, models.ErrActualLRPCannotBeCrashed) {
		t.Fatalf("crash of CRASHED row: got %v", err)
	}
	if _, _, err := s.UnclaimActualLRP(ctx, key); err != nil {
		t.Fatal(err)
	}
	// Running for more than five minutes resets the count.
	run(4)
	clk.Advance(5*time.Minute + time.Second)
	if a := crash(4); a.CrashCount != 1 || a.State != models.ActualLRP_UNCLAIMED {
		t.Fatalf("crash after 5m running: %v", a)
	}
}

func TestTransitionsRefusedByTheStore(t *testing.T) {
	s, _, _ := newTestStore(t)
	ctx := ctxT(t)
	if _, _, err := s.DesireLRP(ctx, desired("app", 1)); err != nil {
		t.Fatal(err)
	}
	key := &models.ActualLRPKey{ProcessGuid: "app", Index: 0, Domain: "apps"}
	if _, _, _, err := s.CrashActualLRP(ctx, key, ik("a", "c1"), "x"); !errors.Is(err, models.ErrActualLRPCannotBeCrashed) {
		t.Fatalf("crash UNCLAIMED: %v", err)
	}
	if _, _, err := s.ClaimActualLRP(ctx, "app", 0, ik("a", "c1")); err != nil {
		t.Fatal(err)
	}
	// Claiming again with the same key is a no-op; with another key refused.
	before, after, err := s.ClaimActualLRP(ctx, "app", 0, ik("a", "c1"))
	if err != nil || before.ModificationTag.Index != after.ModificationTag.Index {
		t.Fatalf("repeat claim: %v %v %v", before, after, err)
	}
	if _, _, err := s.ClaimActualLRP(ctx, "app", 0, ik("b", "c2")); !errors.Is(err, models.ErrActualLRPCannotBeClaimed) {
		t.Fatalf("claim by other: %v", err)
	}
	if _, _, err := s.FailActualLRP(ctx, key, "no room"); !errors.Is(err, models.ErrActualLRPCannotBeFailed) {
		t.Fatalf("fail CLAIMED: %v", err)
	}
	if _, err := s.RemoveActualLRP(ctx, "app", 0, ik("b", "c2")); !errors.Is(err, models.ErrActualLRPCannotBeRemoved) {
		t.Fatalf("remove by other: %v", err)
	}
	if _, _, err := s.ClaimActualLRP(ctx, "missing", 0, ik("a", "c1")); !errors.Is(err, models.ErrResourceNotFound) {
		t.Fatalf("claim missing: %v", err)
	}
	// Start with the same key twice: the second is a heartbeat and writes nothing.
	_, first, err := s.StartActualLRP(ctx, startReq("app", 0, ik("a", "c1"), 61000))
	if err != nil {
		t.Fatal(err)
	}
	_, second, err := s.StartActualLRP(ctx, startReq("app", 0, ik("a", "c1"), 61000))
	if err != nil || second.ModificationTag.Index != first.ModificationTag.Index {
		t.Fatalf("heartbeat start rewrote the row: %v %v", second, err)
	}
	if _, _, err := s.StartActualLRP(ctx, startReq("app", 0, ik("b", "c2"), 61001)); !errors.Is(err, models.ErrActualLRPCannotBeStarted) {
		t.Fatalf("start by other while RUNNING: %v", err)
	}
}

func TestStartRemovesEvacuatingAndSuspectRows(t *testing.T) {
	s, _, _ := newTestStore(t)
	ctx := ctxT(t)
	if _, _, err := s.DesireLRP(ctx, desired("app", 1)); err != nil {
		t.Fatal(err)
	}
	key := &models.ActualLRPKey{ProcessGuid: "app", Index: 0, Domain: "apps"}
	old := ik("old", "cell-a")
	if _, _, err := s.ClaimActualLRP(ctx, "app", 0, old); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.StartActualLRP(ctx, startReq("app", 0, old, 61000)); err != nil {
		t.Fatal(err)
	}
	// cell-a drains: the instance keeps serving as EVACUATING, the slot is
	// auctioned again.
	keep, auction, err := s.EvacuateRunningActualLRP(ctx, &models.EvacuateRunningActualLRPRequest{
		ActualLrpKey: key, ActualLrpInstanceKey: old, ActualLrpNetInfo: netInfo(61000),
	})
	if err != nil || !keep || !auction {
		t.Fatalf("evacuate running: keep=%v auction=%v err=%v", keep, auction, err)
	}
	if evac := mustActual(t, s, "app", 0, models.ActualLRP_EVACUATING); evac.State != models.ActualLRP_RUNNING || !evac.ActualLrpInstanceKey.Equal(old) {
		t.Fatalf("evacuating row: %v", evac)
	}
	if ord := mustActual(t, s, "app", 0, models.ActualLRP_ORDINARY); ord.State != models.ActualLRP_UNCLAIMED {
		t.Fatalf("ordinary row after evacuation: %v", ord)
	}
	// Asking again keeps the container and changes nothing.
	if keep, auction, err := s.EvacuateRunningActualLRP(ctx, &models.EvacuateRunningActualLRPRequest{
		ActualLrpKey: key, ActualLrpInstanceKey: old, ActualLrpNetInfo: netInfo(61000),
	}); err != nil || !keep || auction {
		t.Fatalf("repeat evacuate: keep=%v auction=%v err=%v", keep, auction, err)
	}
	// The replacement starts on cell-b: the EVACUATING row goes.
	repl := ik("new", "cell-b")
	if _, _, err := s.ClaimActualLRP(ctx, "app", 0, repl); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.StartActualLRP(ctx, startReq("app", 0, repl, 61001)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ActualLRP(ctx, "app", 0, models.ActualLRP_EVACUATING); !errors.Is(err, models.ErrResourceNotFound) {
		t.Fatalf("evacuating row survived the replacement's start: %v", err)
	}
	// The old cell asks again and is told to drop its container.
	if keep, _, err := s.EvacuateRunningActualLRP(ctx, &models.EvacuateRunningActualLRPRequest{
		ActualLrpKey: key, ActualLrpInstanceKey: old, ActualLrpNetInfo: netInfo(61000),
	}); err != nil || keep {
		t.Fatalf("evacuate after replacement: keep=%v err=%v", keep, err)
	}
}

func TestEvacuateClaimedStoppedCrashed(t *testing.T) {
	s, _, _ := newTestStore(t)
	ctx := ctxT(t)
	if _, _, err := s.DesireLRP(ctx, desired("app", 2)); err != nil {
		t.Fatal(err)
	}
	k0 := &models.ActualLRPKey{ProcessGuid: "app", Index: 0, Domain: "apps"}
	k1 := &models.ActualLRPKey{ProcessGuid: "app", Index: 1, Domain: "apps"}
	a := ik("a", "cell-a")
	if _, _, err := s.ClaimActualLRP(ctx, "app", 0, a); err != nil {
		t.Fatal(err)
	}
	if auction, err := s.EvacuateClaimedActualLRP(ctx, k0, a); err != nil || !auction {
		t.Fatalf("evacuate claimed: auction=%v err=%v", auction, err)
	}
	if ord := mustActual(t, s, "app", 0, models.ActualLRP_ORDINARY); ord.State != models.ActualLRP_UNCLAIMED {
		t.Fatalf("after evacuate claimed: %v", ord)
	}
	b := ik("b", "cell-a")
	if _, _, err := s.ClaimActualLRP(ctx, "app", 1, b); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.StartActualLRP(ctx, startReq("app", 1, b, 61002)); err != nil {
		t.Fatal(err)
	}
	if err := s.EvacuateCrashedActualLRP(ctx, k1, b, "oom"); err != nil {
		t.Fatal(err)
	}
	if ord := mustActual(t, s, "app", 1, models.ActualLRP_ORDINARY); ord.State != models.ActualLRP_CRASHED || ord.CrashReason != "oom" {
		t.Fatalf("after evacuate crashed: %v", ord)
	}
	c := ik("c", "cell-a")
	if _, _, err := s.UnclaimActualLRP(ctx, k1); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.ClaimActualLRP(ctx, "app", 1, c); err != nil {
		t.Fatal(err)
	}
	if err := s.EvacuateStoppedActualLRP(ctx, k1, c); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ActualLRP(ctx, "app", 1, models.ActualLRP_ORDINARY); !errors.Is(err, models.ErrResourceNotFound) {
		t.Fatalf("after evacuate stopped: %v", err)
	}
}

// Reps on three cells race to claim the same instance, two through one store
// (so their transactions meet in one batcher) and one through another (a
// second BBS process with its own cache): exactly one wins every round.
func TestConcurrentClaimsExactlyOneWins(t *testing.T) {
	s1, client, _ := newTestStore(t)
	s2 := New(client, Config{})
	ctx := ctxT(t)
	const rounds = 200
	if _, _, err := s1.DesireLRP(ctx, desired("race", rounds)); err != nil {
		t.Fatal(err)
	}
	// Warm both caches so both take the fast path.
	for _, s := range []*Store{s1, s2} {
		if _, _, err := s.ActualLRPs(ctx, ActualLRPFilter{ProcessGuid: "race"}); err != nil {
			t.Fatal(err)
		}
		for i := range int32(rounds) {
			if _, _, err := s.readActual(ctx, s.keys.ActualLRP("race", i, models.ActualLRP_ORDINARY)); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := range int32(rounds) {
		var wg sync.WaitGroup
		contenders := []*Store{s1, s1, s2}
		errs := make([]error, len(contenders))
		start := make(chan struct{})
		for j, s := range contenders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, _, errs[j] = s.ClaimActualLRP(context.Background(), "race", i, ik(fmt.Sprintf("i%d", j), fmt.Sprintf("cell-%d", j)))
			}()
		}
		close(start)
		wg.Wait()
		wins := 0
		winner := -1
		for j, err := range errs {
			switch {
			case err == nil:
				wins++
				winner = j
			case errors.Is(err, models.ErrActualLRPCannotBeClaimed):
			default:
				t.Fatalf("round %d: unexpected error %v", i, err)
			}
		}
		if wins != 1 {
			t.Fatalf("round %d: %d winners", i, wins)
		}
		if got := mustActual(t, s1, "race", i, models.ActualLRP_ORDINARY); got.CellID() != fmt.Sprintf("cell-%d", winner) {
			t.Fatalf("round %d: stored cell %q, winner cell-%d", i, got.CellID(), winner)
		}
	}
}

// Many writers hammer the same rows with every lifecycle call; every stored
// row stays valid.
func TestConcurrentLifecycleKeepsRowsValid(t *testing.T) {
	s1, client, _ := newTestStore(t)
	stores := []*Store{s1, New(client, Config{}), New(client, Config{})}
	ctx := ctxT(t)
	const n = 8
	if _, _, err := s1.DesireLRP(ctx, desired("churn", n)); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := stores[w%len(stores)]
			for it := range 60 {
				idx := int32((w + it) % n)
				key := &models.ActualLRPKey{ProcessGuid: "churn", Index: idx, Domain: "apps"}
				me := ik(fmt.Sprintf("w%d-%d", w, it), fmt.Sprintf("cell-%d", w))
				switch it % 4 {
				case 0:
					_, _, _ = s.ClaimActualLRP(ctx, "churn", idx, me)
				case 1:
					_, _, _ = s.StartActualLRP(ctx, startReq("churn", idx, me, 61000))
				case 2:
					_, _, _, _ = s.CrashActualLRP(ctx, key, me, "boom")
				case 3:
					_, _, _ = s.UnclaimActualLRP(ctx, key)
				}
			}
		}()
	}
	wg.Wait()
	lrps, _, err := s1.ActualLRPs(ctx, ActualLRPFilter{ProcessGuid: "churn"})
	if err != nil {
		t.Fatal(err)
	}
	if len(lrps) != n {
		t.Fatalf("%d rows, want %d", len(lrps), n)
	}
	for _, a := range lrps {
		if err := a.Validate(); err != nil {
			t.Fatalf("row %d invalid after churn: %v (%v)", a.Index(), err, a)
		}
	}
}

// A second BBS (another store) changes a row behind the first store's cache;
// the first store must not answer a repeated claim or a heartbeat start from
// its stale copy.
func TestStaleCacheNeverDecidesANoOp(t *testing.T) {
	s1, client, _ := newTestStore(t)
	s2 := New(client, Config{})
	ctx := ctxT(t)
	if _, _, err := s1.DesireLRP(ctx, desired("app", 1)); err != nil {
		t.Fatal(err)
	}
	key := &models.ActualLRPKey{ProcessGuid: "app", Index: 0, Domain: "apps"}
	a := ik("a", "cell-a")
	if _, _, err := s1.ClaimActualLRP(ctx, "app", 0, a); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s1.StartActualLRP(ctx, startReq("app", 0, a, 61000)); err != nil {
		t.Fatal(err)
	}
	// Another BBS unclaims it (as convergence or evacuation would).
	if _, _, err := s2.UnclaimActualLRP(ctx, key); err != nil {
		t.Fatal(err)
	}
	// The rep's heartbeat through the first BBS must put it back to RUNNING.
	if _, after, err := s1.StartActualLRP(ctx, startReq("app", 0, a, 61000)); err != nil || after.State != models.ActualLRP_RUNNING {
		t.Fatalf("heartbeat after a change elsewhere: %v %v", after, err)
	}
	if got := mustActual(t, s2, "app", 0, models.ActualLRP_ORDINARY); got.State != models.ActualLRP_RUNNING {
		t.Fatalf("stored state %s, want RUNNING", got.State)
	}
	// Claimed by b through the second BBS; the first, whose cache says the
	// row is RUNNING for a, must refuse a's claim only after reading it.
	if _, _, err := s2.UnclaimActualLRP(ctx, key); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s2.ClaimActualLRP(ctx, "app", 0, ik("b", "cell-b")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s1.ClaimActualLRP(ctx, "app", 0, a); !errors.Is(err, models.ErrActualLRPCannotBeClaimed) {
		t.Fatalf("claim against a row claimed elsewhere: %v", err)
	}
	// Unclaimed again elsewhere: the first store's cache says CLAIMED by b,
	// but the claim must succeed.
	if _, _, err := s2.UnclaimActualLRP(ctx, key); err != nil {
		t.Fatal(err)
	}
	if _, after, err := s1.ClaimActualLRP(ctx, "app", 0, a); err != nil || after.CellID() != "cell-a" {
		t.Fatalf("claim after unclaim elsewhere: %v %v", after, err)
	}
}
