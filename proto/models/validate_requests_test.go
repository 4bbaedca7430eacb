package models

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protoregistry"
)

type validating interface{ Validate() error }

// TestEveryRequestValidates guards the server's assumption that every
// request message can be validated.
func TestEveryRequestValidates(t *testing.T) {
	n := 0
	for _, path := range []string{"proto/models/bbs.proto", "proto/models/auctioneer.proto", "proto/models/rep.proto"} {
		n += checkRequestsValidate(t, path)
	}
	if n < 37 {
		t.Errorf("found only %d request messages", n)
	}
}

// checkRequestsValidate checks the request messages of one file and the
// inputs of its services, and returns how many request messages it found.
func checkRequestsValidate(t *testing.T, path string) int {
	t.Helper()
	fd, err := protoregistry.GlobalFiles.FindFileByPath(path)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	msgs := fd.Messages()
	for i := 0; i < msgs.Len(); i++ {
		md := msgs.Get(i)
		if !strings.HasSuffix(string(md.Name()), "Request") {
			continue
		}
		n++
		mt, err := protoregistry.GlobalTypes.FindMessageByName(md.FullName())
		if err != nil {
			t.Fatal(err)
		}
		m := mt.New().Interface()
		if _, ok := m.(validating); !ok {
			t.Errorf("%s has no Validate method", md.Name())
		}
	}
	// Also every request the service takes.
	svcs := fd.Services()
	for i := 0; i < svcs.Len(); i++ {
		methods := svcs.Get(i).Methods()
		for j := 0; j < methods.Len(); j++ {
			in := methods.Get(j).Input()
			mt, err := protoregistry.GlobalTypes.FindMessageByName(in.FullName())
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := mt.New().Interface().(validating); !ok {
				t.Errorf("%s input %s has no Validate method", methods.Get(j).Name(), in.Name())
			}
		}
	}
	return n
}

