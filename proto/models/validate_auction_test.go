package models

import "testing"

func TestAuctionAndRepRequestValidate(t *testing.T) {
	constraint := func() *PlacementConstraint {
		return &PlacementConstraint{Rootfs: "preloaded:busybox", PlacementTags: []string{"gpu"}}
	}
	lrpReq := func() *LRPStartRequest {
		return &LRPStartRequest{ProcessGuid: "web", Domain: "apps", Indices: []int32{0, 1},
			PlacementConstraint: constraint(), Resource: &Resource{MemoryMb: 128, DiskMb: 256}}
	}
	taskReq := func() *TaskStartRequest {
		return &TaskStartRequest{TaskGuid: "t-1", Domain: "tasks", PlacementConstraint: constraint(), Resource: &Resource{MemoryMb: 64}}
	}
	lrpWork := func() *LRPWork {
		return &LRPWork{ProcessGuid: "web", Index: 2, Domain: "apps", PlacementConstraint: constraint(), Resource: &Resource{MemoryMb: 128}}
	}
	taskWork := func() *TaskWork {
		return &TaskWork{TaskGuid: "t-1", Domain: "tasks", PlacementConstraint: constraint(), Resource: &Resource{}}
	}
	tooMany := make([]*TaskStartRequest, maxAuctionRequests+1)
	for i := range tooMany {
		tooMany[i] = taskReq()
	}
	tests := []struct {
		name string
		req  validating
		want []string
	}{
		{"RequestLRPAuctions", &RequestLRPAuctionsRequest{Requests: []*LRPStartRequest{lrpReq(), lrpReq()}}, nil},
		{"RequestLRPAuctions empty", &RequestLRPAuctionsRequest{}, []string{"requests"}},
		{"RequestLRPAuctions bad", &RequestLRPAuctionsRequest{Requests: []*LRPStartRequest{lrpReq(), {ProcessGuid: "a b", Indices: []int32{-1},
			PlacementConstraint: &PlacementConstraint{}, Resource: &Resource{MemoryMb: -1}}, nil}},
			[]string{"requests[1].process_guid", "requests[1].domain", "requests[1].indices[0]", "requests[1].placement_constraint.rootfs",
				"requests[1].resource.memory_mb", "requests[2].process_guid", "requests[2].domain", "requests[2].indices", "requests[2].placement_constraint"}},
		{"RequestTaskAuctions", &RequestTaskAuctionsRequest{Requests: []*TaskStartRequest{taskReq()}}, nil},
		{"RequestTaskAuctions empty", &RequestTaskAuctionsRequest{}, []string{"requests"}},
		{"RequestTaskAuctions too many", &RequestTaskAuctionsRequest{Requests: tooMany}, []string{"requests"}},
		{"RequestTaskAuctions bad", &RequestTaskAuctionsRequest{Requests: []*TaskStartRequest{{TaskGuid: "t", Domain: "d",
			PlacementConstraint: &PlacementConstraint{Rootfs: "no-scheme"}, Resource: &Resource{DiskMb: -5}}}},
			[]string{"requests[0].placement_constraint.rootfs", "requests[0].resource.disk_mb"}},

		{"CellState", &CellStateRequest{}, nil},
		{"Perform", &PerformRequest{CellId: "cell-1", Lrps: []*LRPWork{lrpWork()}, Tasks: []*TaskWork{taskWork()}}, nil},
		{"Perform nothing", &PerformRequest{}, nil},
		{"Perform bad", &PerformRequest{CellId: "cell 1", Lrps: []*LRPWork{{ProcessGuid: "p", Index: -1, Domain: "d",
			PlacementConstraint: constraint(), Resource: &Resource{}}}, Tasks: []*TaskWork{{}}},
			[]string{"cell_id", "lrps[0].index", "tasks[0].task_guid", "tasks[0].domain", "tasks[0].placement_constraint"}},
		{"StopLRPInstance", &StopLRPInstanceRequest{ActualLrpKey: &ActualLRPKey{ProcessGuid: "p", Domain: "d"},
			ActualLrpInstanceKey: &ActualLRPInstanceKey{InstanceGuid: "i", CellId: "c"}}, nil},
		{"StopLRPInstance bad", &StopLRPInstanceRequest{}, []string{"actual_lrp_key", "actual_lrp_instance_key"}},
		{"UpdateLRPInstance", &UpdateLRPInstanceRequest{ActualLrpKey: &ActualLRPKey{ProcessGuid: "p", Index: 1, Domain: "d"},
			ActualLrpInstanceKey:    &ActualLRPInstanceKey{InstanceGuid: "i", CellId: "c"},
			ActualLrpInternalRoutes: []*ActualLRPInternalRoute{{Hostname: "p.apps.internal"}}, MetricTags: map[string]string{"index": "1"}}, nil},
		{"UpdateLRPInstance to nothing", &UpdateLRPInstanceRequest{ActualLrpKey: &ActualLRPKey{ProcessGuid: "p", Domain: "d"},
			ActualLrpInstanceKey: &ActualLRPInstanceKey{InstanceGuid: "i", CellId: "c"}}, nil},
		{"UpdateLRPInstance bad", &UpdateLRPInstanceRequest{ActualLrpKey: &ActualLRPKey{ProcessGuid: "p", Index: -1, Domain: "d"},
			ActualLrpInternalRoutes: []*ActualLRPInternalRoute{{Hostname: "ok"}, {}, nil}, MetricTags: map[string]string{"": "x", "ok": ""}},
			[]string{"actual_lrp_key.index", "actual_lrp_instance_key", "actual_lrp_internal_routes[1].hostname", "actual_lrp_internal_routes[2]", "metric_tags[\"\"]"}},
		{"CancelTask", &CancelTaskRequest{TaskGuid: "t-1"}, nil},
		{"CancelTask bad", &CancelTaskRequest{TaskGuid: "t/1"}, []string{"task_guid"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkFields(t, tc.req.Validate(), tc.want...)
		})
	}
	for _, r := range []validating{(*RequestLRPAuctionsRequest)(nil), (*RequestTaskAuctionsRequest)(nil), (*CellStateRequest)(nil),
		(*PerformRequest)(nil), (*StopLRPInstanceRequest)(nil), (*UpdateLRPInstanceRequest)(nil), (*CancelTaskRequest)(nil)} {
		_ = r.Validate()
	}
}
