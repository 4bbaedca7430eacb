package models

import (
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// unsetFields lists the top-level fields of m that are not populated.
func unsetFields(m proto.Message) []string {
	var out []string
	r := m.ProtoReflect()
	fields := r.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		if fd := fields.Get(i); !r.Has(fd) {
			out = append(out, string(fd.Name()))
		}
	}
	return out
}

func TestSplitAndJoinDesiredLRP(t *testing.T) {
	d := validDesiredLRP()
	// The fixture must set every field, or the round trip proves nothing
	// about the fields it leaves out (including ones added later).
	if unset := unsetFields(d); len(unset) > 0 {
		t.Fatalf("validDesiredLRP leaves %v unset", unset)
	}
	s, r := d.SchedulingInfo(), d.RunInfo()
	if unset := unsetFields(s); len(unset) > 0 {
		t.Errorf("SchedulingInfo leaves %v unset", unset)
	}
	if unset := unsetFields(r); len(unset) > 0 {
		t.Errorf("RunInfo leaves %v unset", unset)
	}
	if got := NewDesiredLRP(s, r); !proto.Equal(got, d) {
		t.Errorf("round trip differs:\n got %v\nwant %v", got, d)
	}

	// Where each piece lives.
	if s.ProcessGuid() != d.ProcessGuid || s.GetDesiredLrpKey().GetLogGuid() != d.LogGuid ||
		r.GetDesiredLrpKey().GetDomain() != d.Domain {
		t.Error("keys not copied")
	}
	if res := s.GetDesiredLrpResource(); res.GetMemoryMb() != 256 || res.GetDiskMb() != 1024 || res.GetMaxPids() != 1024 {
		t.Errorf("resource = %v", res)
	}
	if got := s.GetVolumePlacement().GetDriverNames(); !slices.Equal(got, []string{"nfs", "smb"}) {
		t.Errorf("driver names = %v, want distinct drivers [nfs smb]", got)
	}
	if !proto.Equal(s.GetMetricTags()["instance_id"], d.MetricTags["instance_id"]) || s.GetUpdateStrategy() != UpdateStrategy_RECREATE {
		t.Error("metric tags or update strategy not in the scheduling info")
	}
}

func TestSplitSharesNothing(t *testing.T) {
	d := validDesiredLRP()
	s, r := d.SchedulingInfo(), d.RunInfo()
	want := proto.Clone(d).(*DesiredLRP)
	// Changing the parts must not change the original, nor the reverse.
	s.Routes["cf-router"] = structpb.NewStringValue("changed")
	s.MetricTags["source_id"].Static = "changed"
	s.ModificationTag.Index = 99
	s.PlacementTags[0] = "changed"
	r.Action.GetCodependent().Actions[0].GetRun().Path = "/changed"
	r.Env[0].Name = "CHANGED"
	r.Ports[0] = 1
	if !proto.Equal(d, want) {
		t.Error("changing the split parts changed the DesiredLRP")
	}
	joined := NewDesiredLRP(s, r)
	joined.Sidecars[0].MemoryMb = 1
	joined.VolumeMounts[0].Driver = "changed"
	if r.Sidecars[0].MemoryMb == 1 || r.VolumeMounts[0].Driver == "changed" {
		t.Error("changing the joined DesiredLRP changed the run info")
	}
}

func TestSplitAndJoinSparse(t *testing.T) {
	tests := []*DesiredLRP{
		{},
		{ProcessGuid: "p", Domain: "d", Action: runAction("/a")},
		{ProcessGuid: "p", Routes: map[string]*structpb.Value{}, VolumeMounts: []*VolumeMount{{Driver: "nfs"}}},
	}
	for _, d := range tests {
		if got := NewDesiredLRP(d.SchedulingInfo(), d.RunInfo()); !proto.Equal(got, d) {
			t.Errorf("round trip of %v gave %v", d, got)
		}
	}
	var nilLRP *DesiredLRP
	if nilLRP.SchedulingInfo() != nil || nilLRP.RunInfo() != nil {
		t.Error("nil DesiredLRP split into non-nil parts")
	}
	if got := NewDesiredLRP(nil, nil); !proto.Equal(got, &DesiredLRP{}) {
		t.Errorf("NewDesiredLRP(nil, nil) = %v", got)
	}
	// Without a scheduling key, the run info's key is used.
	r := &DesiredLRPRunInfo{DesiredLrpKey: &DesiredLRPKey{ProcessGuid: "p", Domain: "d", LogGuid: "l"}}
	if got := NewDesiredLRP(&DesiredLRPSchedulingInfo{}, r); got.ProcessGuid != "p" || got.Domain != "d" || got.LogGuid != "l" {
		t.Errorf("key not taken from run info: %v", got)
	}
}

