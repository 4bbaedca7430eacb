package models

// Empty reports whether k names no placement: nil, or both fields empty.
// UNCLAIMED and CRASHED rows carry an empty key.
func (k *ActualLRPInstanceKey) Empty() bool {
	return k.GetInstanceGuid() == "" && k.GetCellId() == ""
}

// Equal reports whether k and o name the same placement. A nil key equals
// an empty one.
func (k *ActualLRPInstanceKey) Equal(o *ActualLRPInstanceKey) bool {
	return k.GetInstanceGuid() == o.GetInstanceGuid() && k.GetCellId() == o.GetCellId()
}

// AllowsTransitionTo reports whether the stored row a may move to state to
// at the request of the instance identified by instanceKey (nil or empty
// when the caller is not an instance, e.g. convergence unclaiming a row).
//
// The guard keeps a stale or foreign instance from overwriting the row:
// once a row is claimed, only the instance holding the claim may move it
// on, except that anyone may start a CLAIMED row (the first instance to
// report RUNNING wins a claim race) and only a key-less caller may unclaim.
func (a *ActualLRP) AllowsTransitionTo(instanceKey *ActualLRPInstanceKey, to ActualLRP_State) bool {
	if a == nil {
		return false
	}
	same := a.GetActualLrpInstanceKey().Equal(instanceKey)
	empty := instanceKey.Empty()
	switch a.GetState() {
	case ActualLRP_UNCLAIMED:
		switch to {
		case ActualLRP_UNCLAIMED, ActualLRP_CLAIMED, ActualLRP_RUNNING:
			return true
		}
	case ActualLRP_CLAIMED:
		switch to {
		case ActualLRP_UNCLAIMED:
			return empty
		case ActualLRP_CLAIMED, ActualLRP_CRASHED:
			return same
		case ActualLRP_RUNNING:
			return true
		}
	case ActualLRP_RUNNING:
		switch to {
		case ActualLRP_UNCLAIMED:
			return empty
		case ActualLRP_CLAIMED, ActualLRP_RUNNING, ActualLRP_CRASHED:
			return same
		}
	case ActualLRP_CRASHED:
		switch to {
		case ActualLRP_UNCLAIMED:
			return empty
		case ActualLRP_CLAIMED, ActualLRP_RUNNING:
			return same
		}
	}
	return false
}

// ValidateTransitionTo checks a step along the task's normal path:
// PENDING → RUNNING → COMPLETED → RESOLVING. Cancel, fail and reject have
// their own checks.
func (t *Task) ValidateTransitionTo(to Task_State) error {
	from := t.GetState()
	var ok bool
	switch to {
	case Task_RUNNING:
		ok = from == Task_PENDING
	case Task_COMPLETED:
		ok = from == Task_RUNNING
	case Task_RESOLVING:
		ok = from == Task_COMPLETED
	}
	if !ok {
		return t.transitionError(to)
	}
	return nil
}

// ValidateCancelOrFail checks that the task may be completed as failed
// (cancel, fail): only a task that has not completed yet can be.
func (t *Task) ValidateCancelOrFail() error {
	if s := t.GetState(); s != Task_PENDING && s != Task_RUNNING {
		return t.transitionError(Task_COMPLETED)
	}
	return nil
}

// ValidateReject checks that the task may be put back to PENDING for
// another placement: only a task that has not completed yet can be.
func (t *Task) ValidateReject() error {
	if s := t.GetState(); s != Task_PENDING && s != Task_RUNNING {
		return t.transitionError(Task_PENDING)
	}
	return nil
}

func (t *Task) transitionError(to Task_State) error {
	return NewError(TypeInvalidStateTransition, "task %s: cannot go from %s to %s", t.GetTaskGuid(), t.GetState(), to)
}

// NewerTag reports whether b supersedes a: it belongs to a different epoch
// (the record was recreated) or is a later change in the same epoch. A nil
// tag counts as the zero tag.
func NewerTag(a, b *ModificationTag) bool {
	if a.GetEpoch() != b.GetEpoch() {
		return true
	}
	return b.GetIndex() > a.GetIndex()
}

// Increment records one more change to the tagged record. It does nothing
// on a nil tag. The index wraps at 2^32 like Diego's; a record is never
// changed that often within one epoch.
func (t *ModificationTag) Increment() {
	if t != nil {
		t.Index++
	}
}
