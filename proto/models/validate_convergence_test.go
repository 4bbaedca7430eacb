package models

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestConvergenceRequestValidate(t *testing.T) {
	tag := &ModificationTag{Epoch: "e", Index: 3}
	row := func(p ActualLRP_Presence, s ActualLRP_State, cell string) *ActualLRP {
		a := &ActualLRP{ActualLrpKey: &ActualLRPKey{ProcessGuid: "web", Index: 1, Domain: "apps"}, Presence: p, State: s, ModificationTag: tag}
		if cell != "" {
			a.ActualLrpInstanceKey = &ActualLRPInstanceKey{InstanceGuid: "i-1", CellId: cell}
		}
		return a
	}
	running := func(p ActualLRP_Presence) *ActualLRP { return row(p, ActualLRP_RUNNING, "cell-1") }
	untagged := running(ActualLRP_ORDINARY)
	untagged.ModificationTag = nil
	task := func(s Task_State, cell string) *Task { return &Task{TaskGuid: "job", State: s, CellId: cell} }
	many := make([]*ActualLRP, MaxConvergeActions+1)
	for i := range many {
		many[i] = running(ActualLRP_ORDINARY)
	}

	cases := []struct {
		name  string
		req   interface{ Validate() error }
		field string // "" when valid
	}{
		{"snapshot", &ConvergenceSnapshotRequest{}, ""},
		{"every LRP rule", &ConvergeLRPsRequest{
			RemoveEvacuating:      []*ActualLRP{running(ActualLRP_EVACUATING)},
			Suspect:               []*ActualLRP{running(ActualLRP_ORDINARY)},
			UnclaimLost:           []*ActualLRP{row(ActualLRP_ORDINARY, ActualLRP_CLAIMED, "cell-1")},
			CreateMissing:         []*MissingActualLRPs{{ProcessGuid: "web", Domain: "apps", DesiredModificationTag: tag, Indices: []int32{0, 4}}},
			Retire:                []*ActualLRPRetirement{{ActualLrp: row(ActualLRP_ORDINARY, ActualLRP_UNCLAIMED, "")}, {ActualLrp: running(ActualLRP_ORDINARY), DesiredModificationTag: tag}},
			RemoveOrphanedSuspect: []*ActualLRPRetirement{{ActualLrp: running(ActualLRP_SUSPECT)}},
			RemoveExtraSuspect:    []*ActualLRP{running(ActualLRP_SUSPECT)},
			PromoteSuspect:        []*ActualLRP{row(ActualLRP_SUSPECT, ActualLRP_CLAIMED, "cell-2")},
			RestartCrashed:        []*ActualLRP{row(ActualLRP_ORDINARY, ActualLRP_CRASHED, "")},
		}, ""},
		{"suspect of a SUSPECT row", &ConvergeLRPsRequest{Suspect: []*ActualLRP{running(ActualLRP_SUSPECT)}}, "suspect[0].presence"},
		{"suspect without a cell", &ConvergeLRPsRequest{Suspect: []*ActualLRP{row(ActualLRP_ORDINARY, ActualLRP_RUNNING, "")}}, "suspect[0].actual_lrp_instance_key.cell_id"},
		{"suspect of an unclaimed row", &ConvergeLRPsRequest{Suspect: []*ActualLRP{row(ActualLRP_ORDINARY, ActualLRP_UNCLAIMED, "")}}, "suspect[0].state"},
		{"restart of a running row", &ConvergeLRPsRequest{RestartCrashed: []*ActualLRP{running(ActualLRP_ORDINARY)}}, "restart_crashed[0].state"},
		{"action without a tag", &ConvergeLRPsRequest{Retire: []*ActualLRPRetirement{{ActualLrp: untagged}}}, "retire[0].actual_lrp.modification_tag"},
		{"action without a row", &ConvergeLRPsRequest{PromoteSuspect: []*ActualLRP{nil}}, "promote_suspect[0]"},
		{"bad process guid", &ConvergeLRPsRequest{CreateMissing: []*MissingActualLRPs{{ProcessGuid: "a/b", Domain: "apps", DesiredModificationTag: tag, Indices: []int32{0}}}}, "create_missing[0].process_guid"},
		{"missing without indices", &ConvergeLRPsRequest{CreateMissing: []*MissingActualLRPs{{ProcessGuid: "web", Domain: "apps", DesiredModificationTag: tag}}}, "create_missing[0].indices"},
		{"negative index", &ConvergeLRPsRequest{CreateMissing: []*MissingActualLRPs{{ProcessGuid: "web", Domain: "apps", DesiredModificationTag: tag, Indices: []int32{-1}}}}, "create_missing[0].indices[0]"},
		{"missing without a desired tag", &ConvergeLRPsRequest{CreateMissing: []*MissingActualLRPs{{ProcessGuid: "web", Domain: "apps", Indices: []int32{0}}}}, "create_missing[0].desired_modification_tag"},
		{"too many actions", &ConvergeLRPsRequest{Suspect: many}, "actions"},
		{"every task rule", &ConvergeTasksRequest{
			ExpirePending: []*Task{task(Task_PENDING, "")}, FailOnLostCell: []*Task{task(Task_RUNNING, "cell-1")},
			DemoteResolving: []*Task{task(Task_RESOLVING, "")}, DeleteCompleted: []*Task{task(Task_COMPLETED, "")},
			KickCallbacks: []string{"job"},
		}, ""},
		{"expire of a running task", &ConvergeTasksRequest{ExpirePending: []*Task{task(Task_RUNNING, "cell-1")}}, "expire_pending[0].state"},
		{"lost-cell failure without a cell", &ConvergeTasksRequest{FailOnLostCell: []*Task{task(Task_RUNNING, "")}}, "fail_on_lost_cell[0].cell_id"},
		{"bad kick guid", &ConvergeTasksRequest{KickCallbacks: []string{""}}, "kick_callbacks[0]"},
		{"state", &SaveConvergerStateRequest{State: &ConvergerState{Generation: 1, Cells: []*ConvergerCell{{CellId: "cell-1"}},
			Settings: &ConvergenceSettings{GuardThreshold: 0.5}}}, ""},
		{"no state", &SaveConvergerStateRequest{}, "state"},
		{"generation 0", &SaveConvergerStateRequest{State: &ConvergerState{}}, "state.generation"},
		{"duplicate cell", &SaveConvergerStateRequest{State: &ConvergerState{Generation: 2, Cells: []*ConvergerCell{{CellId: "c"}, {CellId: "c"}}}}, "state.cells[1].cell_id"},
		{"threshold over 1", &SaveConvergerStateRequest{State: &ConvergerState{Generation: 2, Settings: &ConvergenceSettings{GuardThreshold: 1.5}}}, "state.settings.guard_threshold"},
		{"negative window", &SaveConvergerStateRequest{State: &ConvergerState{Generation: 2, Settings: &ConvergenceSettings{GuardThreshold: 0.5, GuardWindowNs: -1}}}, "state.settings.guard_window_ns"},
		{"confirm all", &ConfirmCellLossRequest{}, ""},
		{"confirm a bad cell id", &ConfirmCellLossRequest{CellIds: []string{"ok", "a/b"}}, "cell_ids[1]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.req.Validate()
			if tc.field == "" {
				if err != nil {
					t.Fatalf("valid request refused: %v", err)
				}
				return
			}
			var verrs ValidationErrors
			if !errors.As(err, &verrs) {
				t.Fatalf("want a validation error naming %s, got %v", tc.field, err)
			}
			if !slices.Contains(verrs.Fields(), tc.field) {
				t.Fatalf("errors name %v, want %s (%v)", verrs.Fields(), tc.field, err)
			}
			if strings.Contains(err.Error(), "invalid :") {
				t.Fatalf("error names no field: %v", err)
			}
		})
	}
}
