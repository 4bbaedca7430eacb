package models

import (
	"errors"
	"fmt"
	"testing"
)

func TestInstanceKeyEmptyAndEqual(t *testing.T) {
	k := &ActualLRPInstanceKey{InstanceGuid: "i", CellId: "c"}
	tests := []struct {
		name       string
		a, b       *ActualLRPInstanceKey
		aEmpty, eq bool
	}{
		{"nil nil", nil, nil, true, true},
		{"nil empty", nil, &ActualLRPInstanceKey{}, true, true},
		{"empty nil", &ActualLRPInstanceKey{}, nil, true, true},
		{"nil set", nil, k, true, false},
		{"set nil", k, nil, false, false},
		{"same", k, &ActualLRPInstanceKey{InstanceGuid: "i", CellId: "c"}, false, true},
		{"other guid", k, &ActualLRPInstanceKey{InstanceGuid: "j", CellId: "c"}, false, false},
		{"other cell", k, &ActualLRPInstanceKey{InstanceGuid: "i", CellId: "d"}, false, false},
		{"guid only", &ActualLRPInstanceKey{InstanceGuid: "i"}, nil, false, false},
		{"cell only", &ActualLRPInstanceKey{CellId: "c"}, nil, false, false},
	}
	for _, tc := range tests {
		if got := tc.a.Empty(); got != tc.aEmpty {
			t.Errorf("%s: Empty() = %v, want %v", tc.name, got, tc.aEmpty)
		}
		if got := tc.a.Equal(tc.b); got != tc.eq {
			t.Errorf("%s: Equal() = %v, want %v", tc.name, got, tc.eq)
		}
		if got := tc.b.Equal(tc.a); got != tc.eq {
			t.Errorf("%s: Equal() reversed = %v, want %v", tc.name, got, tc.eq)
		}
	}
}

// transitionRules is diego-facts §2.1, cell by cell.
var transitionRules = map[ActualLRP_State]map[ActualLRP_State]string{
	ActualLRP_UNCLAIMED: {ActualLRP_UNCLAIMED: "ok", ActualLRP_CLAIMED: "ok", ActualLRP_RUNNING: "ok", ActualLRP_CRASHED: "no"},
	ActualLRP_CLAIMED:   {ActualLRP_UNCLAIMED: "empty", ActualLRP_CLAIMED: "same", ActualLRP_RUNNING: "ok", ActualLRP_CRASHED: "same"},
	ActualLRP_RUNNING:   {ActualLRP_UNCLAIMED: "empty", ActualLRP_CLAIMED: "same", ActualLRP_RUNNING: "same", ActualLRP_CRASHED: "same"},
	ActualLRP_CRASHED:   {ActualLRP_UNCLAIMED: "empty", ActualLRP_CLAIMED: "same", ActualLRP_RUNNING: "same", ActualLRP_CRASHED: "no"},
}

func TestAllowsTransitionTo(t *testing.T) {
	stored := &ActualLRPInstanceKey{InstanceGuid: "inst-1", CellId: "cell-1"}
	requests := []struct {
		name  string
		key   *ActualLRPInstanceKey
		empty bool
		same  bool
	}{
		{"nil key", nil, true, false},
		{"empty key", &ActualLRPInstanceKey{}, true, false},
		{"same key", &ActualLRPInstanceKey{InstanceGuid: "inst-1", CellId: "cell-1"}, false, true},
		{"other instance", &ActualLRPInstanceKey{InstanceGuid: "inst-2", CellId: "cell-1"}, false, false},
		{"other cell", &ActualLRPInstanceKey{InstanceGuid: "inst-1", CellId: "cell-2"}, false, false},
		{"both other", &ActualLRPInstanceKey{InstanceGuid: "inst-2", CellId: "cell-2"}, false, false},
	}
	states := []ActualLRP_State{ActualLRP_UNCLAIMED, ActualLRP_CLAIMED, ActualLRP_RUNNING, ActualLRP_CRASHED}
	cells := 0
	for _, from := range states {
		for _, to := range states {
			rule := transitionRules[from][to]
			for _, req := range requests {
				var want bool
				switch rule {
				case "ok":
					want = true
				case "empty":
					want = req.empty
				case "same":
					want = req.same
				}
				a := &ActualLRP{State: from, ActualLrpInstanceKey: stored}
				if got := a.AllowsTransitionTo(req.key, to); got != want {
					t.Errorf("%s -> %s with %s (rule %q): got %v, want %v", from, to, req.name, rule, got, want)
				}
				cells++
			}
		}
	}
	if cells != 4*4*len(requests) {
		t.Fatalf("covered %d cases", cells)
	}
}

