package models

// Validate methods for the BBS request messages. The server calls Validate
// on every request before it reaches a handler, so each request type has
// one, even when there is nothing to check. Nested records are reported
// under the request field that holds them, e.g. "desired_lrp.process_guid".
// Failure, crash and rejection messages are never refused: the store
// truncates them to MaxReasonLength instead, because refusing a crash
// report for its wording would lose the crash.

// Validate has nothing to check.
func (r *ListDomainsRequest) Validate() error { return nil }

// Validate checks the domain name and its ttl.
func (r *UpsertDomainRequest) Validate() error {
	var v validator
	v.domain("domain", r.GetDomain())
	v.nonNegative("ttl", r.GetTtl())
	return v.err()
}

// Validate checks the DesiredLRP to create.
func (r *DesireLRPRequest) Validate() error {
	var v validator
	if r.GetDesiredLrp() == nil {
		v.add("desired_lrp", "must be set")
	} else {
		v.desiredLRP("desired_lrp", r.GetDesiredLrp())
	}
	return v.err()
}

// Validate checks the target guid and the update.
func (r *UpdateDesiredLRPRequest) Validate() error {
	var v validator
	v.guid("process_guid", r.GetProcessGuid())
	if r.GetUpdate() == nil {
		v.add("update", "must be set")
	} else {
		v.desiredLRPUpdate("update", r.GetUpdate())
	}
	return v.err()
}

// Validate checks the process guid.
func (r *RemoveDesiredLRPRequest) Validate() error {
	var v validator
	v.guid("process_guid", r.GetProcessGuid())
	return v.err()
}

// Validate checks the process guid.
func (r *GetDesiredLRPRequest) Validate() error {
	var v validator
	v.guid("process_guid", r.GetProcessGuid())
	return v.err()
}

// Validate checks the filters that are set.
func (r *ListDesiredLRPsRequest) Validate() error {
	var v validator
	if r.GetDomain() != "" {
		v.domain("domain", r.GetDomain())
	}
	for i, g := range r.GetProcessGuids() {
		v.guid(elem("process_guids", i), g)
	}
	return v.err()
}

// Validate checks the filters that are set.
func (r *ListActualLRPsRequest) Validate() error {
	var v validator
	if r.GetDomain() != "" {
		v.domain("domain", r.GetDomain())
	}
	if r.GetCellId() != "" {
		v.cellID("cell_id", r.GetCellId())
	}
	if r.GetProcessGuid() != "" {
		v.guid("process_guid", r.GetProcessGuid())
	}
	if r != nil && r.Index != nil {
		v.nonNegative("index", int64(r.GetIndex()))
	}
	return v.err()
}

// Validate checks the slot and the claiming instance.
func (r *ClaimActualLRPRequest) Validate() error {
	var v validator
	v.guid("process_guid", r.GetProcessGuid())
	v.nonNegative("index", int64(r.GetIndex()))
	v.instanceKey("actual_lrp_instance_key", r.GetActualLrpInstanceKey())
	return v.err()
}

// Validate checks the slot, the instance and its network information.
func (r *StartActualLRPRequest) Validate() error {
	var v validator
	v.actualLRPKey("actual_lrp_key", r.GetActualLrpKey())
	v.instanceKey("actual_lrp_instance_key", r.GetActualLrpInstanceKey())
	v.netInfo("actual_lrp_net_info", r.GetActualLrpNetInfo())
	v.internalRoutes("actual_lrp_internal_routes", r.GetActualLrpInternalRoutes())
	return v.err()
}

// Validate checks the slot and the instance; the error message is free text.
func (r *CrashActualLRPRequest) Validate() error {
	var v validator
	v.actualLRPKey("actual_lrp_key", r.GetActualLrpKey())
	v.instanceKey("actual_lrp_instance_key", r.GetActualLrpInstanceKey())
	return v.err()
}

// Validate checks the slot; the placement error is free text.
func (r *FailActualLRPRequest) Validate() error {
	var v validator
	v.actualLRPKey("actual_lrp_key", r.GetActualLrpKey())
	return v.err()
}

// Validate checks the slot and, when one is given, the instance key that
// must match for the row to be removed.
func (r *RemoveActualLRPRequest) Validate() error {
	var v validator
	v.guid("process_guid", r.GetProcessGuid())
	v.nonNegative("index", int64(r.GetIndex()))
	if k := r.GetActualLrpInstanceKey(); !k.Empty() {
		v.instanceKey("actual_lrp_instance_key", k)
	}
	return v.err()
}

// Validate checks the slot.
func (r *RetireActualLRPRequest) Validate() error {
	var v validator
	v.actualLRPKey("actual_lrp_key", r.GetActualLrpKey())
	return v.err()
}

// Validate checks the slot and the instance.
func (r *EvacuateClaimedActualLRPRequest) Validate() error {
	var v validator
	v.actualLRPKey("actual_lrp_key", r.GetActualLrpKey())
	v.instanceKey("actual_lrp_instance_key", r.GetActualLrpInstanceKey())
	return v.err()
}