func TestLRPStartRequest(t *testing.T) {
	s := validDesiredLRP().SchedulingInfo()
	indices := []int32{0, 2}
	got := s.LRPStartRequest(indices...)
	want := &LRPStartRequest{
		ProcessGuid: "web-1234_abcd",
		Domain:      "cf-apps",
		Indices:     []int32{0, 2},
		PlacementConstraint: &PlacementConstraint{
			Rootfs:        "preloaded:cflinuxfs4",
			PlacementTags: []string{"isolation-a"},
			VolumeDrivers: []string{"nfs", "smb"},
		},
		Resource: &Resource{MemoryMb: 256, DiskMb: 1024, MaxPids: 1024},
	}
	if !proto.Equal(got, want) {
		t.Errorf("got %v\nwant %v", got, want)
	}
	indices[0] = 7
	if got.Indices[0] != 0 {
		t.Error("request shares the caller's index slice")
	}
	var nilInfo *DesiredLRPSchedulingInfo
	if r := nilInfo.LRPStartRequest(1); r.GetIndices()[0] != 1 || r.GetProcessGuid() != "" {
		t.Errorf("nil scheduling info gave %v", r)
	}
}

func TestTaskStartRequest(t *testing.T) {
	task := validTask()
	got := task.TaskStartRequest()
	want := &TaskStartRequest{
		TaskGuid: "task-1",
		Domain:   "cf-tasks",
		PlacementConstraint: &PlacementConstraint{
			Rootfs:        "docker:///busybox#1.36",
			PlacementTags: []string{"isolation-a"},
			VolumeDrivers: []string{"nfs", "smb"},
		},
		Resource: &Resource{MemoryMb: 128, DiskMb: 512, MaxPids: 100},
	}
	if !proto.Equal(got, want) {
		t.Errorf("got %v\nwant %v", got, want)
	}
	var nilTask *Task
	if r := nilTask.TaskStartRequest(); r.GetTaskGuid() != "" || r.GetPlacementConstraint() == nil {
		t.Errorf("nil task gave %v", r)
	}
}