// TestAllowsTransitionToFromKeylessRows covers the rows as they are really
// stored: UNCLAIMED and CRASHED rows hold no instance key, so "same key"
// means a key-less request.
func TestAllowsTransitionToFromKeylessRows(t *testing.T) {
	key := &ActualLRPInstanceKey{InstanceGuid: "inst-1", CellId: "cell-1"}
	tests := []struct {
		from ActualLRP_State
		req  *ActualLRPInstanceKey
		to   ActualLRP_State
		want bool
	}{
		{ActualLRP_UNCLAIMED, key, ActualLRP_CLAIMED, true},
		{ActualLRP_UNCLAIMED, key, ActualLRP_RUNNING, true},
		{ActualLRP_UNCLAIMED, nil, ActualLRP_UNCLAIMED, true},
		{ActualLRP_UNCLAIMED, key, ActualLRP_CRASHED, false},
		{ActualLRP_CRASHED, nil, ActualLRP_UNCLAIMED, true},
		{ActualLRP_CRASHED, key, ActualLRP_UNCLAIMED, false},
		{ActualLRP_CRASHED, key, ActualLRP_CLAIMED, false},
		{ActualLRP_CRASHED, key, ActualLRP_RUNNING, false},
		{ActualLRP_CRASHED, nil, ActualLRP_CLAIMED, true},
		{ActualLRP_CRASHED, nil, ActualLRP_CRASHED, false},
	}
	for _, tc := range tests {
		a := &ActualLRP{State: tc.from}
		if got := a.AllowsTransitionTo(tc.req, tc.to); got != tc.want {
			t.Errorf("%s -> %s with key %v: got %v, want %v", tc.from, tc.to, tc.req, got, tc.want)
		}
	}
}

func TestAllowsTransitionToInvalidStates(t *testing.T) {
	key := &ActualLRPInstanceKey{InstanceGuid: "inst-1", CellId: "cell-1"}
	all := []ActualLRP_State{ActualLRP_STATE_UNSPECIFIED, ActualLRP_UNCLAIMED, ActualLRP_CLAIMED, ActualLRP_RUNNING, ActualLRP_CRASHED, 9}
	for _, s := range all {
		for _, k := range []*ActualLRPInstanceKey{nil, key} {
			if (&ActualLRP{State: ActualLRP_STATE_UNSPECIFIED, ActualLrpInstanceKey: key}).AllowsTransitionTo(k, s) {
				t.Errorf("from STATE_UNSPECIFIED to %s allowed", s)
			}
			if (&ActualLRP{State: 9, ActualLrpInstanceKey: key}).AllowsTransitionTo(k, s) {
				t.Errorf("from unknown state to %s allowed", s)
			}
			if s != ActualLRP_STATE_UNSPECIFIED && s != 9 {
				if (&ActualLRP{State: s, ActualLrpInstanceKey: key}).AllowsTransitionTo(k, ActualLRP_STATE_UNSPECIFIED) {
					t.Errorf("from %s to STATE_UNSPECIFIED allowed", s)
				}
			}
			var nilLRP *ActualLRP
			if nilLRP.AllowsTransitionTo(k, s) {
				t.Errorf("nil row allowed a transition to %s", s)
			}
		}
	}
}