func TestRequestValidate(t *testing.T) {
	lrpKey := func() *ActualLRPKey { return &ActualLRPKey{ProcessGuid: "web-1", Index: 0, Domain: "cf-apps"} }
	instKey := func() *ActualLRPInstanceKey { return &ActualLRPInstanceKey{InstanceGuid: "i-1", CellId: "cell-1"} }
	netInfo := func() *ActualLRPNetInfo {
		return &ActualLRPNetInfo{Address: "10.0.0.3", Ports: []*PortMapping{{ContainerPort: 8080, HostPort: 61001}}}
	}
	i32 := func(n int32) *int32 { return &n }
	str := func(s string) *string { return &s }
	badDesired := validDesiredLRP()
	badDesired.ProcessGuid = ""
	badDesired.CheckDefinition.Checks[1].HttpCheck.Port = 0
	badDef := validTaskDefinition()
	badDef.Action = nil
	cell := func() *CellPresence { return &CellPresence{CellId: "cell-1", RepAddress: "10.0.0.2:1800"} }

	tests := []struct {
		name string
		req  validating
		want []string
	}{
		{"ListDomains", &ListDomainsRequest{}, nil},
		{"UpsertDomain", &UpsertDomainRequest{Domain: "cf-apps", Ttl: 120}, nil},
		{"UpsertDomain forever", &UpsertDomainRequest{Domain: "cf-apps"}, nil},
		{"UpsertDomain bad", &UpsertDomainRequest{Domain: "a b", Ttl: -1}, []string{"domain", "ttl"}},
		{"UpsertDomain empty", &UpsertDomainRequest{}, []string{"domain"}},

		{"DesireLRP", &DesireLRPRequest{DesiredLrp: validDesiredLRP()}, nil},
		{"DesireLRP missing", &DesireLRPRequest{}, []string{"desired_lrp"}},
		{"DesireLRP bad", &DesireLRPRequest{DesiredLrp: badDesired}, []string{"desired_lrp.process_guid", "desired_lrp.check_definition.checks[1].http_check.port"}},
		{"UpdateDesiredLRP", &UpdateDesiredLRPRequest{ProcessGuid: "web-1", Update: &DesiredLRPUpdate{Instances: i32(4)}}, nil},
		{"UpdateDesiredLRP missing", &UpdateDesiredLRPRequest{}, []string{"process_guid", "update"}},
		{"UpdateDesiredLRP bad", &UpdateDesiredLRPRequest{ProcessGuid: "web-1", Update: &DesiredLRPUpdate{
			Instances: i32(-1), ImageUsername: str("u"),
		}}, []string{"update.instances", "update.image_password"}},
		{"RemoveDesiredLRP", &RemoveDesiredLRPRequest{ProcessGuid: "web-1"}, nil},
		{"RemoveDesiredLRP bad", &RemoveDesiredLRPRequest{ProcessGuid: "web 1"}, []string{"process_guid"}},
		{"GetDesiredLRP", &GetDesiredLRPRequest{ProcessGuid: "web-1"}, nil},
		{"GetDesiredLRP bad", &GetDesiredLRPRequest{}, []string{"process_guid"}},
		{"ListDesiredLRPs all", &ListDesiredLRPsRequest{}, nil},
		{"ListDesiredLRPs filtered", &ListDesiredLRPsRequest{Domain: "cf-apps", ProcessGuids: []string{"a", "b"}}, nil},
		{"ListDesiredLRPs bad", &ListDesiredLRPsRequest{Domain: "x/y", ProcessGuids: []string{"a", ""}}, []string{"domain", "process_guids[1]"}},

		{"ListActualLRPs all", &ListActualLRPsRequest{}, nil},
		{"ListActualLRPs filtered", &ListActualLRPsRequest{Domain: "d", CellId: "cell-1", ProcessGuid: "p", Index: i32(0)}, nil},
		{"ListActualLRPs bad", &ListActualLRPsRequest{Domain: "d d", CellId: "c/1", ProcessGuid: "p!", Index: i32(-1)}, []string{"domain", "cell_id", "process_guid", "index"}},
		{"ClaimActualLRP", &ClaimActualLRPRequest{ProcessGuid: "p", Index: 1, ActualLrpInstanceKey: instKey()}, nil},
		{"ClaimActualLRP bad", &ClaimActualLRPRequest{Index: -1, ActualLrpInstanceKey: &ActualLRPInstanceKey{CellId: "c"}}, []string{"process_guid", "index", "actual_lrp_instance_key.instance_guid"}},
		{"ClaimActualLRP no key", &ClaimActualLRPRequest{ProcessGuid: "p"}, []string{"actual_lrp_instance_key"}},
		{"StartActualLRP", &StartActualLRPRequest{ActualLrpKey: lrpKey(), ActualLrpInstanceKey: instKey(), ActualLrpNetInfo: netInfo(),
			ActualLrpInternalRoutes: []*ActualLRPInternalRoute{{Hostname: "web.apps.internal"}}, MetricTags: map[string]string{"a": "b"}}, nil},
		{"StartActualLRP missing", &StartActualLRPRequest{}, []string{"actual_lrp_key", "actual_lrp_instance_key", "actual_lrp_net_info"}},
		{"StartActualLRP bad", &StartActualLRPRequest{ActualLrpKey: lrpKey(), ActualLrpInstanceKey: instKey(),
			ActualLrpNetInfo:        &ActualLRPNetInfo{Ports: []*PortMapping{{ContainerPort: 0}}},
			ActualLrpInternalRoutes: []*ActualLRPInternalRoute{{}, nil}},
			[]string{"actual_lrp_net_info.address", "actual_lrp_net_info.ports[0].container_port", "actual_lrp_internal_routes[0].hostname", "actual_lrp_internal_routes[1]"}},
		{"CrashActualLRP", &CrashActualLRPRequest{ActualLrpKey: lrpKey(), ActualLrpInstanceKey: instKey(), ErrorMessage: strings.Repeat("e", 5000)}, nil},
		{"CrashActualLRP bad", &CrashActualLRPRequest{ActualLrpKey: &ActualLRPKey{ProcessGuid: "p", Domain: "d", Index: -2}}, []string{"actual_lrp_key.index", "actual_lrp_instance_key"}},
		{"FailActualLRP", &FailActualLRPRequest{ActualLrpKey: lrpKey(), ErrorMessage: "found no compatible cell"}, nil},
		{"FailActualLRP empty message", &FailActualLRPRequest{ActualLrpKey: lrpKey()}, nil},
		{"FailActualLRP bad", &FailActualLRPRequest{}, []string{"actual_lrp_key"}},
		{"RemoveActualLRP", &RemoveActualLRPRequest{ProcessGuid: "p", Index: 3}, nil},
		{"RemoveActualLRP with key", &RemoveActualLRPRequest{ProcessGuid: "p", Index: 3, ActualLrpInstanceKey: instKey()}, nil},
		{"RemoveActualLRP empty key", &RemoveActualLRPRequest{ProcessGuid: "p", ActualLrpInstanceKey: &ActualLRPInstanceKey{}}, nil},
		{"RemoveActualLRP bad", &RemoveActualLRPRequest{Index: -1, ActualLrpInstanceKey: &ActualLRPInstanceKey{InstanceGuid: "i"}}, []string{"process_guid", "index", "actual_lrp_instance_key.cell_id"}},
		{"RetireActualLRP", &RetireActualLRPRequest{ActualLrpKey: lrpKey()}, nil},
		{"RetireActualLRP bad", &RetireActualLRPRequest{ActualLrpKey: &ActualLRPKey{}}, []string{"actual_lrp_key.process_guid", "actual_lrp_key.domain"}},

		{"EvacuateClaimed", &EvacuateClaimedActualLRPRequest{ActualLrpKey: lrpKey(), ActualLrpInstanceKey: instKey()}, nil},
		{"EvacuateClaimed bad", &EvacuateClaimedActualLRPRequest{}, []string{"actual_lrp_key", "actual_lrp_instance_key"}},
		{"EvacuateRunning", &EvacuateRunningActualLRPRequest{ActualLrpKey: lrpKey(), ActualLrpInstanceKey: instKey(), ActualLrpNetInfo: netInfo()}, nil},
		{"EvacuateRunning bad", &EvacuateRunningActualLRPRequest{ActualLrpKey: lrpKey(), ActualLrpInstanceKey: instKey(),
			ActualLrpInternalRoutes: []*ActualLRPInternalRoute{{}}}, []string{"actual_lrp_net_info", "actual_lrp_internal_routes[0].hostname"}},
		{"EvacuateStopped", &EvacuateStoppedActualLRPRequest{ActualLrpKey: lrpKey(), ActualLrpInstanceKey: instKey()}, nil},
		{"EvacuateStopped bad", &EvacuateStoppedActualLRPRequest{ActualLrpKey: lrpKey()}, []string{"actual_lrp_instance_key"}},
		{"EvacuateCrashed", &EvacuateCrashedActualLRPRequest{ActualLrpKey: lrpKey(), ActualLrpInstanceKey: instKey(), ErrorMessage: "oom"}, nil},
		{"EvacuateCrashed bad", &EvacuateCrashedActualLRPRequest{ActualLrpInstanceKey: instKey()}, []string{"actual_lrp_key"}},
		{"RemoveEvacuating", &RemoveEvacuatingActualLRPRequest{ActualLrpKey: lrpKey(), ActualLrpInstanceKey: instKey()}, nil},
		{"RemoveEvacuating bad", &RemoveEvacuatingActualLRPRequest{ActualLrpKey: lrpKey(), ActualLrpInstanceKey: &ActualLRPInstanceKey{}},
			[]string{"actual_lrp_instance_key.instance_guid", "actual_lrp_instance_key.cell_id"}},

		{"DesireTask", &DesireTaskRequest{TaskGuid: "t-1", Domain: "cf-tasks", TaskDefinition: validTaskDefinition()}, nil},
		{"DesireTask missing", &DesireTaskRequest{}, []string{"task_guid", "domain", "task_definition"}},
		{"DesireTask bad", &DesireTaskRequest{TaskGuid: "t-1", Domain: "cf-tasks", TaskDefinition: badDef}, []string{"task_definition.action"}},
		{"StartTask", &StartTaskRequest{TaskGuid: "t-1", CellId: "cell-1"}, nil},
		{"StartTask bad", &StartTaskRequest{}, []string{"task_guid", "cell_id"}},
		{"TaskGuid", &TaskGuidRequest{TaskGuid: "t-1"}, nil},
		{"TaskGuid bad", &TaskGuidRequest{TaskGuid: "t 1"}, []string{"task_guid"}},
		{"FailTask", &FailTaskRequest{TaskGuid: "t-1", FailureReason: strings.Repeat("f", 3000)}, nil},
		{"FailTask bad", &FailTaskRequest{FailureReason: "x"}, []string{"task_guid"}},
		{"RejectTask", &RejectTaskRequest{TaskGuid: "t-1"}, nil},
		{"RejectTask bad", &RejectTaskRequest{RejectionReason: "x"}, []string{"task_guid"}},
		{"CompleteTask", &CompleteTaskRequest{TaskGuid: "t-1", CellId: "cell-1", Failed: true, FailureReason: "exit status 1", Result: "{}"}, nil},
		{"CompleteTask bad", &CompleteTaskRequest{TaskGuid: "t-1"}, []string{"cell_id"}},
		{"ListTasks all", &ListTasksRequest{}, nil},
		{"ListTasks filtered", &ListTasksRequest{Domain: "cf-tasks", CellId: "cell-1"}, nil},
		{"ListTasks bad", &ListTasksRequest{Domain: "a/b", CellId: "c 1"}, []string{"domain", "cell_id"}},

		{"ListCells", &ListCellsRequest{}, nil},
		{"GetCell", &GetCellRequest{CellId: "cell-1"}, nil},
		{"GetCell bad", &GetCellRequest{}, []string{"cell_id"}},
		{"SetCellPresence", &SetCellPresenceRequest{Cell: cell(), TtlSeconds: 15, LeaseId: 7}, nil},
		{"SetCellPresence default ttl", &SetCellPresenceRequest{Cell: cell()}, nil},
		{"SetCellPresence max ttl", &SetCellPresenceRequest{Cell: cell(), TtlSeconds: MaxCellPresenceTTLSeconds}, nil},
		{"SetCellPresence missing", &SetCellPresenceRequest{}, []string{"cell"}},
		{"SetCellPresence bad cell", &SetCellPresenceRequest{Cell: &CellPresence{CellId: "c", Capacity: &CellCapacity{Containers: -1}}},
			[]string{"cell.rep_address", "cell.capacity.containers"}},
		{"SetCellPresence negative ttl", &SetCellPresenceRequest{Cell: cell(), TtlSeconds: -1}, []string{"ttl_seconds"}},
		{"SetCellPresence long ttl", &SetCellPresenceRequest{Cell: cell(), TtlSeconds: MaxCellPresenceTTLSeconds + 1}, []string{"ttl_seconds"}},
		{"SetCellPresence negative lease", &SetCellPresenceRequest{Cell: cell(), LeaseId: -1}, []string{"lease_id"}},

		{"SubscribeLRPEvents", &SubscribeLRPEventsRequest{}, nil},
		{"SubscribeLRPEvents filtered", &SubscribeLRPEventsRequest{CellId: "cell-1", After: &EventPosition{Revision: 10, Seq: 2}}, nil},
		{"SubscribeLRPEvents bad", &SubscribeLRPEventsRequest{CellId: "cell 1", After: &EventPosition{Revision: -1}}, []string{"cell_id", "after.revision"}},
		{"SubscribeTaskEvents", &SubscribeTaskEventsRequest{After: &EventPosition{Revision: 3}}, nil},
		{"SubscribeTaskEvents bad", &SubscribeTaskEventsRequest{After: &EventPosition{Revision: -3}}, []string{"after.revision"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkFields(t, tc.req.Validate(), tc.want...)
		})
	}
}

