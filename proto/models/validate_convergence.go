package models

// Validate methods for the convergence requests. An action names a record
// as the converger read it, so what is checked is what the BBS needs to find
// and guard that record: its key, its modification tag, and the presence,
// state and cell the action is about.

// MaxConvergeActions bounds the actions of one ConvergeLRPs or ConvergeTasks
// request; the converger sends a larger plan in several requests.
const MaxConvergeActions = 10000

// Validate has nothing to check.
func (r *ConvergenceSnapshotRequest) Validate() error { return nil }

// Validate checks every action names a record it can be guarded on.
func (r *ConvergeLRPsRequest) Validate() error {
	var v validator
	n := 0
	rows := func(name string, list []*ActualLRP, presence ActualLRP_Presence, states ...ActualLRP_State) {
		n += len(list)
		for i, a := range list {
			v.convergedLRP(elem(name, i), a, presence, states...)
		}
	}
	rows("remove_evacuating", r.GetRemoveEvacuating(), ActualLRP_EVACUATING, ActualLRP_RUNNING)
	rows("suspect", r.GetSuspect(), ActualLRP_ORDINARY, ActualLRP_CLAIMED, ActualLRP_RUNNING)
	rows("unclaim_lost", r.GetUnclaimLost(), ActualLRP_ORDINARY, ActualLRP_CLAIMED, ActualLRP_RUNNING)
	for i, m := range r.GetCreateMissing() {
		n++
		path := elem("create_missing", i)
		if m == nil {
			v.add(path, "must be set")
			continue
		}
		v.guid(field(path, "process_guid"), m.GetProcessGuid())
		v.domain(field(path, "domain"), m.GetDomain())
		v.modificationTag(field(path, "desired_modification_tag"), m.GetDesiredModificationTag())
		if len(m.GetIndices()) == 0 {
			v.add(field(path, "indices"), "must not be empty")
		}
		for j, idx := range m.GetIndices() {
			v.between(elem(field(path, "indices"), j), int64(idx), 0, MaxInstances-1)
		}
	}
	retirements := func(name string, list []*ActualLRPRetirement, presence ActualLRP_Presence, states ...ActualLRP_State) {
		n += len(list)
		for i, ret := range list {
			path := elem(name, i)
			if ret == nil {
				v.add(path, "must be set")
				continue
			}
			v.convergedLRP(field(path, "actual_lrp"), ret.GetActualLrp(), presence, states...)
			if t := ret.GetDesiredModificationTag(); t != nil {
				v.modificationTag(field(path, "desired_modification_tag"), t)
			}
		}
	}
	retirements("retire", r.GetRetire(), ActualLRP_ORDINARY)
	retirements("remove_orphaned_suspect", r.GetRemoveOrphanedSuspect(), ActualLRP_SUSPECT, ActualLRP_CLAIMED, ActualLRP_RUNNING)
	rows("remove_extra_suspect", r.GetRemoveExtraSuspect(), ActualLRP_SUSPECT, ActualLRP_CLAIMED, ActualLRP_RUNNING)
	rows("promote_suspect", r.GetPromoteSuspect(), ActualLRP_SUSPECT, ActualLRP_CLAIMED, ActualLRP_RUNNING)
	rows("restart_crashed", r.GetRestartCrashed(), ActualLRP_ORDINARY, ActualLRP_CRASHED)
	if n > MaxConvergeActions {
		v.add("actions", "at most %d per request, got %d", MaxConvergeActions, n)
	}
	return v.err()
}

// Validate checks every action names a task in the state its rule acts on.
func (r *ConvergeTasksRequest) Validate() error {
	var v validator
	n := 0
	tasks := func(name string, list []*Task, state Task_State, needCell bool) {
		n += len(list)
		for i, t := range list {
			path := elem(name, i)
			if t == nil {
				v.add(path, "must be set")
				continue
			}
			v.guid(field(path, "task_guid"), t.GetTaskGuid())
			if t.GetState() != state {
				v.add(field(path, "state"), "must be %s, got %s", state, t.GetState())
			}
			if needCell {
				v.cellID(field(path, "cell_id"), t.GetCellId())
			}
		}
	}
	tasks("expire_pending", r.GetExpirePending(), Task_PENDING, false)
	tasks("fail_on_lost_cell", r.GetFailOnLostCell(), Task_RUNNING, true)
	tasks("demote_resolving", r.GetDemoteResolving(), Task_RESOLVING, false)
	tasks("delete_completed", r.GetDeleteCompleted(), Task_COMPLETED, false)
	for i, g := range r.GetKickCallbacks() {
		v.guid(elem("kick_callbacks", i), g)
	}
	n += len(r.GetKickCallbacks())
	if n > MaxConvergeActions {
		v.add("actions", "at most %d per request, got %d", MaxConvergeActions, n)
	}
	return v.err()
}