func TestTaskTransitions(t *testing.T) {
	states := []Task_State{Task_STATE_UNSPECIFIED, Task_PENDING, Task_RUNNING, Task_COMPLETED, Task_RESOLVING}
	next := map[Task_State]Task_State{
		Task_PENDING:   Task_RUNNING,
		Task_RUNNING:   Task_COMPLETED,
		Task_COMPLETED: Task_RESOLVING,
	}
	for _, from := range states {
		for _, to := range states {
			t.Run(fmt.Sprintf("%s to %s", from, to), func(t *testing.T) {
				task := &Task{TaskGuid: "t-1", State: from}
				want, ok := next[from]
				checkTransition(t, task, from, to, task.ValidateTransitionTo(to), ok && want == to)
			})
		}
		t.Run(fmt.Sprintf("cancel from %s", from), func(t *testing.T) {
			task := &Task{TaskGuid: "t-1", State: from}
			checkTransition(t, task, from, Task_COMPLETED, task.ValidateCancelOrFail(), from == Task_PENDING || from == Task_RUNNING)
		})
		t.Run(fmt.Sprintf("reject from %s", from), func(t *testing.T) {
			task := &Task{TaskGuid: "t-1", State: from}
			checkTransition(t, task, from, Task_PENDING, task.ValidateReject(), from == Task_PENDING || from == Task_RUNNING)
		})
	}
}

func checkTransition(t *testing.T, task *Task, from, to Task_State, err error, allowed bool) {
	t.Helper()
	if allowed {
		if err != nil {
			t.Fatalf("refused: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("allowed, want refused")
	}
	if !errors.Is(err, ErrInvalidStateTransition) {
		t.Errorf("error %v is not ErrInvalidStateTransition", err)
	}
	want := fmt.Sprintf("task %s: cannot go from %s to %s", task.GetTaskGuid(), from, to)
	if err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
}

func TestNilTaskTransitions(t *testing.T) {
	var task *Task
	if task.ValidateTransitionTo(Task_RUNNING) == nil || task.ValidateCancelOrFail() == nil || task.ValidateReject() == nil {
		t.Error("nil task allowed a transition")
	}
}

func TestNewerTag(t *testing.T) {
	tag := func(epoch string, index uint32) *ModificationTag { return &ModificationTag{Epoch: epoch, Index: index} }
	tests := []struct {
		name string
		a, b *ModificationTag
		want bool
	}{
		{"larger index", tag("e", 1), tag("e", 2), true},
		{"same", tag("e", 2), tag("e", 2), false},
		{"smaller index", tag("e", 3), tag("e", 2), false},
		{"other epoch larger", tag("e", 1), tag("f", 5), true},
		{"other epoch smaller", tag("e", 5), tag("f", 0), true},
		{"nil to set", nil, tag("e", 0), true},
		{"set to nil", tag("e", 0), nil, true},
		{"nil to nil", nil, nil, false},
		{"nil to zero", nil, tag("", 0), false},
		{"nil to index", nil, tag("", 1), true},
	}
	for _, tc := range tests {
		if got := NewerTag(tc.a, tc.b); got != tc.want {
			t.Errorf("%s: NewerTag(%v, %v) = %v, want %v", tc.name, tc.a, tc.b, got, tc.want)
		}
	}
}

func TestIncrement(t *testing.T) {
	tag := &ModificationTag{Epoch: "e", Index: 4}
	before := &ModificationTag{Epoch: "e", Index: 4}
	tag.Increment()
	if tag.GetIndex() != 5 || tag.GetEpoch() != "e" {
		t.Errorf("after Increment: %v", tag)
	}
	if !NewerTag(before, tag) {
		t.Error("incremented tag is not newer")
	}
	var nilTag *ModificationTag
	nilTag.Increment() // must not panic
}
