package bbs

import (
	"context"
	"maps"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/gavel-scheduler/gavel/proto/models"
)

// Every bad request is refused with InvalidArgument naming the field, and
// the store is byte-for-byte what it was before.
func TestBadInputIsRefusedAndStoresNothing(t *testing.T) {
	c := newCluster(t, false)
	b := c.start(bbsOptions{})
	client := c.dial(b)
	ctx := ctxT(t)

	// Something to protect.
	if _, err := client.DesireLRP(ctx, &models.DesireLRPRequest{DesiredLrp: testDesired("web", 3)}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.DesireTask(ctx, testTask("job-1", "")); err != nil {
		t.Fatal(err)
	}
	if _, err := client.UpsertDomain(ctx, &models.UpsertDomainRequest{Domain: "apps"}); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, c.etcd)

	lrp := func(mutate func(d *models.DesiredLRP)) func() error {
		return func() error {
			d := testDesired("new-app", 2)
			mutate(d)
			_, err := client.DesireLRP(ctx, &models.DesireLRPRequest{DesiredLrp: d})
			return err
		}
	}
	task := func(mutate func(r *models.DesireTaskRequest)) func() error {
		return func() error {
			r := testTask("new-job", "")
			mutate(r)
			_, err := client.DesireTask(ctx, r)
			return err
		}
	}
	update := func(u *models.DesiredLRPUpdate) func() error {
		return func() error {
			_, err := client.UpdateDesiredLRP(ctx, &models.UpdateDesiredLRPRequest{ProcessGuid: "web", Update: u})
			return err
		}
	}
	run := func(r *models.RunAction) *models.Action { return &models.Action{Kind: &models.Action_Run{Run: r}} }
	neg := int32(-1)
	big := int32(100_001)
	bigRoute, _ := structpb.NewValue(strings.Repeat("r", 132_000))
	cases := []struct {
		name  string
		call  func() error
		field string
	}{
		{"empty process guid", lrp(func(d *models.DesiredLRP) { d.ProcessGuid = "" }), "desired_lrp.process_guid"},
		{"process guid with slash", lrp(func(d *models.DesiredLRP) { d.ProcessGuid = "a/b" }), "desired_lrp.process_guid"},
		{"process guid with space", lrp(func(d *models.DesiredLRP) { d.ProcessGuid = "a b" }), "desired_lrp.process_guid"},
		{"missing domain", lrp(func(d *models.DesiredLRP) { d.Domain = "" }), "desired_lrp.domain"},
		{"negative instances", lrp(func(d *models.DesiredLRP) { d.Instances = -1 }), "desired_lrp.instances"},
		{"too many instances", lrp(func(d *models.DesiredLRP) { d.Instances = 100_001 }), "desired_lrp.instances"},
		{"missing rootfs", lrp(func(d *models.DesiredLRP) { d.Rootfs = "" }), "desired_lrp.rootfs"},
		{"rootfs without scheme", lrp(func(d *models.DesiredLRP) { d.Rootfs = "cflinuxfs4" }), "desired_lrp.rootfs"},
		{"negative memory", lrp(func(d *models.DesiredLRP) { d.MemoryMb = -1 }), "desired_lrp.memory_mb"},
		{"negative disk", lrp(func(d *models.DesiredLRP) { d.DiskMb = -5 }), "desired_lrp.disk_mb"},
		{"negative max pids", lrp(func(d *models.DesiredLRP) { d.MaxPids = -5 }), "desired_lrp.max_pids"},
		{"cpu weight over 100", lrp(func(d *models.DesiredLRP) { d.CpuWeight = 101 }), "desired_lrp.cpu_weight"},
		{"missing action", lrp(func(d *models.DesiredLRP) { d.Action = nil }), "desired_lrp.action"},
		{"action with no kind", lrp(func(d *models.DesiredLRP) { d.Action = &models.Action{} }), "desired_lrp.action"},
		{"run without path", lrp(func(d *models.DesiredLRP) { d.Action = run(&models.RunAction{User: "root"}) }), "desired_lrp.action.run.path"},
		{"timeout of zero", lrp(func(d *models.DesiredLRP) {
			d.Action = &models.Action{Kind: &models.Action_Timeout{Timeout: &models.TimeoutAction{Action: run(&models.RunAction{Path: "/x"})}}}
		}), "desired_lrp.action.timeout.timeout_ms"},
		{"empty serial", lrp(func(d *models.DesiredLRP) {
			d.Action = &models.Action{Kind: &models.Action_Serial{Serial: &models.SerialAction{}}}
		}), "desired_lrp.action.serial.actions"},
		{"nested run without path", lrp(func(d *models.DesiredLRP) {
			d.Action = &models.Action{Kind: &models.Action_Serial{Serial: &models.SerialAction{Actions: []*models.Action{
				run(&models.RunAction{Path: "/ok"}), run(&models.RunAction{}),
			}}}}
		}), "desired_lrp.action.serial.actions[1].run.path"},
		{"download without to", lrp(func(d *models.DesiredLRP) {
			d.Setup = &models.Action{Kind: &models.Action_Download{Download: &models.DownloadAction{From: "http://127.0.0.1/x.tgz"}}}
		}), "desired_lrp.setup.download.to"},
		{"bad checksum algorithm", lrp(func(d *models.DesiredLRP) {
			d.Setup = &models.Action{Kind: &models.Action_Download{Download: &models.DownloadAction{
				From: "http://127.0.0.1/x.tgz", To: "/app", ChecksumAlgorithm: "crc32", ChecksumValue: "abc",
			}}}
		}), "desired_lrp.setup.download.checksum_algorithm"},
		{"annotation over 10 KiB", lrp(func(d *models.DesiredLRP) { d.Annotation = strings.Repeat("a", 10*1024+1) }), "desired_lrp.annotation"},
		{"routes over 128 KiB", lrp(func(d *models.DesiredLRP) { d.Routes = map[string]*structpb.Value{"cf-router": bigRoute} }), "desired_lrp.routes"},
		{"port zero", lrp(func(d *models.DesiredLRP) { d.Ports = []uint32{0} }), "desired_lrp.ports[0]"},
		{"port too large", lrp(func(d *models.DesiredLRP) { d.Ports = []uint32{8080, 70000} }), "desired_lrp.ports[1]"},
		{"duplicate ports", lrp(func(d *models.DesiredLRP) { d.Ports = []uint32{8080, 8080} }), "desired_lrp.ports[1]"},
		{"http check port zero", lrp(func(d *models.DesiredLRP) {
			d.CheckDefinition = &models.CheckDefinition{Checks: []*models.Check{{HttpCheck: &models.HTTPCheck{Path: "/"}}}}
		}), "desired_lrp.check_definition.checks[0].http_check.port"},
		{"check with two kinds", lrp(func(d *models.DesiredLRP) {
			d.CheckDefinition = &models.CheckDefinition{Checks: []*models.Check{{TcpCheck: &models.TCPCheck{Port: 8080}, HttpCheck: &models.HTTPCheck{Port: 8080}}}}
		}), "desired_lrp.check_definition.checks[0]"},
		{"metric tag with both values", lrp(func(d *models.DesiredLRP) {
			d.MetricTags = map[string]*models.MetricTagValue{"x": {Static: "s", Dynamic: models.MetricTagValue_INDEX}}
		}), `desired_lrp.metric_tags["x"]`},
		{"image username without password", lrp(func(d *models.DesiredLRP) { d.ImageUsername = "me" }), "desired_lrp.image_password"},
		{"egress rule bad protocol", lrp(func(d *models.DesiredLRP) {
			d.EgressRules = []*models.SecurityGroupRule{{Protocol: "sctp", Destinations: []string{"0.0.0.0/0"}}}
		}), "desired_lrp.egress_rules[0].protocol"},
		{"env without name", lrp(func(d *models.DesiredLRP) { d.Env = []*models.EnvironmentVariable{{Value: "x"}} }), "desired_lrp.env[0].name"},
		{"volume mount bad mode", lrp(func(d *models.DesiredLRP) {
			d.VolumeMounts = []*models.VolumeMount{{Driver: "nfs", ContainerDir: "/data", Mode: "x", Shared: &models.SharedDevice{VolumeId: "v"}}}
		}), "desired_lrp.volume_mounts[0].mode"},
		{"update with negative instances", update(&models.DesiredLRPUpdate{Instances: &neg}), "update.instances"},
		{"update with too many instances", update(&models.DesiredLRPUpdate{Instances: &big}), "update.instances"},
		{"update with huge annotation", update(&models.DesiredLRPUpdate{Annotation: proto.String(strings.Repeat("a", 10241))}), "update.annotation"},
		{"update without guid", func() error {
			_, err := client.UpdateDesiredLRP(ctx, &models.UpdateDesiredLRPRequest{Update: &models.DesiredLRPUpdate{}})
			return err
		}, "process_guid"},
		{"task without guid", task(func(r *models.DesireTaskRequest) { r.TaskGuid = "" }), "task_guid"},
		{"task without domain", task(func(r *models.DesireTaskRequest) { r.Domain = "" }), "domain"},
		{"task without definition", task(func(r *models.DesireTaskRequest) { r.TaskDefinition = nil }), "task_definition"},
		{"task without action", task(func(r *models.DesireTaskRequest) { r.TaskDefinition.Action = nil }), "task_definition.action"},
		{"task with ftp callback", task(func(r *models.DesireTaskRequest) { r.TaskDefinition.CompletionCallbackUrl = "ftp://127.0.0.1/x" }), "task_definition.completion_callback_url"},
		{"task with relative result file", task(func(r *models.DesireTaskRequest) { r.TaskDefinition.ResultFile = "result.txt" }), "task_definition.result_file"},
		{"task with negative memory", task(func(r *models.DesireTaskRequest) { r.TaskDefinition.MemoryMb = -1 }), "task_definition.memory_mb"},
		{"claim without instance key", func() error {
			_, err := client.ClaimActualLRP(ctx, &models.ClaimActualLRPRequest{ProcessGuid: "web", Index: 0})
			return err
		}, "actual_lrp_instance_key"},
		{"claim with negative index", func() error {
			_, err := client.ClaimActualLRP(ctx, &models.ClaimActualLRPRequest{ProcessGuid: "web", Index: -1,
				ActualLrpInstanceKey: &models.ActualLRPInstanceKey{InstanceGuid: "i", CellId: "c"}})
			return err
		}, "index"},
		{"start without net info", func() error {
			_, err := client.StartActualLRP(ctx, &models.StartActualLRPRequest{
				ActualLrpKey:         &models.ActualLRPKey{ProcessGuid: "web", Index: 0, Domain: "apps"},
				ActualLrpInstanceKey: &models.ActualLRPInstanceKey{InstanceGuid: "i", CellId: "c"},
			})
			return err
		}, "actual_lrp_net_info"},
		{"domain with negative ttl", func() error {
			_, err := client.UpsertDomain(ctx, &models.UpsertDomainRequest{Domain: "apps", Ttl: -1})
			return err
		}, "ttl"},
		{"cell presence without id", func() error {
			_, err := client.SetCellPresence(ctx, &models.SetCellPresenceRequest{Cell: &models.CellPresence{RepAddress: "127.0.0.1:1800"}})
			return err
		}, "cell.cell_id"},
	}
	if len(cases) < 30 {
		t.Fatalf("only %d bad inputs", len(cases))
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			st := status.Convert(err)
			if st.Code() != codes.InvalidArgument {
				t.Fatalf("code %v (%v), want InvalidArgument", st.Code(), err)
			}
			if !strings.Contains(st.Message(), tc.field) {
				t.Errorf("message %q does not name %q", st.Message(), tc.field)
			}
			var fields []string
			for _, d := range st.Details() {
				if br, ok := d.(*errdetails.BadRequest); ok {
					for _, v := range br.FieldViolations {
						fields = append(fields, v.Field)
					}
				}
			}
			found := false
			for _, f := range fields {
				found = found || f == tc.field
			}
			if !found {
				t.Errorf("field violations %v do not include %q", fields, tc.field)
			}
		})
	}

	// Well-formed requests the rules refuse change nothing either.
	refused := []struct {
		name string
		call func() error
		code codes.Code
	}{
		{"desire an existing guid", func() error {
			_, err := client.DesireLRP(ctx, &models.DesireLRPRequest{DesiredLrp: testDesired("web", 1)})
			return err
		}, codes.AlreadyExists},
		{"claim a missing LRP", func() error {
			_, err := client.ClaimActualLRP(ctx, &models.ClaimActualLRPRequest{ProcessGuid: "nope", Index: 0,
				ActualLrpInstanceKey: &models.ActualLRPInstanceKey{InstanceGuid: "i", CellId: "c"}})
			return err
		}, codes.NotFound},
		{"complete a pending task", func() error {
			_, err := client.CompleteTask(ctx, &models.CompleteTaskRequest{TaskGuid: "job-1", CellId: "c"})
			return err
		}, codes.FailedPrecondition},
		{"delete a pending task", func() error {
			_, err := client.DeleteTask(ctx, &models.TaskGuidRequest{TaskGuid: "job-1"})
			return err
		}, codes.FailedPrecondition},
	}
	for _, tc := range refused {
		if got := status.Code(tc.call()); got != tc.code {
			t.Errorf("%s: code %v, want %v", tc.name, got, tc.code)
		}
	}

	after := snapshot(t, c.etcd)
	if !maps.Equal(before, after) {
		t.Fatalf("store changed: %d keys before, %d after", len(before), len(after))
	}
}

var _ = context.Background
