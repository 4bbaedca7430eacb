package models

// Validate methods for the auctioneer's and the rep's request messages.
// Their servers validate every request before a handler sees it, as the
// BBS does, with the same field naming.

// maxAuctionRequests bounds one call's list, so a single request cannot
// queue unbounded work (the BBS sends one request per LRP or task).
const maxAuctionRequests = 100_000

// Validate checks every LRP start request.
func (r *RequestLRPAuctionsRequest) Validate() error {
	var v validator
	v.requestCount("requests", len(r.GetRequests()))
	for i, req := range r.GetRequests() {
		v.lrpStartRequest(elem("requests", i), req)
	}
	return v.err()
}

// Validate checks every task start request.
func (r *RequestTaskAuctionsRequest) Validate() error {
	var v validator
	v.requestCount("requests", len(r.GetRequests()))
	for i, req := range r.GetRequests() {
		v.taskStartRequest(elem("requests", i), req)
	}
	return v.err()
}

// Validate has nothing to check.
func (r *CellStateRequest) Validate() error { return nil }

// Validate checks the target cell and every piece of work.
func (r *PerformRequest) Validate() error {
	var v validator
	if r.GetCellId() != "" {
		v.cellID("cell_id", r.GetCellId())
	}
	for i, w := range r.GetLrps() {
		v.lrpWork(elem("lrps", i), w)
	}
	for i, w := range r.GetTasks() {
		v.taskWork(elem("tasks", i), w)
	}
	return v.err()
}

// Validate checks the slot and the instance to stop.
func (r *StopLRPInstanceRequest) Validate() error {
	var v validator
	v.actualLRPKey("actual_lrp_key", r.GetActualLrpKey())
	v.instanceKey("actual_lrp_instance_key", r.GetActualLrpInstanceKey())
	return v.err()
}

// Validate checks the slot, the instance, and the internal routes (each
// names a hostname); metric tags need non-empty names.
func (r *UpdateLRPInstanceRequest) Validate() error {
	var v validator
	v.actualLRPKey("actual_lrp_key", r.GetActualLrpKey())
	v.instanceKey("actual_lrp_instance_key", r.GetActualLrpInstanceKey())
	v.internalRoutes("actual_lrp_internal_routes", r.GetActualLrpInternalRoutes())
	for _, k := range sortedKeys(r.GetMetricTags()) {
		if k == "" {
			v.add(entry("metric_tags", k), "key must not be empty")
		}
	}
	return v.err()
}

// Validate checks the task guid.
func (r *CancelTaskRequest) Validate() error {
	var v validator
	v.guid("task_guid", r.GetTaskGuid())
	return v.err()
}

func (v *validator) requestCount(path string, n int) {
	switch {
	case n == 0:
		v.add(path, "must not be empty")
	case n > maxAuctionRequests:
		v.add(path, "must hold at most %d requests, has %d", maxAuctionRequests, n)
	}
}

func (v *validator) lrpStartRequest(path string, r *LRPStartRequest) {
	v.guid(field(path, "process_guid"), r.GetProcessGuid())
	v.domain(field(path, "domain"), r.GetDomain())
	if len(r.GetIndices()) == 0 {
		v.add(field(path, "indices"), "must not be empty")
	}
	for i, idx := range r.GetIndices() {
		v.nonNegative(elem(field(path, "indices"), i), int64(idx))
	}
	v.placementConstraint(field(path, "placement_constraint"), r.GetPlacementConstraint())
	v.resource(field(path, "resource"), r.GetResource())
}

func (v *validator) taskStartRequest(path string, r *TaskStartRequest) {
	v.guid(field(path, "task_guid"), r.GetTaskGuid())
	v.domain(field(path, "domain"), r.GetDomain())
	v.placementConstraint(field(path, "placement_constraint"), r.GetPlacementConstraint())
	v.resource(field(path, "resource"), r.GetResource())
}

func (v *validator) lrpWork(path string, w *LRPWork) {
	v.guid(field(path, "process_guid"), w.GetProcessGuid())
	v.nonNegative(field(path, "index"), int64(w.GetIndex()))
	v.domain(field(path, "domain"), w.GetDomain())
	v.placementConstraint(field(path, "placement_constraint"), w.GetPlacementConstraint())
	v.resource(field(path, "resource"), w.GetResource())
}

func (v *validator) taskWork(path string, w *TaskWork) {
	v.guid(field(path, "task_guid"), w.GetTaskGuid())
	v.domain(field(path, "domain"), w.GetDomain())
	v.placementConstraint(field(path, "placement_constraint"), w.GetPlacementConstraint())
	v.resource(field(path, "resource"), w.GetResource())
}

// Validate has nothing to check.
func (r *EvacuateRequest) Validate() error { return nil }

// Validate checks the container guid and the tail.
func (r *LogsRequest) Validate() error {
	var v validator
	v.guid("guid", r.GetGuid())
	v.nonNegative("tail", int64(r.GetTail()))
	return v.err()
}