// TestNilRequestsDoNotPanic: the server validates whatever arrived, and a
// handler-side bug might hand over a nil message.
func TestNilRequestsDoNotPanic(t *testing.T) {
	reqs := []validating{
		(*ListDomainsRequest)(nil), (*UpsertDomainRequest)(nil), (*DesireLRPRequest)(nil),
		(*UpdateDesiredLRPRequest)(nil), (*RemoveDesiredLRPRequest)(nil), (*GetDesiredLRPRequest)(nil),
		(*ListDesiredLRPsRequest)(nil), (*ListActualLRPsRequest)(nil), (*ClaimActualLRPRequest)(nil),
		(*StartActualLRPRequest)(nil), (*CrashActualLRPRequest)(nil), (*FailActualLRPRequest)(nil),
		(*RemoveActualLRPRequest)(nil), (*RetireActualLRPRequest)(nil), (*EvacuateClaimedActualLRPRequest)(nil),
		(*EvacuateRunningActualLRPRequest)(nil), (*EvacuateStoppedActualLRPRequest)(nil),
		(*EvacuateCrashedActualLRPRequest)(nil), (*RemoveEvacuatingActualLRPRequest)(nil),
		(*DesireTaskRequest)(nil), (*StartTaskRequest)(nil), (*TaskGuidRequest)(nil), (*FailTaskRequest)(nil),
		(*RejectTaskRequest)(nil), (*CompleteTaskRequest)(nil), (*ListTasksRequest)(nil),
		(*ListCellsRequest)(nil), (*GetCellRequest)(nil), (*SetCellPresenceRequest)(nil),
		(*SubscribeLRPEventsRequest)(nil), (*SubscribeTaskEventsRequest)(nil),
		(*DesiredLRP)(nil), (*DesiredLRPUpdate)(nil), (*DesiredLRPSchedulingInfo)(nil), (*DesiredLRPRunInfo)(nil),
		(*TaskDefinition)(nil), (*Task)(nil), (*ActualLRPKey)(nil), (*ActualLRPInstanceKey)(nil),
		(*ActualLRPNetInfo)(nil), (*ActualLRP)(nil), (*Action)(nil), (*CheckDefinition)(nil),
		(*CellPresence)(nil), (*Domain)(nil), (*LRPStartRequest)(nil), (*TaskStartRequest)(nil),
	}
	for _, r := range reqs {
		_ = r.Validate()
	}
}