// Validate checks the state to store: its cells and its settings.
func (r *SaveConvergerStateRequest) Validate() error {
	var v validator
	st := r.GetState()
	if st == nil {
		v.add("state", "must be set")
		return v.err()
	}
	if st.GetGeneration() == 0 {
		v.add("state.generation", "must be at least 1")
	}
	seen := make(map[string]bool, len(st.GetCells()))
	for i, c := range st.GetCells() {
		path := elem("state.cells", i)
		if c == nil {
			v.add(path, "must be set")
			continue
		}
		v.cellID(field(path, "cell_id"), c.GetCellId())
		if seen[c.GetCellId()] {
			v.add(field(path, "cell_id"), "duplicate cell %q", c.GetCellId())
		}
		seen[c.GetCellId()] = true
		v.nonNegative(field(path, "last_seen"), c.GetLastSeen())
		v.nonNegative(field(path, "lost_at"), c.GetLostAt())
	}
	if s := st.GetSettings(); s != nil {
		v.convergenceSettings("state.settings", s)
	}
	return v.err()
}

// Validate checks the cell ids, when given.
func (r *ConfirmCellLossRequest) Validate() error {
	var v validator
	for i, c := range r.GetCellIds() {
		v.cellID(elem("cell_ids", i), c)
	}
	return v.err()
}

// Validate checks the guard threshold and that no duration is negative.
func (s *ConvergenceSettings) Validate() error {
	var v validator
	v.convergenceSettings("", s)
	return v.err()
}

func (v *validator) convergenceSettings(path string, s *ConvergenceSettings) {
	if t := s.GetGuardThreshold(); !(t > 0 && t <= 1) {
		v.add(field(path, "guard_threshold"), "must be above 0 and at most 1, got %g", t)
	}
	v.nonNegative(field(path, "guard_window_ns"), s.GetGuardWindowNs())
	v.nonNegative(field(path, "stale_unclaimed_ns"), s.GetStaleUnclaimedNs())
	v.nonNegative(field(path, "expire_pending_task_ns"), s.GetExpirePendingTaskNs())
	v.nonNegative(field(path, "kick_task_ns"), s.GetKickTaskNs())
	v.nonNegative(field(path, "expire_completed_task_ns"), s.GetExpireCompletedTaskNs())
}

// convergedLRP checks an actual LRP named by an action: its key, its tag
// (the guard), its presence, its state when states are given, and its cell
// when it must have one.
func (v *validator) convergedLRP(path string, a *ActualLRP, presence ActualLRP_Presence, states ...ActualLRP_State) {
	if a == nil {
		v.add(path, "must be set")
		return
	}
	v.actualLRPKey(field(path, "actual_lrp_key"), a.GetActualLrpKey())
	v.modificationTag(field(path, "modification_tag"), a.GetModificationTag())
	if a.GetPresence() != presence {
		v.add(field(path, "presence"), "must be %s, got %s", presence, a.GetPresence())
	}
	if len(states) == 0 {
		return
	}
	ok := false
	for _, s := range states {
		ok = ok || a.GetState() == s
	}
	if !ok {
		v.add(field(path, "state"), "must be one of %v, got %s", states, a.GetState())
		return
	}
	if a.GetState() == ActualLRP_CLAIMED || a.GetState() == ActualLRP_RUNNING {
		v.cellID(field(path, "actual_lrp_instance_key.cell_id"), a.GetActualLrpInstanceKey().GetCellId())
	}
}

func (v *validator) modificationTag(path string, t *ModificationTag) {
	if t == nil {
		v.add(path, "must be set")
		return
	}
	v.notEmpty(field(path, "epoch"), t.GetEpoch())
}