func TestApplyUpdate(t *testing.T) {
	i32 := func(n int32) *int32 { return &n }
	str := func(s string) *string { return &s }
	newRoutes := map[string]*structpb.Value{"cf-router": structpb.NewStringValue("new")}
	newTags := map[string]*MetricTagValue{"app": {Static: "x"}}
	tests := []struct {
		name       string
		update     *DesiredLRPUpdate
		sched, run bool
		check      func(t *testing.T, s *DesiredLRPSchedulingInfo, r *DesiredLRPRunInfo)
		sameSched  bool // scheduling info left equal to the original
		sameRun    bool
	}{
		{name: "empty", update: &DesiredLRPUpdate{}, sameSched: true, sameRun: true},
		{name: "nil", update: nil, sameSched: true, sameRun: true},
		{name: "instances", update: &DesiredLRPUpdate{Instances: i32(7)}, sched: true, sameRun: true,
			check: func(t *testing.T, s *DesiredLRPSchedulingInfo, _ *DesiredLRPRunInfo) {
				if s.Instances != 7 {
					t.Errorf("instances = %d", s.Instances)
				}
			}},
		{name: "instances to zero", update: &DesiredLRPUpdate{Instances: i32(0)}, sched: true, sameRun: true,
			check: func(t *testing.T, s *DesiredLRPSchedulingInfo, _ *DesiredLRPRunInfo) {
				if s.Instances != 0 {
					t.Errorf("instances = %d", s.Instances)
				}
			}},
		{name: "same instances", update: &DesiredLRPUpdate{Instances: i32(3)}, sameSched: true, sameRun: true},
		{name: "routes replaced", update: &DesiredLRPUpdate{Routes: newRoutes}, sched: true, sameRun: true,
			check: func(t *testing.T, s *DesiredLRPSchedulingInfo, _ *DesiredLRPRunInfo) {
				if len(s.Routes) != 1 || s.Routes["cf-router"].GetStringValue() != "new" {
					t.Errorf("routes = %v", s.Routes)
				}
			}},
		{name: "routes cleared", update: &DesiredLRPUpdate{SetRoutes: true}, sched: true, sameRun: true,
			check: func(t *testing.T, s *DesiredLRPSchedulingInfo, _ *DesiredLRPRunInfo) {
				if len(s.Routes) != 0 {
					t.Errorf("routes = %v", s.Routes)
				}
			}},
		{name: "empty routes without set_routes", update: &DesiredLRPUpdate{Routes: map[string]*structpb.Value{}}, sameSched: true, sameRun: true},
		{name: "same routes", update: &DesiredLRPUpdate{Routes: validDesiredLRP().Routes}, sameSched: true, sameRun: true},
		{name: "annotation", update: &DesiredLRPUpdate{Annotation: str("etag-2")}, sched: true, sameRun: true,
			check: func(t *testing.T, s *DesiredLRPSchedulingInfo, _ *DesiredLRPRunInfo) {
				if s.Annotation != "etag-2" {
					t.Errorf("annotation = %q", s.Annotation)
				}
			}},
		{name: "annotation cleared", update: &DesiredLRPUpdate{Annotation: str("")}, sched: true, sameRun: true},
		{name: "metric tags replaced", update: &DesiredLRPUpdate{MetricTags: newTags}, sched: true, sameRun: true,
			check: func(t *testing.T, s *DesiredLRPSchedulingInfo, _ *DesiredLRPRunInfo) {
				if len(s.MetricTags) != 1 || s.MetricTags["app"].GetStatic() != "x" {
					t.Errorf("metric tags = %v", s.MetricTags)
				}
			}},
		{name: "metric tags cleared", update: &DesiredLRPUpdate{SetMetricTags: true}, sched: true, sameRun: true,
			check: func(t *testing.T, s *DesiredLRPSchedulingInfo, _ *DesiredLRPRunInfo) {
				if len(s.MetricTags) != 0 {
					t.Errorf("metric tags = %v", s.MetricTags)
				}
			}},
		{name: "image creds", update: &DesiredLRPUpdate{ImageUsername: str("u2"), ImagePassword: str("p2")}, run: true, sameSched: true,
			check: func(t *testing.T, _ *DesiredLRPSchedulingInfo, r *DesiredLRPRunInfo) {
				if r.ImageUsername != "u2" || r.ImagePassword != "p2" {
					t.Errorf("creds = %q/%q", r.ImageUsername, r.ImagePassword)
				}
			}},
		{name: "same image creds", update: &DesiredLRPUpdate{ImageUsername: str("user"), ImagePassword: str("secret")}, sameSched: true, sameRun: true},
		{name: "everything", update: &DesiredLRPUpdate{
			Instances: i32(1), Routes: newRoutes, Annotation: str("a"), MetricTags: newTags,
			ImageUsername: str(""), ImagePassword: str(""),
		}, sched: true, run: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := validDesiredLRP()
			s, r := d.SchedulingInfo(), d.RunInfo()
			sched, run := tc.update.Apply(s, r)
			if sched != tc.sched || run != tc.run {
				t.Errorf("Apply = (%v, %v), want (%v, %v)", sched, run, tc.sched, tc.run)
			}
			if tc.sameSched && !proto.Equal(s, d.SchedulingInfo()) {
				t.Errorf("scheduling info changed: %v", s)
			}
			if tc.sameRun && !proto.Equal(r, d.RunInfo()) {
				t.Errorf("run info changed: %v", r)
			}
			if !sched && !proto.Equal(s, d.SchedulingInfo()) {
				t.Error("scheduling info changed but Apply said it did not")
			}
			if !run && !proto.Equal(r, d.RunInfo()) {
				t.Error("run info changed but Apply said it did not")
			}
			if !proto.Equal(s.ModificationTag, d.ModificationTag) {
				t.Error("Apply touched the modification tag")
			}
			if tc.check != nil {
				tc.check(t, s, r)
			}
		})
	}
}