// Validate checks the slot, the instance and its network information.
func (r *EvacuateRunningActualLRPRequest) Validate() error {
	var v validator
	v.actualLRPKey("actual_lrp_key", r.GetActualLrpKey())
	v.instanceKey("actual_lrp_instance_key", r.GetActualLrpInstanceKey())
	v.netInfo("actual_lrp_net_info", r.GetActualLrpNetInfo())
	v.internalRoutes("actual_lrp_internal_routes", r.GetActualLrpInternalRoutes())
	return v.err()
}

// Validate checks the slot and the instance.
func (r *EvacuateStoppedActualLRPRequest) Validate() error {
	var v validator
	v.actualLRPKey("actual_lrp_key", r.GetActualLrpKey())
	v.instanceKey("actual_lrp_instance_key", r.GetActualLrpInstanceKey())
	return v.err()
}

// Validate checks the slot and the instance; the error message is free text.
func (r *EvacuateCrashedActualLRPRequest) Validate() error {
	var v validator
	v.actualLRPKey("actual_lrp_key", r.GetActualLrpKey())
	v.instanceKey("actual_lrp_instance_key", r.GetActualLrpInstanceKey())
	return v.err()
}

// Validate checks the slot and the instance.
func (r *RemoveEvacuatingActualLRPRequest) Validate() error {
	var v validator
	v.actualLRPKey("actual_lrp_key", r.GetActualLrpKey())
	v.instanceKey("actual_lrp_instance_key", r.GetActualLrpInstanceKey())
	return v.err()
}

// Validate checks the task identity and definition.
func (r *DesireTaskRequest) Validate() error {
	var v validator
	v.guid("task_guid", r.GetTaskGuid())
	v.domain("domain", r.GetDomain())
	if r.GetTaskDefinition() == nil {
		v.add("task_definition", "must be set")
	} else {
		v.taskDefinition("task_definition", r.GetTaskDefinition())
	}
	return v.err()
}

// Validate checks the task guid and the starting cell.
func (r *StartTaskRequest) Validate() error {
	var v validator
	v.guid("task_guid", r.GetTaskGuid())
	v.cellID("cell_id", r.GetCellId())
	return v.err()
}

// Validate checks the task guid.
func (r *TaskGuidRequest) Validate() error {
	var v validator
	v.guid("task_guid", r.GetTaskGuid())
	return v.err()
}

// Validate checks the task guid; the failure reason is free text.
func (r *FailTaskRequest) Validate() error {
	var v validator
	v.guid("task_guid", r.GetTaskGuid())
	return v.err()
}

// Validate checks the task guid; the rejection reason is free text.
func (r *RejectTaskRequest) Validate() error {
	var v validator
	v.guid("task_guid", r.GetTaskGuid())
	return v.err()
}

// Validate checks the task guid and the completing cell.
func (r *CompleteTaskRequest) Validate() error {
	var v validator
	v.guid("task_guid", r.GetTaskGuid())
	v.cellID("cell_id", r.GetCellId())
	return v.err()
}

// Validate checks the filters that are set.
func (r *ListTasksRequest) Validate() error {
	var v validator
	if r.GetDomain() != "" {
		v.domain("domain", r.GetDomain())
	}
	if r.GetCellId() != "" {
		v.cellID("cell_id", r.GetCellId())
	}
	return v.err()
}

// Validate has nothing to check.
func (r *ListCellsRequest) Validate() error { return nil }

// Validate checks the cell id.
func (r *GetCellRequest) Validate() error {
	var v validator
	v.cellID("cell_id", r.GetCellId())
	return v.err()
}

// Validate checks the presence and the lease it asks for.
func (r *SetCellPresenceRequest) Validate() error {
	var v validator
	v.cellPresence("cell", r.GetCell())
	// 0 asks for the server's default ttl.
	v.between("ttl_seconds", r.GetTtlSeconds(), 0, MaxCellPresenceTTLSeconds)
	v.nonNegative("lease_id", r.GetLeaseId())
	return v.err()
}

// Validate checks the cell filter, when set, and the resume position.
func (r *SubscribeLRPEventsRequest) Validate() error {
	var v validator
	if r.GetCellId() != "" {
		v.cellID("cell_id", r.GetCellId())
	}
	v.nonNegative("after.revision", r.GetAfter().GetRevision())
	return v.err()
}

// Validate checks the resume position.
func (r *SubscribeTaskEventsRequest) Validate() error {
	var v validator
	v.nonNegative("after.revision", r.GetAfter().GetRevision())
	return v.err()
}

func (v *validator) internalRoutes(path string, routes []*ActualLRPInternalRoute) {
	for i, r := range routes {
		if r == nil {
			v.add(elem(path, i), "must be set")
			continue
		}
		v.notEmpty(field(elem(path, i), "hostname"), r.GetHostname())
	}
}