func TestApplyDoesNotAlias(t *testing.T) {
	routes := map[string]*structpb.Value{"r": structpb.NewStringValue("v")}
	u := &DesiredLRPUpdate{Routes: routes}
	s := &DesiredLRPSchedulingInfo{}
	u.Apply(s, nil) // a nil run info is left alone
	routes["r"] = structpb.NewStringValue("changed")
	if s.Routes["r"].GetStringValue() != "v" {
		t.Error("scheduling info shares the update's routes")
	}
	if sched, run := (&DesiredLRPUpdate{ImageUsername: new(string)}).Apply(nil, nil); sched || run {
		t.Error("Apply to nil targets reported a change")
	}
}

func TestActualLRPGetters(t *testing.T) {
	a := validActualLRP(ActualLRP_RUNNING)
	if a.ProcessGuid() != "web-1" || a.Index() != 2 || a.CellID() != "cell-1" || a.InstanceGuid() != "inst-1" {
		t.Errorf("getters: %q %d %q %q", a.ProcessGuid(), a.Index(), a.CellID(), a.InstanceGuid())
	}
	for _, a := range []*ActualLRP{nil, {}} {
		if a.ProcessGuid() != "" || a.Index() != 0 || a.CellID() != "" || a.InstanceGuid() != "" {
			t.Errorf("getters on %v not empty", a)
		}
	}
	var s *DesiredLRPSchedulingInfo
	if s.ProcessGuid() != "" || (&DesiredLRPSchedulingInfo{}).ProcessGuid() != "" {
		t.Error("ProcessGuid on empty scheduling info not empty")
	}
}

func TestTruncate(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"", 5, ""},
		{"hello", 5, "hello"},
		{"hello", 10, "hello"},
		{"hello", 3, "hel"},
		{"hello", 0, ""},
		{"hello", -1, ""},
		{"héllo", 2, "h"},         // é is 2 bytes; it would straddle
		{"héllo", 3, "hé"},        // fits exactly
		{"a€b", 2, "a"},           // € is 3 bytes
		{"a€b", 3, "a"},           //
		{"a€b", 4, "a€"},          //
		{"𝄞x", 3, ""},             // 4-byte rune
		{"𝄞x", 4, "𝄞"},            //
		{"ab\xffcd", 3, "ab\xff"}, // invalid bytes count one by one
		{"ab\x80\x80\x80", 4, "ab\x80\x80"},
		{"a\xe2\x82", 2, "a\xe2"}, // a truncated rune is just invalid bytes
	}
	for _, tc := range tests {
		got := Truncate(tc.in, tc.n)
		if got != tc.want {
			t.Errorf("Truncate(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
	// A long crash reason is cut to MaxReasonLength without breaking UTF-8.
	reason := strings.Repeat("é", MaxReasonLength)
	got := Truncate(reason, MaxReasonLength)
	if len(got) != MaxReasonLength || !utf8.ValidString(got) {
		t.Errorf("len %d valid %v", len(got), utf8.ValidString(got))
	}
	got = Truncate("x"+reason, MaxReasonLength)
	if len(got) != MaxReasonLength-1 || !utf8.ValidString(got) {
		t.Errorf("len %d valid %v", len(got), utf8.ValidString(got))
	}
}

func FuzzTruncate(f *testing.F) {
	f.Add("héllo wörld", 4)
	f.Add("a\xe2\x82\xacb", 2)
	f.Fuzz(func(t *testing.T, s string, n int) {
		got := Truncate(s, n)
		if len(got) > max(n, 0) || !strings.HasPrefix(s, got) {
			t.Fatalf("Truncate(%q, %d) = %q", s, n, got)
		}
		if utf8.ValidString(s) && !utf8.ValidString(got) {
			t.Fatalf("Truncate(%q, %d) = %q split a rune", s, n, got)
		}
		if n >= 0 && len(s) > n && n-len(got) >= utf8.UTFMax {
			t.Fatalf("Truncate(%q, %d) = %q dropped too much", s, n, got)
		}
	})
}
