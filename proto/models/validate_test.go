package models

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/types/known/structpb"
)

// fieldsOf returns the fields named by a Validate error, failing the test
// if the error is not ValidationErrors.
func fieldsOf(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	var verrs ValidationErrors
	if !errors.As(err, &verrs) {
		t.Fatalf("error %v is %T, want ValidationErrors", err, err)
	}
	if len(verrs) == 0 {
		t.Fatalf("empty ValidationErrors returned as an error")
	}
	for _, v := range verrs {
		if v.Field == "" || v.Reason == "" {
			t.Errorf("validation error without field or reason: %#v", v)
		}
	}
	return verrs.Fields()
}

// checkFields asserts that err names exactly the fields in want.
func checkFields(t *testing.T, err error, want ...string) {
	t.Helper()
	if got := fieldsOf(t, err); !slices.Equal(got, want) {
		t.Errorf("fields = %q, want %q (error: %v)", got, want, err)
	}
}

func mustValue(t testing.TB, v any) *structpb.Value {
	t.Helper()
	val, err := structpb.NewValue(v)
	if err != nil {
		t.Fatal(err)
	}
	return val
}

func runAction(path string) *Action {
	return &Action{Kind: &Action_Run{Run: &RunAction{Path: path}}}
}

func serialAction(actions ...*Action) *Action {
	return &Action{Kind: &Action_Serial{Serial: &SerialAction{Actions: actions}}}
}

func tryAction(a *Action) *Action {
	return &Action{Kind: &Action_Try{Try: &TryAction{Action: a}}}
}

// validDesiredLRP returns a valid DesiredLRP that sets every field, so that
// each validation case can break exactly one rule and the conversion tests
// see every field.
func validDesiredLRP() *DesiredLRP {
	routes, err := structpb.NewValue(map[string]any{
		"hosts": []any{"web.example.com"},
		"port":  8080,
	})
	if err != nil {
		panic(err)
	}
	limit := uint64(1024)
	return &DesiredLRP{
		ProcessGuid: "web-1234_abcd",
		Domain:      "cf-apps",
		LogGuid:     "log-1234",
		Instances:   3,
		Rootfs:      "preloaded:cflinuxfs4",
		MemoryMb:    256,
		DiskMb:      1024,
		MaxPids:     1024,
		CpuWeight:   50,
		Privileged:  true,
		Ports:       []uint32{8080, 9090},
		Routes:      map[string]*structpb.Value{"cf-router": routes},
		Setup: serialAction(
			&Action{Kind: &Action_Download{Download: &DownloadAction{
				Artifact: "droplet", From: "https://blobs.example.com/droplet.tgz", To: "/home/vcap",
				CacheKey: "droplet-1", ChecksumAlgorithm: "sha256", ChecksumValue: "abc123",
			}}},
		),
		Action: &Action{Kind: &Action_Codependent{Codependent: &CodependentAction{Actions: []*Action{
			{Kind: &Action_Run{Run: &RunAction{
				Path: "/home/vcap/app/start", Args: []string{"--port", "8080"}, Dir: "/home/vcap",
				Env:            []*EnvironmentVariable{{Name: "PORT", Value: "8080"}},
				ResourceLimits: &ResourceLimits{Nofile: &limit},
				User:           "vcap",
			}}},
			{Kind: &Action_EmitProgress{EmitProgress: &EmitProgressAction{
				Action: runAction("/sidecar"), StartMessage: "starting", SuccessMessage: "ok",
			}}},
		}}}},
		Monitor: &Action{Kind: &Action_Timeout{Timeout: &TimeoutAction{
			Action: tryAction(runAction("/healthcheck")), TimeoutMs: 30000,
		}}},
		CheckDefinition: &CheckDefinition{
			Checks: []*Check{
				{TcpCheck: &TCPCheck{Port: 8080, ConnectTimeoutMs: 1000}},
				{HttpCheck: &HTTPCheck{Port: 9090, Path: "/health"}},
			},
			LogSource:       "HEALTH",
			ReadinessChecks: []*Check{{ExecCheck: &ExecCheck{Path: "/ready", Args: []string{"-q"}}}},
		},
		StartTimeoutMs: 60000,
		Env:            []*EnvironmentVariable{{Name: "LANG", Value: "en_US.UTF-8"}},
		PlacementTags:  []string{"isolation-a"},
		LogSource:      "APP",
		MetricsGuid:    "metrics-1234",
		MetricTags: map[string]*MetricTagValue{
			"source_id":   {Static: "web-1234"},
			"instance_id": {Dynamic: MetricTagValue_INDEX},
		},
		Annotation: "etag-1",
		EgressRules: []*SecurityGroupRule{
			{Protocol: "tcp", Destinations: []string{"10.0.0.0/8"}, Ports: []uint32{443, 5432}},
			{Protocol: "udp", Destinations: []string{"10.0.0.1-10.0.0.9"}, PortRange: &PortRange{Start: 53, End: 54}},
			{Protocol: "icmp", Destinations: []string{"0.0.0.0/0"}, IcmpInfo: &ICMPInfo{Type: 8, Code: 0}},
			{Protocol: "all", Destinations: []string{"fd00::1"}, Log: true, Annotations: []string{"security_group_id:1"}},
		},
		CachedDependencies: []*CachedDependency{{
			Name: "lifecycle", From: "https://blobs.example.com/lifecycle.tgz", To: "/tmp/lifecycle",
			CacheKey: "lifecycle-1", ChecksumAlgorithm: "sha1", ChecksumValue: "def456",
		}},
		ImageLayers: []*ImageLayer{
			{Name: "base", Url: "https://blobs.example.com/base.tgz", DestinationPath: "/", LayerType: ImageLayer_SHARED, MediaType: ImageLayer_TGZ},
			{Url: "https://blobs.example.com/app.tar", DestinationPath: "/app", LayerType: ImageLayer_EXCLUSIVE, MediaType: ImageLayer_TAR, DigestAlgorithm: "sha256", DigestValue: "feed"},
		},
		VolumeMounts: []*VolumeMount{
			{Driver: "nfs", ContainerDir: "/data", Mode: "rw", Shared: &SharedDevice{VolumeId: "vol-1", MountConfig: `{"uid":"1000"}`}},
			{Driver: "smb", ContainerDir: "/share", Mode: "r", Shared: &SharedDevice{VolumeId: "vol-2"}},
			{Driver: "nfs", ContainerDir: "/data2", Mode: "r", Shared: &SharedDevice{VolumeId: "vol-3"}},
		},
		VolumeMountedFiles:            []*File{{Path: "/etc/config/app.yml", Content: "a: 1"}},
		ImageUsername:                 "user",
		ImagePassword:                 "secret",
		TrustedSystemCertificatesPath: "/etc/cf-system-certificates",
		CertificateProperties:         &CertificateProperties{OrganizationalUnit: []string{"app:1234"}},
		Network:                       &Network{Properties: map[string]string{"policy_group_id": "pg-1"}},
		Sidecars:                      []*Sidecar{{Action: runAction("/envoy"), DiskMb: 64, MemoryMb: 32}},
		LogRateLimit:                  &LogRateLimit{BytesPerSecond: 1 << 20},
		LegacyDownloadUser:            "vcap",
		ModificationTag:               &ModificationTag{Epoch: "epoch-1", Index: 2},
		UpdateStrategy:                UpdateStrategy_RECREATE,
		CreatedAt:                     1700000000000000000,
	}
}

func TestDesiredLRPValidate(t *testing.T) {
	bigRoutes := func(d *DesiredLRP) {
		d.Routes = map[string]*structpb.Value{"cf-router": structpb.NewStringValue(strings.Repeat("x", MaxRoutesSize))}
	}
	manyPorts := func(d *DesiredLRP) {
		d.Ports = nil
		for p := uint32(1); p <= MaxPorts+1; p++ {
			d.Ports = append(d.Ports, p)
		}
	}
	tests := []struct {
		name   string
		mutate func(d *DesiredLRP)
		want   []string
	}{
		{"valid", func(d *DesiredLRP) {}, nil},
		{"valid minimal", func(d *DesiredLRP) {
			*d = DesiredLRP{ProcessGuid: "p", Domain: "d", Rootfs: "docker:///busybox#latest", Action: runAction("/bin/sh")}
		}, nil},
		{"valid limits", func(d *DesiredLRP) {
			d.Instances = MaxInstances
			d.CpuWeight = MaxCPUWeight
			d.Annotation = strings.Repeat("a", MaxAnnotationLength)
			d.ProcessGuid = strings.Repeat("g", MaxGuidLength)
			d.Domain = strings.Repeat("d", MaxDomainLength)
			d.LogRateLimit.BytesPerSecond = -1
			d.Ports = []uint32{1, 65535}
		}, nil},
		{"valid without optional parts", func(d *DesiredLRP) {
			d.Setup, d.Monitor, d.CheckDefinition, d.Routes, d.LogRateLimit = nil, nil, nil, nil, nil
			d.ImageUsername, d.ImagePassword = "", ""
			d.Instances = 0
		}, nil},

		{"process_guid empty", func(d *DesiredLRP) { d.ProcessGuid = "" }, []string{"process_guid"}},
		{"process_guid charset", func(d *DesiredLRP) { d.ProcessGuid = "web/1" }, []string{"process_guid"}},
		{"process_guid dot", func(d *DesiredLRP) { d.ProcessGuid = "web.1" }, []string{"process_guid"}},
		{"process_guid too long", func(d *DesiredLRP) { d.ProcessGuid = strings.Repeat("g", MaxGuidLength+1) }, []string{"process_guid"}},
		{"domain empty", func(d *DesiredLRP) { d.Domain = "" }, []string{"domain"}},
		{"domain slash", func(d *DesiredLRP) { d.Domain = "cf/apps" }, []string{"domain"}},
		{"domain whitespace", func(d *DesiredLRP) { d.Domain = "cf apps" }, []string{"domain"}},
		{"domain tab", func(d *DesiredLRP) { d.Domain = "cf\tapps" }, []string{"domain"}},
		{"domain too long", func(d *DesiredLRP) { d.Domain = strings.Repeat("d", MaxDomainLength+1) }, []string{"domain"}},
		{"instances negative", func(d *DesiredLRP) { d.Instances = -1 }, []string{"instances"}},
		{"instances too many", func(d *DesiredLRP) { d.Instances = MaxInstances + 1 }, []string{"instances"}},
		{"rootfs empty", func(d *DesiredLRP) { d.Rootfs = "" }, []string{"rootfs"}},
		{"rootfs without scheme", func(d *DesiredLRP) { d.Rootfs = "cflinuxfs4" }, []string{"rootfs"}},
		{"rootfs unparsable", func(d *DesiredLRP) { d.Rootfs = "://nope" }, []string{"rootfs"}},
		{"memory_mb negative", func(d *DesiredLRP) { d.MemoryMb = -1 }, []string{"memory_mb"}},
		{"disk_mb negative", func(d *DesiredLRP) { d.DiskMb = -1 }, []string{"disk_mb"}},
		{"max_pids negative", func(d *DesiredLRP) { d.MaxPids = -1 }, []string{"max_pids"}},
		{"cpu_weight too big", func(d *DesiredLRP) { d.CpuWeight = MaxCPUWeight + 1 }, []string{"cpu_weight"}},
		{"port zero", func(d *DesiredLRP) { d.Ports = []uint32{8080, 0} }, []string{"ports[1]"}},
		{"port too big", func(d *DesiredLRP) { d.Ports = []uint32{65536} }, []string{"ports[0]"}},
		{"port duplicate", func(d *DesiredLRP) { d.Ports = []uint32{8080, 9090, 8080} }, []string{"ports[2]"}},
		{"too many ports", manyPorts, []string{"ports"}},
		{"routes too big", bigRoutes, []string{"routes"}},
		{"route without value", func(d *DesiredLRP) { d.Routes["tcp-router"] = nil }, []string{`routes["tcp-router"]`}},
		{"route with empty value", func(d *DesiredLRP) { d.Routes["tcp-router"] = &structpb.Value{} }, []string{`routes["tcp-router"]`}},
		{"annotation too long", func(d *DesiredLRP) { d.Annotation = strings.Repeat("a", MaxAnnotationLength+1) }, []string{"annotation"}},
		{"action missing", func(d *DesiredLRP) { d.Action = nil }, []string{"action"}},
		{"action without kind", func(d *DesiredLRP) { d.Action = &Action{} }, []string{"action"}},
		{"action nested invalid", func(d *DesiredLRP) {
			d.Action = serialAction(runAction("/a"), runAction(""))
		}, []string{"action.serial.actions[1].run.path"}},
		{"setup invalid", func(d *DesiredLRP) { d.Setup = runAction("") }, []string{"setup.run.path"}},
		{"monitor invalid", func(d *DesiredLRP) { d.Monitor = &Action{} }, []string{"monitor"}},
		{"check with no kind", func(d *DesiredLRP) { d.CheckDefinition.Checks[0] = &Check{} }, []string{"check_definition.checks[0]"}},
		{"nil check", func(d *DesiredLRP) { d.CheckDefinition.Checks[1] = nil }, []string{"check_definition.checks[1]"}},
		{"check with two kinds", func(d *DesiredLRP) {
			d.CheckDefinition.Checks[0].HttpCheck = &HTTPCheck{Port: 80}
		}, []string{"check_definition.checks[0]"}},
		{"tcp check port zero", func(d *DesiredLRP) { d.CheckDefinition.Checks[0].TcpCheck.Port = 0 }, []string{"check_definition.checks[0].tcp_check.port"}},
		{"http check port too big", func(d *DesiredLRP) { d.CheckDefinition.Checks[1].HttpCheck.Port = 70000 }, []string{"check_definition.checks[1].http_check.port"}},
		{"exec check without path", func(d *DesiredLRP) {
			d.CheckDefinition.ReadinessChecks[0].ExecCheck.Path = ""
		}, []string{"check_definition.readiness_checks[0].exec_check.path"}},
		{"start_timeout_ms negative", func(d *DesiredLRP) { d.StartTimeoutMs = -1 }, []string{"start_timeout_ms"}},
		{"env name empty", func(d *DesiredLRP) { d.Env[0].Name = "" }, []string{"env[0].name"}},
		{"env nil", func(d *DesiredLRP) { d.Env = append(d.Env, nil) }, []string{"env[1]"}},
		{"placement tag empty", func(d *DesiredLRP) { d.PlacementTags = append(d.PlacementTags, "") }, []string{"placement_tags[1]"}},
		{"metric tag empty key", func(d *DesiredLRP) { d.MetricTags[""] = &MetricTagValue{Static: "x"} }, []string{`metric_tags[""]`}},
		{"metric tag static and dynamic", func(d *DesiredLRP) {
			d.MetricTags["source_id"].Dynamic = MetricTagValue_INSTANCE_GUID
		}, []string{`metric_tags["source_id"]`}},
		{"metric tag neither", func(d *DesiredLRP) { d.MetricTags["x"] = &MetricTagValue{} }, []string{`metric_tags["x"]`}},
		{"metric tag nil", func(d *DesiredLRP) { d.MetricTags["x"] = nil }, []string{`metric_tags["x"]`}},
		{"metric tag unknown dynamic", func(d *DesiredLRP) {
			d.MetricTags["x"] = &MetricTagValue{Dynamic: 7}
		}, []string{`metric_tags["x"].dynamic`}},
		{"egress nil", func(d *DesiredLRP) { d.EgressRules[0] = nil }, []string{"egress_rules[0]"}},
		{"egress protocol", func(d *DesiredLRP) { d.EgressRules[3].Protocol = "sctp" }, []string{"egress_rules[3].protocol"}},
		{"egress protocol case", func(d *DesiredLRP) { d.EgressRules[3].Protocol = "TCP" }, []string{"egress_rules[3].protocol"}},
		{"egress no destinations", func(d *DesiredLRP) { d.EgressRules[0].Destinations = nil }, []string{"egress_rules[0].destinations"}},
		{"egress bad destination", func(d *DesiredLRP) {
			d.EgressRules[0].Destinations = []string{"10.0.0.0/8", "example.com"}
		}, []string{"egress_rules[0].destinations[1]"}},
		{"egress reversed range", func(d *DesiredLRP) {
			d.EgressRules[0].Destinations = []string{"10.0.0.9-10.0.0.1"}
		}, []string{"egress_rules[0].destinations[0]"}},
		{"egress ports for icmp", func(d *DesiredLRP) { d.EgressRules[2].Ports = []uint32{80} }, []string{"egress_rules[2].ports"}},
		{"egress port zero", func(d *DesiredLRP) { d.EgressRules[0].Ports = []uint32{443, 0} }, []string{"egress_rules[0].ports[1]"}},
		{"egress port range for all", func(d *DesiredLRP) {
			d.EgressRules[3].PortRange = &PortRange{Start: 1, End: 2}
		}, []string{"egress_rules[3].port_range"}},
		{"egress port range with ports", func(d *DesiredLRP) {
			d.EgressRules[0].PortRange = &PortRange{Start: 1, End: 2}
		}, []string{"egress_rules[0].port_range"}},
		{"egress port range reversed", func(d *DesiredLRP) {
			d.EgressRules[1].PortRange = &PortRange{Start: 54, End: 53}
		}, []string{"egress_rules[1].port_range"}},
		{"egress port range start zero", func(d *DesiredLRP) {
			d.EgressRules[1].PortRange.Start = 0
		}, []string{"egress_rules[1].port_range.start"}},
		{"egress icmp_info for tcp", func(d *DesiredLRP) {
			d.EgressRules[0].IcmpInfo = &ICMPInfo{}
		}, []string{"egress_rules[0].icmp_info"}},
		{"cached dependency nil", func(d *DesiredLRP) { d.CachedDependencies[0] = nil }, []string{"cached_dependencies[0]"}},
		{"cached dependency from", func(d *DesiredLRP) { d.CachedDependencies[0].From = "" }, []string{"cached_dependencies[0].from"}},
		{"cached dependency to", func(d *DesiredLRP) { d.CachedDependencies[0].To = "" }, []string{"cached_dependencies[0].to"}},
		{"cached dependency algorithm", func(d *DesiredLRP) {
			d.CachedDependencies[0].ChecksumAlgorithm = "crc32"
		}, []string{"cached_dependencies[0].checksum_algorithm"}},
		{"cached dependency value without algorithm", func(d *DesiredLRP) {
			d.CachedDependencies[0].ChecksumAlgorithm = ""
		}, []string{"cached_dependencies[0].checksum_algorithm"}},
		{"cached dependency algorithm without value", func(d *DesiredLRP) {
			d.CachedDependencies[0].ChecksumValue = ""
		}, []string{"cached_dependencies[0].checksum_value"}},
		{"image layer nil", func(d *DesiredLRP) { d.ImageLayers[1] = nil }, []string{"image_layers[1]"}},
		{"image layer url", func(d *DesiredLRP) { d.ImageLayers[0].Url = "" }, []string{"image_layers[0].url"}},
		{"image layer destination", func(d *DesiredLRP) { d.ImageLayers[0].DestinationPath = "" }, []string{"image_layers[0].destination_path"}},
		{"image layer type", func(d *DesiredLRP) { d.ImageLayers[0].LayerType = ImageLayer_TYPE_UNSPECIFIED }, []string{"image_layers[0].layer_type"}},
		{"image layer media type", func(d *DesiredLRP) {
			d.ImageLayers[0].MediaType = ImageLayer_MEDIA_TYPE_UNSPECIFIED
		}, []string{"image_layers[0].media_type"}},
		{"exclusive layer without digest", func(d *DesiredLRP) {
			d.ImageLayers[1].DigestAlgorithm, d.ImageLayers[1].DigestValue = "", ""
		}, []string{"image_layers[1].digest_algorithm"}},
		{"layer digest algorithm", func(d *DesiredLRP) { d.ImageLayers[1].DigestAlgorithm = "md5" }, []string{"image_layers[1].digest_algorithm"}},
		{"layer digest without value", func(d *DesiredLRP) { d.ImageLayers[1].DigestValue = "" }, []string{"image_layers[1].digest_value"}},
		{"layer value without digest", func(d *DesiredLRP) { d.ImageLayers[0].DigestValue = "feed" }, []string{"image_layers[0].digest_algorithm"}},
		{"volume mount nil", func(d *DesiredLRP) { d.VolumeMounts[0] = nil }, []string{"volume_mounts[0]"}},
		{"volume mount driver", func(d *DesiredLRP) { d.VolumeMounts[0].Driver = "" }, []string{"volume_mounts[0].driver"}},
		{"volume mount dir", func(d *DesiredLRP) { d.VolumeMounts[1].ContainerDir = "" }, []string{"volume_mounts[1].container_dir"}},
		{"volume mount mode", func(d *DesiredLRP) { d.VolumeMounts[0].Mode = "w" }, []string{"volume_mounts[0].mode"}},
		{"volume mount without shared", func(d *DesiredLRP) { d.VolumeMounts[0].Shared = nil }, []string{"volume_mounts[0].shared"}},
		{"volume mount volume id", func(d *DesiredLRP) { d.VolumeMounts[0].Shared.VolumeId = "" }, []string{"volume_mounts[0].shared.volume_id"}},
		{"volume mounted file path", func(d *DesiredLRP) { d.VolumeMountedFiles[0].Path = "" }, []string{"volume_mounted_files[0].path"}},
		{"image username only", func(d *DesiredLRP) { d.ImagePassword = "" }, []string{"image_password"}},
		{"image password only", func(d *DesiredLRP) { d.ImageUsername = "" }, []string{"image_username"}},
		{"sidecar nil", func(d *DesiredLRP) { d.Sidecars[0] = nil }, []string{"sidecars[0]"}},
		{"sidecar without action", func(d *DesiredLRP) { d.Sidecars[0].Action = nil }, []string{"sidecars[0].action"}},
		{"sidecar invalid action", func(d *DesiredLRP) { d.Sidecars[0].Action = runAction("") }, []string{"sidecars[0].action.run.path"}},
		{"sidecar memory", func(d *DesiredLRP) { d.Sidecars[0].MemoryMb = -1 }, []string{"sidecars[0].memory_mb"}},
		{"sidecar disk", func(d *DesiredLRP) { d.Sidecars[0].DiskMb = -1 }, []string{"sidecars[0].disk_mb"}},
		{"log rate limit", func(d *DesiredLRP) { d.LogRateLimit.BytesPerSecond = -2 }, []string{"log_rate_limit.bytes_per_second"}},
		{"update strategy", func(d *DesiredLRP) { d.UpdateStrategy = 9 }, []string{"update_strategy"}},
		{"record too big", func(d *DesiredLRP) {
			d.VolumeMountedFiles[0].Content = strings.Repeat("x", MaxRecordSize)
		}, []string{"desired_lrp"}},
		{"every problem is reported", func(d *DesiredLRP) {
			d.ProcessGuid, d.Domain, d.Instances, d.Action = "", "", -1, nil
		}, []string{"process_guid", "domain", "instances", "action"}},
		{"empty record", func(d *DesiredLRP) { *d = DesiredLRP{} }, []string{"process_guid", "domain", "rootfs", "action"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := validDesiredLRP()
			tc.mutate(d)
			checkFields(t, d.Validate(), tc.want...)
		})
	}
}

func TestNilDesiredLRPValidate(t *testing.T) {
	var d *DesiredLRP
	checkFields(t, d.Validate(), "process_guid", "domain", "rootfs", "action")
}

func TestValidationReasons(t *testing.T) {
	// Reasons are read by people; pin a few so they stay short and useful.
	d := validDesiredLRP()
	d.ProcessGuid = "a b"
	d.Annotation = strings.Repeat("a", 12000)
	d.Domain = ""
	err := d.Validate()
	want := ValidationErrors{
		{Field: "process_guid", Reason: "must match [a-zA-Z0-9_-]+"},
		{Field: "domain", Reason: "must not be empty"},
		{Field: "annotation", Reason: "must be at most 10240 bytes, got 12000"},
	}
	if !slices.Equal(err.(ValidationErrors), want) {
		t.Errorf("got %#v\nwant %#v", err, want)
	}
}

func TestActionValidate(t *testing.T) {
	nest := func(depth int) *Action {
		a := runAction("/bin/true")
		for i := 1; i < depth; i++ {
			a = tryAction(a)
		}
		return a
	}
	tests := []struct {
		name   string
		action *Action
		want   []string
	}{
		{"run", runAction("/bin/true"), nil},
		{"download", &Action{Kind: &Action_Download{Download: &DownloadAction{From: "http://x/y.tgz", To: "/tmp"}}}, nil},
		{"download md5", &Action{Kind: &Action_Download{Download: &DownloadAction{From: "f", To: "t", ChecksumAlgorithm: "md5", ChecksumValue: "v"}}}, nil},
		{"upload", &Action{Kind: &Action_Upload{Upload: &UploadAction{From: "/tmp/out", To: "http://x/up"}}}, nil},
		{"timeout", &Action{Kind: &Action_Timeout{Timeout: &TimeoutAction{Action: runAction("/a"), TimeoutMs: 1}}}, nil},
		{"emit progress", &Action{Kind: &Action_EmitProgress{EmitProgress: &EmitProgressAction{Action: runAction("/a")}}}, nil},
		{"try", tryAction(runAction("/a")), nil},
		{"parallel", &Action{Kind: &Action_Parallel{Parallel: &ParallelAction{Actions: []*Action{runAction("/a"), runAction("/b")}}}}, nil},
		{"serial", serialAction(runAction("/a")), nil},
		{"codependent", &Action{Kind: &Action_Codependent{Codependent: &CodependentAction{Actions: []*Action{runAction("/a")}}}}, nil},
		{"depth 32", nest(MaxActionDepth), nil},

		{"no kind", &Action{}, []string{"action"}},
		{"nil action", nil, []string{"action"}},
		{"run nil body", &Action{Kind: &Action_Run{}}, []string{"run.path"}},
		{"run path", runAction(""), []string{"run.path"}},
		{"run env name", &Action{Kind: &Action_Run{Run: &RunAction{Path: "/a", Env: []*EnvironmentVariable{{Value: "v"}}}}}, []string{"run.env[0].name"}},
		{"run file path", &Action{Kind: &Action_Run{Run: &RunAction{Path: "/a", VolumeMountedFiles: []*File{{Content: "c"}}}}}, []string{"run.volume_mounted_files[0].path"}},
		{"download from", &Action{Kind: &Action_Download{Download: &DownloadAction{To: "/tmp"}}}, []string{"download.from"}},
		{"download to", &Action{Kind: &Action_Download{Download: &DownloadAction{From: "f"}}}, []string{"download.to"}},
		{"download algorithm", &Action{Kind: &Action_Download{Download: &DownloadAction{From: "f", To: "t", ChecksumAlgorithm: "sha512", ChecksumValue: "v"}}}, []string{"download.checksum_algorithm"}},
		{"download algorithm without value", &Action{Kind: &Action_Download{Download: &DownloadAction{From: "f", To: "t", ChecksumAlgorithm: "sha256"}}}, []string{"download.checksum_value"}},
		{"download value without algorithm", &Action{Kind: &Action_Download{Download: &DownloadAction{From: "f", To: "t", ChecksumValue: "v"}}}, []string{"download.checksum_algorithm"}},
		{"upload from", &Action{Kind: &Action_Upload{Upload: &UploadAction{To: "t"}}}, []string{"upload.from"}},
		{"upload to", &Action{Kind: &Action_Upload{Upload: &UploadAction{From: "f"}}}, []string{"upload.to"}},
		{"timeout without action", &Action{Kind: &Action_Timeout{Timeout: &TimeoutAction{TimeoutMs: 1}}}, []string{"timeout.action"}},
		{"timeout zero", &Action{Kind: &Action_Timeout{Timeout: &TimeoutAction{Action: runAction("/a")}}}, []string{"timeout.timeout_ms"}},
		{"timeout negative", &Action{Kind: &Action_Timeout{Timeout: &TimeoutAction{Action: runAction("/a"), TimeoutMs: -5}}}, []string{"timeout.timeout_ms"}},
		{"timeout nested invalid", &Action{Kind: &Action_Timeout{Timeout: &TimeoutAction{Action: runAction(""), TimeoutMs: 1}}}, []string{"timeout.action.run.path"}},
		{"emit progress without action", &Action{Kind: &Action_EmitProgress{EmitProgress: &EmitProgressAction{}}}, []string{"emit_progress.action"}},
		{"try without action", tryAction(nil), []string{"try.action"}},
		{"try nested without kind", tryAction(&Action{}), []string{"try.action"}},
		{"parallel empty", &Action{Kind: &Action_Parallel{Parallel: &ParallelAction{}}}, []string{"parallel.actions"}},
		{"serial empty", serialAction(), []string{"serial.actions"}},
		{"codependent empty", &Action{Kind: &Action_Codependent{Codependent: &CodependentAction{}}}, []string{"codependent.actions"}},
		{"serial nil child", serialAction(runAction("/a"), nil), []string{"serial.actions[1]"}},
		{"parallel nested invalid", &Action{Kind: &Action_Parallel{Parallel: &ParallelAction{Actions: []*Action{
			serialAction(runAction("/a"), runAction("")),
		}}}}, []string{"parallel.actions[0].serial.actions[1].run.path"}},
		{"depth 33", nest(MaxActionDepth + 1), []string{strings.Repeat("try.action.", MaxActionDepth-1) + "try.action"}},
		{"very deep", nest(10000), []string{strings.Repeat("try.action.", MaxActionDepth-1) + "try.action"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkFields(t, tc.action.Validate(), tc.want...)
		})
	}
}

func TestCheckDefinitionValidate(t *testing.T) {
	tests := []struct {
		name string
		def  *CheckDefinition
		want []string
	}{
		{"nil", nil, nil},
		{"empty", &CheckDefinition{}, nil},
		{"valid", validDesiredLRP().GetCheckDefinition(), nil},
		{"exec on readiness", &CheckDefinition{ReadinessChecks: []*Check{{TcpCheck: &TCPCheck{Port: 0}}}}, []string{"readiness_checks[0].tcp_check.port"}},
		{"three kinds", &CheckDefinition{Checks: []*Check{{
			TcpCheck: &TCPCheck{Port: 1}, HttpCheck: &HTTPCheck{Port: 1}, ExecCheck: &ExecCheck{Path: "/x"},
		}}}, []string{"checks[0]"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkFields(t, tc.def.Validate(), tc.want...)
		})
	}
}

func TestSchedulingAndRunInfoValidate(t *testing.T) {
	d := validDesiredLRP()
	checkFields(t, d.SchedulingInfo().Validate())
	checkFields(t, d.RunInfo().Validate())

	sched := []struct {
		name   string
		mutate func(s *DesiredLRPSchedulingInfo)
		want   []string
	}{
		{"no key", func(s *DesiredLRPSchedulingInfo) { s.DesiredLrpKey = nil }, []string{"desired_lrp_key"}},
		{"bad guid", func(s *DesiredLRPSchedulingInfo) { s.DesiredLrpKey.ProcessGuid = "a b" }, []string{"desired_lrp_key.process_guid"}},
		{"bad domain", func(s *DesiredLRPSchedulingInfo) { s.DesiredLrpKey.Domain = "" }, []string{"desired_lrp_key.domain"}},
		{"annotation", func(s *DesiredLRPSchedulingInfo) { s.Annotation = strings.Repeat("a", MaxAnnotationLength+1) }, []string{"annotation"}},
		{"instances", func(s *DesiredLRPSchedulingInfo) { s.Instances = -3 }, []string{"instances"}},
		{"memory", func(s *DesiredLRPSchedulingInfo) { s.DesiredLrpResource.MemoryMb = -1 }, []string{"desired_lrp_resource.memory_mb"}},
		{"disk", func(s *DesiredLRPSchedulingInfo) { s.DesiredLrpResource.DiskMb = -1 }, []string{"desired_lrp_resource.disk_mb"}},
		{"pids", func(s *DesiredLRPSchedulingInfo) { s.DesiredLrpResource.MaxPids = -1 }, []string{"desired_lrp_resource.max_pids"}},
		{"no resource", func(s *DesiredLRPSchedulingInfo) { s.DesiredLrpResource = nil }, nil},
		{"rootfs", func(s *DesiredLRPSchedulingInfo) { s.Rootfs = "" }, []string{"rootfs"}},
		{"routes", func(s *DesiredLRPSchedulingInfo) { s.Routes["x"] = nil }, []string{`routes["x"]`}},
		{"driver", func(s *DesiredLRPSchedulingInfo) { s.VolumePlacement.DriverNames = []string{""} }, []string{"volume_placement.driver_names[0]"}},
		{"tags", func(s *DesiredLRPSchedulingInfo) { s.PlacementTags = []string{""} }, []string{"placement_tags[0]"}},
		{"metric tags", func(s *DesiredLRPSchedulingInfo) { s.MetricTags["y"] = &MetricTagValue{} }, []string{`metric_tags["y"]`}},
		{"update strategy", func(s *DesiredLRPSchedulingInfo) { s.UpdateStrategy = 3 }, []string{"update_strategy"}},
	}
	for _, tc := range sched {
		t.Run("scheduling "+tc.name, func(t *testing.T) {
			s := validDesiredLRP().SchedulingInfo()
			tc.mutate(s)
			checkFields(t, s.Validate(), tc.want...)
		})
	}

	run := []struct {
		name   string
		mutate func(r *DesiredLRPRunInfo)
		want   []string
	}{
		{"no key", func(r *DesiredLRPRunInfo) { r.DesiredLrpKey = nil }, []string{"desired_lrp_key"}},
		{"env", func(r *DesiredLRPRunInfo) { r.Env[0].Name = "" }, []string{"env[0].name"}},
		{"setup", func(r *DesiredLRPRunInfo) { r.Setup = &Action{} }, []string{"setup"}},
		{"action", func(r *DesiredLRPRunInfo) { r.Action = nil }, []string{"action"}},
		{"monitor", func(r *DesiredLRPRunInfo) { r.Monitor = runAction("") }, []string{"monitor.run.path"}},
		{"start timeout", func(r *DesiredLRPRunInfo) { r.StartTimeoutMs = -1 }, []string{"start_timeout_ms"}},
		{"cpu weight", func(r *DesiredLRPRunInfo) { r.CpuWeight = 1000 }, []string{"cpu_weight"}},
		{"ports", func(r *DesiredLRPRunInfo) { r.Ports = []uint32{0} }, []string{"ports[0]"}},
		{"egress", func(r *DesiredLRPRunInfo) { r.EgressRules[0].Protocol = "" }, []string{"egress_rules[0].protocol"}},
		{"cached deps", func(r *DesiredLRPRunInfo) { r.CachedDependencies[0].To = "" }, []string{"cached_dependencies[0].to"}},
		{"volume mounts", func(r *DesiredLRPRunInfo) { r.VolumeMounts[2].Mode = "" }, []string{"volume_mounts[2].mode"}},
		{"image creds", func(r *DesiredLRPRunInfo) { r.ImageUsername = "" }, []string{"image_username"}},
		{"checks", func(r *DesiredLRPRunInfo) { r.CheckDefinition.Checks[0] = &Check{} }, []string{"check_definition.checks[0]"}},
		{"layers", func(r *DesiredLRPRunInfo) { r.ImageLayers[0].Url = "" }, []string{"image_layers[0].url"}},
		{"sidecars", func(r *DesiredLRPRunInfo) { r.Sidecars[0].DiskMb = -1 }, []string{"sidecars[0].disk_mb"}},
		{"log rate", func(r *DesiredLRPRunInfo) { r.LogRateLimit.BytesPerSecond = -9 }, []string{"log_rate_limit.bytes_per_second"}},
		{"files", func(r *DesiredLRPRunInfo) { r.VolumeMountedFiles[0].Path = "" }, []string{"volume_mounted_files[0].path"}},
		{"size", func(r *DesiredLRPRunInfo) { r.VolumeMountedFiles[0].Content = strings.Repeat("x", MaxRecordSize) }, []string{"run_info"}},
	}
	for _, tc := range run {
		t.Run("run "+tc.name, func(t *testing.T) {
			r := validDesiredLRP().RunInfo()
			tc.mutate(r)
			checkFields(t, r.Validate(), tc.want...)
		})
	}
}

func TestDesiredLRPUpdateValidate(t *testing.T) {
	i32 := func(n int32) *int32 { return &n }
	str := func(s string) *string { return &s }
	tests := []struct {
		name   string
		update *DesiredLRPUpdate
		want   []string
	}{
		{"nil", nil, nil},
		{"empty", &DesiredLRPUpdate{}, nil},
		{"instances", &DesiredLRPUpdate{Instances: i32(0)}, nil},
		{"max instances", &DesiredLRPUpdate{Instances: i32(MaxInstances)}, nil},
		{"clear routes", &DesiredLRPUpdate{SetRoutes: true}, nil},
		{"annotation", &DesiredLRPUpdate{Annotation: str(strings.Repeat("a", MaxAnnotationLength))}, nil},
		{"metric tags", &DesiredLRPUpdate{MetricTags: map[string]*MetricTagValue{"a": {Dynamic: MetricTagValue_INSTANCE_GUID}}}, nil},
		{"image creds", &DesiredLRPUpdate{ImageUsername: str("u"), ImagePassword: str("p")}, nil},
		{"clear image creds", &DesiredLRPUpdate{ImageUsername: str(""), ImagePassword: str("")}, nil},

		{"negative instances", &DesiredLRPUpdate{Instances: i32(-1)}, []string{"instances"}},
		{"too many instances", &DesiredLRPUpdate{Instances: i32(MaxInstances + 1)}, []string{"instances"}},
		{"annotation too long", &DesiredLRPUpdate{Annotation: str(strings.Repeat("a", MaxAnnotationLength+1))}, []string{"annotation"}},
		{"routes too big", &DesiredLRPUpdate{Routes: map[string]*structpb.Value{
			"cf-router": structpb.NewStringValue(strings.Repeat("r", MaxRoutesSize)),
		}}, []string{"routes"}},
		{"metric tag neither", &DesiredLRPUpdate{MetricTags: map[string]*MetricTagValue{"a": {}}}, []string{`metric_tags["a"]`}},
		{"metric tag empty key", &DesiredLRPUpdate{MetricTags: map[string]*MetricTagValue{"": {Static: "s"}}}, []string{`metric_tags[""]`}},
		{"username without password", &DesiredLRPUpdate{ImageUsername: str("u")}, []string{"image_password"}},
		{"password without username", &DesiredLRPUpdate{ImagePassword: str("p")}, []string{"image_username"}},
		{"username with empty password", &DesiredLRPUpdate{ImageUsername: str("u"), ImagePassword: str("")}, []string{"image_password"}},
		{"password with empty username", &DesiredLRPUpdate{ImageUsername: str(""), ImagePassword: str("p")}, []string{"image_username"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkFields(t, tc.update.Validate(), tc.want...)
		})
	}
}

// validTaskDefinition returns a valid definition that sets every field.
func validTaskDefinition() *TaskDefinition {
	d := validDesiredLRP()
	return &TaskDefinition{
		Rootfs:                        "docker:///busybox#1.36",
		Env:                           []*EnvironmentVariable{{Name: "A", Value: "1"}},
		Action:                        serialAction(runAction("/bin/migrate"), runAction("/bin/report")),
		DiskMb:                        512,
		MemoryMb:                      128,
		CpuWeight:                     10,
		Privileged:                    true,
		LogSource:                     "TASK",
		LogGuid:                       "log-1",
		MetricsGuid:                   "metrics-1",
		ResultFile:                    "/tmp/result.json",
		CompletionCallbackUrl:         "https://cc.example.com/internal/tasks/done",
		Annotation:                    "note",
		EgressRules:                   d.EgressRules,
		CachedDependencies:            d.CachedDependencies,
		LegacyDownloadUser:            "vcap",
		TrustedSystemCertificatesPath: "/etc/certs",
		VolumeMounts:                  d.VolumeMounts,
		Network:                       d.Network,
		PlacementTags:                 []string{"isolation-a"},
		MaxPids:                       100,
		CertificateProperties:         d.CertificateProperties,
		ImageUsername:                 "user",
		ImagePassword:                 "pass",
		ImageLayers:                   d.ImageLayers,
		LogRateLimit:                  &LogRateLimit{BytesPerSecond: -1},
		MetricTags:                    map[string]*MetricTagValue{"source_id": {Static: "task-1"}},
		VolumeMountedFiles:            []*File{{Path: "/etc/task.yml", Content: "x"}},
	}
}

func TestTaskDefinitionValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(d *TaskDefinition)
		want   []string
	}{
		{"valid", func(d *TaskDefinition) {}, nil},
		{"valid minimal", func(d *TaskDefinition) {
			*d = TaskDefinition{Rootfs: "preloaded:cflinuxfs4", Action: runAction("/bin/true")}
		}, nil},
		{"http callback", func(d *TaskDefinition) { d.CompletionCallbackUrl = "http://10.0.0.1:8080/cb" }, nil},

		{"rootfs", func(d *TaskDefinition) { d.Rootfs = "busybox" }, []string{"rootfs"}},
		{"env", func(d *TaskDefinition) { d.Env[0].Name = "" }, []string{"env[0].name"}},
		{"action missing", func(d *TaskDefinition) { d.Action = nil }, []string{"action"}},
		{"action invalid", func(d *TaskDefinition) { d.Action = serialAction() }, []string{"action.serial.actions"}},
		{"disk", func(d *TaskDefinition) { d.DiskMb = -1 }, []string{"disk_mb"}},
		{"memory", func(d *TaskDefinition) { d.MemoryMb = -1 }, []string{"memory_mb"}},
		{"cpu", func(d *TaskDefinition) { d.CpuWeight = 101 }, []string{"cpu_weight"}},
		{"result file relative", func(d *TaskDefinition) { d.ResultFile = "result.json" }, []string{"result_file"}},
		{"callback relative", func(d *TaskDefinition) { d.CompletionCallbackUrl = "/internal/done" }, []string{"completion_callback_url"}},
		{"callback scheme", func(d *TaskDefinition) { d.CompletionCallbackUrl = "ftp://cc/done" }, []string{"completion_callback_url"}},
		{"callback no host", func(d *TaskDefinition) { d.CompletionCallbackUrl = "https:///done" }, []string{"completion_callback_url"}},
		{"callback unparsable", func(d *TaskDefinition) { d.CompletionCallbackUrl = "http://[::1" }, []string{"completion_callback_url"}},
		{"annotation", func(d *TaskDefinition) { d.Annotation = strings.Repeat("a", MaxAnnotationLength+1) }, []string{"annotation"}},
		{"egress", func(d *TaskDefinition) { d.EgressRules[0].Destinations = nil }, []string{"egress_rules[0].destinations"}},
		{"cached deps", func(d *TaskDefinition) { d.CachedDependencies[0].From = "" }, []string{"cached_dependencies[0].from"}},
		{"volume mounts", func(d *TaskDefinition) { d.VolumeMounts[0].Driver = "" }, []string{"volume_mounts[0].driver"}},
		{"placement tags", func(d *TaskDefinition) { d.PlacementTags[0] = "" }, []string{"placement_tags[0]"}},
		{"max pids", func(d *TaskDefinition) { d.MaxPids = -1 }, []string{"max_pids"}},
		{"image creds", func(d *TaskDefinition) { d.ImagePassword = "" }, []string{"image_password"}},
		{"image layers", func(d *TaskDefinition) { d.ImageLayers[0].MediaType = 42 }, []string{"image_layers[0].media_type"}},
		{"log rate", func(d *TaskDefinition) { d.LogRateLimit.BytesPerSecond = -2 }, []string{"log_rate_limit.bytes_per_second"}},
		{"metric tags", func(d *TaskDefinition) { d.MetricTags["x"] = nil }, []string{`metric_tags["x"]`}},
		{"files", func(d *TaskDefinition) { d.VolumeMountedFiles[0].Path = "" }, []string{"volume_mounted_files[0].path"}},
		{"size", func(d *TaskDefinition) { d.VolumeMountedFiles[0].Content = strings.Repeat("x", MaxRecordSize) }, []string{"task_definition"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := validTaskDefinition()
			tc.mutate(d)
			checkFields(t, d.Validate(), tc.want...)
		})
	}
}

func validTask() *Task {
	return &Task{
		TaskGuid:       "task-1",
		Domain:         "cf-tasks",
		TaskDefinition: validTaskDefinition(),
		CreatedAt:      1,
		UpdatedAt:      2,
		State:          Task_RUNNING,
		CellId:         "cell-z1.0",
	}
}

func TestTaskValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(t *Task)
		want   []string
	}{
		{"valid", func(t *Task) {}, nil},
		{"pending without cell", func(t *Task) { t.State, t.CellId = Task_PENDING, "" }, nil},
		{"completed", func(t *Task) {
			t.State, t.CellId, t.Failed, t.FailureReason = Task_COMPLETED, "", true, strings.Repeat("r", 5000)
		}, nil},
		{"resolving", func(t *Task) { t.State = Task_RESOLVING }, nil},

		{"guid", func(t *Task) { t.TaskGuid = "" }, []string{"task_guid"}},
		{"guid charset", func(t *Task) { t.TaskGuid = "task:1" }, []string{"task_guid"}},
		{"domain", func(t *Task) { t.Domain = "a/b" }, []string{"domain"}},
		{"no definition", func(t *Task) { t.TaskDefinition = nil }, []string{"task_definition"}},
		{"bad definition", func(t *Task) { t.TaskDefinition.Action = nil }, []string{"task_definition.action"}},
		{"bad state", func(t *Task) { t.State = Task_STATE_UNSPECIFIED }, []string{"state"}},
		{"running without cell", func(t *Task) { t.CellId = "" }, []string{"cell_id"}},
		{"running on bad cell", func(t *Task) { t.CellId = "cell/1" }, []string{"cell_id"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			task := validTask()
			tc.mutate(task)
			checkFields(t, task.Validate(), tc.want...)
		})
	}
}

func validActualLRP(state ActualLRP_State) *ActualLRP {
	a := &ActualLRP{
		ActualLrpKey: &ActualLRPKey{ProcessGuid: "web-1", Index: 2, Domain: "cf-apps"},
		State:        state,
		Since:        10,
		CrashCount:   1,
	}
	switch state {
	case ActualLRP_CLAIMED:
		a.ActualLrpInstanceKey = &ActualLRPInstanceKey{InstanceGuid: "inst-1", CellId: "cell-1"}
	case ActualLRP_RUNNING:
		a.ActualLrpInstanceKey = &ActualLRPInstanceKey{InstanceGuid: "inst-1", CellId: "cell-1"}
		a.ActualLrpNetInfo = &ActualLRPNetInfo{Address: "10.0.0.5", Ports: []*PortMapping{{ContainerPort: 8080, HostPort: 61000}}}
	case ActualLRP_UNCLAIMED:
		a.PlacementError = "insufficient resources: memory"
	}
	return a
}

func TestActualLRPValidate(t *testing.T) {
	key := &ActualLRPInstanceKey{InstanceGuid: "inst-1", CellId: "cell-1"}
	net := &ActualLRPNetInfo{Address: "10.0.0.5"}
	tests := []struct {
		name   string
		state  ActualLRP_State
		mutate func(a *ActualLRP)
		want   []string
	}{
		{"unclaimed", ActualLRP_UNCLAIMED, func(a *ActualLRP) {}, nil},
		{"claimed", ActualLRP_CLAIMED, func(a *ActualLRP) {}, nil},
		{"running", ActualLRP_RUNNING, func(a *ActualLRP) {}, nil},
		{"crashed", ActualLRP_CRASHED, func(a *ActualLRP) {}, nil},
		{"unclaimed empty key struct", ActualLRP_UNCLAIMED, func(a *ActualLRP) {
			a.ActualLrpInstanceKey, a.ActualLrpNetInfo = &ActualLRPInstanceKey{}, &ActualLRPNetInfo{}
		}, nil},
		{"suspect running", ActualLRP_RUNNING, func(a *ActualLRP) { a.Presence = ActualLRP_SUSPECT }, nil},
		{"suspect claimed", ActualLRP_CLAIMED, func(a *ActualLRP) { a.Presence = ActualLRP_SUSPECT }, nil},
		{"evacuating running", ActualLRP_RUNNING, func(a *ActualLRP) { a.Presence = ActualLRP_EVACUATING }, nil},
		{"crashed keeps net info", ActualLRP_CRASHED, func(a *ActualLRP) { a.ActualLrpNetInfo = net }, nil},

		{"no key", ActualLRP_UNCLAIMED, func(a *ActualLRP) { a.ActualLrpKey = nil }, []string{"actual_lrp_key"}},
		{"bad key guid", ActualLRP_UNCLAIMED, func(a *ActualLRP) { a.ActualLrpKey.ProcessGuid = "" }, []string{"actual_lrp_key.process_guid"}},
		{"bad key index", ActualLRP_UNCLAIMED, func(a *ActualLRP) { a.ActualLrpKey.Index = -1 }, []string{"actual_lrp_key.index"}},
		{"bad key domain", ActualLRP_UNCLAIMED, func(a *ActualLRP) { a.ActualLrpKey.Domain = "a b" }, []string{"actual_lrp_key.domain"}},
		{"negative crash count", ActualLRP_CRASHED, func(a *ActualLRP) { a.CrashCount = -1 }, []string{"crash_count"}},
		{"no state", ActualLRP_STATE_UNSPECIFIED, func(a *ActualLRP) {}, []string{"state"}},
		{"unknown state", 9, func(a *ActualLRP) {}, []string{"state"}},
		{"unknown presence", ActualLRP_RUNNING, func(a *ActualLRP) { a.Presence = 5 }, []string{"presence"}},

		{"unclaimed with key", ActualLRP_UNCLAIMED, func(a *ActualLRP) { a.ActualLrpInstanceKey = key }, []string{"actual_lrp_instance_key"}},
		{"unclaimed with half key", ActualLRP_UNCLAIMED, func(a *ActualLRP) {
			a.ActualLrpInstanceKey = &ActualLRPInstanceKey{CellId: "cell-1"}
		}, []string{"actual_lrp_instance_key"}},
		{"unclaimed with net info", ActualLRP_UNCLAIMED, func(a *ActualLRP) { a.ActualLrpNetInfo = net }, []string{"actual_lrp_net_info"}},
		{"unclaimed suspect", ActualLRP_UNCLAIMED, func(a *ActualLRP) { a.Presence = ActualLRP_SUSPECT }, []string{"presence"}},
		{"unclaimed evacuating", ActualLRP_UNCLAIMED, func(a *ActualLRP) { a.Presence = ActualLRP_EVACUATING }, []string{"presence"}},

		{"claimed without key", ActualLRP_CLAIMED, func(a *ActualLRP) { a.ActualLrpInstanceKey = nil }, []string{"actual_lrp_instance_key"}},
		{"claimed bad instance guid", ActualLRP_CLAIMED, func(a *ActualLRP) {
			a.ActualLrpInstanceKey.InstanceGuid = ""
		}, []string{"actual_lrp_instance_key.instance_guid"}},
		{"claimed bad cell", ActualLRP_CLAIMED, func(a *ActualLRP) {
			a.ActualLrpInstanceKey.CellId = "cell 1"
		}, []string{"actual_lrp_instance_key.cell_id"}},
		{"claimed with net info", ActualLRP_CLAIMED, func(a *ActualLRP) { a.ActualLrpNetInfo = net }, []string{"actual_lrp_net_info"}},
		{"claimed with placement error", ActualLRP_CLAIMED, func(a *ActualLRP) { a.PlacementError = "x" }, []string{"placement_error"}},
		{"claimed evacuating", ActualLRP_CLAIMED, func(a *ActualLRP) { a.Presence = ActualLRP_EVACUATING }, []string{"presence"}},

		{"running without key", ActualLRP_RUNNING, func(a *ActualLRP) { a.ActualLrpInstanceKey = nil }, []string{"actual_lrp_instance_key"}},
		{"running without net info", ActualLRP_RUNNING, func(a *ActualLRP) { a.ActualLrpNetInfo = nil }, []string{"actual_lrp_net_info"}},
		{"running without address", ActualLRP_RUNNING, func(a *ActualLRP) { a.ActualLrpNetInfo.Address = "" }, []string{"actual_lrp_net_info.address"}},
		{"running bad port", ActualLRP_RUNNING, func(a *ActualLRP) {
			a.ActualLrpNetInfo.Ports = append(a.ActualLrpNetInfo.Ports, &PortMapping{ContainerPort: 0})
		}, []string{"actual_lrp_net_info.ports[1].container_port"}},
		{"running nil port", ActualLRP_RUNNING, func(a *ActualLRP) {
			a.ActualLrpNetInfo.Ports = []*PortMapping{nil}
		}, []string{"actual_lrp_net_info.ports[0]"}},
		{"running with placement error", ActualLRP_RUNNING, func(a *ActualLRP) { a.PlacementError = "x" }, []string{"placement_error"}},

		{"crashed with key", ActualLRP_CRASHED, func(a *ActualLRP) { a.ActualLrpInstanceKey = key }, []string{"actual_lrp_instance_key"}},
		{"crashed suspect", ActualLRP_CRASHED, func(a *ActualLRP) { a.Presence = ActualLRP_SUSPECT }, []string{"presence"}},
		{"crashed evacuating", ActualLRP_CRASHED, func(a *ActualLRP) { a.Presence = ActualLRP_EVACUATING }, []string{"presence"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := validActualLRP(tc.state)
			tc.mutate(a)
			checkFields(t, a.Validate(), tc.want...)
		})
	}
}

func TestKeyValidate(t *testing.T) {
	checkFields(t, (&ActualLRPKey{ProcessGuid: "p", Index: 0, Domain: "d"}).Validate())
	checkFields(t, (&ActualLRPKey{}).Validate(), "process_guid", "domain")
	checkFields(t, (&ActualLRPKey{ProcessGuid: "p", Index: -1, Domain: "d"}).Validate(), "index")
	checkFields(t, (&ActualLRPInstanceKey{InstanceGuid: "i", CellId: "cell_1.example-com"}).Validate())
	checkFields(t, (&ActualLRPInstanceKey{}).Validate(), "instance_guid", "cell_id")
	checkFields(t, (&ActualLRPInstanceKey{InstanceGuid: "i", CellId: strings.Repeat("c", MaxCellIDLength+1)}).Validate(), "cell_id")
	checkFields(t, (&ActualLRPInstanceKey{InstanceGuid: "i/", CellId: "c:1"}).Validate(), "instance_guid", "cell_id")
	checkFields(t, (&ActualLRPNetInfo{Address: "10.0.0.1"}).Validate())
	checkFields(t, (&ActualLRPNetInfo{Ports: []*PortMapping{{ContainerPort: 70000}}}).Validate(), "address", "ports[0].container_port")
}

func TestCellPresenceValidate(t *testing.T) {
	valid := func() *CellPresence {
		return &CellPresence{
			CellId:     "cell-z1-0",
			RepAddress: "http://10.0.0.2:1800",
			Zone:       "z1",
			Capacity:   &CellCapacity{MemoryMb: 8192, DiskMb: 65536, Containers: 250},
		}
	}
	tests := []struct {
		name   string
		mutate func(c *CellPresence)
		want   []string
	}{
		{"valid", func(c *CellPresence) {}, nil},
		{"no capacity", func(c *CellPresence) { c.Capacity = nil }, nil},
		{"cell id", func(c *CellPresence) { c.CellId = "" }, []string{"cell_id"}},
		{"cell id charset", func(c *CellPresence) { c.CellId = "cell/1" }, []string{"cell_id"}},
		{"rep address", func(c *CellPresence) { c.RepAddress = "" }, []string{"rep_address"}},
		{"memory", func(c *CellPresence) { c.Capacity.MemoryMb = -1 }, []string{"capacity.memory_mb"}},
		{"disk", func(c *CellPresence) { c.Capacity.DiskMb = -1 }, []string{"capacity.disk_mb"}},
		{"containers", func(c *CellPresence) { c.Capacity.Containers = -1 }, []string{"capacity.containers"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := valid()
			tc.mutate(c)
			checkFields(t, c.Validate(), tc.want...)
		})
	}
	var nilCell *CellPresence
	checkFields(t, nilCell.Validate(), "cell_id", "rep_address")
}

func TestDomainValidate(t *testing.T) {
	checkFields(t, (&Domain{Domain: "cf-apps", Ttl: 120}).Validate())
	checkFields(t, (&Domain{Domain: "cf-apps"}).Validate())
	checkFields(t, (&Domain{Domain: "", Ttl: -1, ExpiresAt: -1}).Validate(), "domain", "ttl", "expires_at")
}

func TestStartRequestValidate(t *testing.T) {
	s := validDesiredLRP().SchedulingInfo()
	checkFields(t, s.LRPStartRequest(0, 1, 2).Validate())
	checkFields(t, s.LRPStartRequest().Validate(), "indices")
	checkFields(t, s.LRPStartRequest(0, -1).Validate(), "indices[1]")
	checkFields(t, (&LRPStartRequest{}).Validate(), "process_guid", "domain", "indices", "placement_constraint")
	checkFields(t, (&LRPStartRequest{
		ProcessGuid: "p", Domain: "d", Indices: []int32{0},
		PlacementConstraint: &PlacementConstraint{Rootfs: "x", PlacementTags: []string{""}, VolumeDrivers: []string{""}},
		Resource:            &Resource{MemoryMb: -1, DiskMb: -1, MaxPids: -1},
	}).Validate(), "placement_constraint.rootfs", "placement_constraint.placement_tags[0]",
		"placement_constraint.volume_drivers[0]", "resource.memory_mb", "resource.disk_mb", "resource.max_pids")

	task := validTask()
	checkFields(t, task.TaskStartRequest().Validate())
	checkFields(t, (&TaskStartRequest{}).Validate(), "task_guid", "domain", "placement_constraint")
	checkFields(t, (&TaskStartRequest{
		TaskGuid: "t", Domain: "d", PlacementConstraint: &PlacementConstraint{},
		Resource: &Resource{MemoryMb: -5},
	}).Validate(), "placement_constraint.rootfs", "resource.memory_mb")
}

func TestValidDestination(t *testing.T) {
	tests := []struct {
		dest string
		ok   bool
	}{
		{"10.0.0.1", true},
		{"10.0.0.0/8", true},
		{"0.0.0.0-255.255.255.255", true},
		{"10.0.0.1-10.0.0.1", true},
		{"fd00::/8", true},
		{"fd00::1-fd00::9", true},
		{"", false},
		{"example.com", false},
		{"10.0.0.9-10.0.0.1", false},
		{"10.0.0.1-fd00::1", false},
		{"10.0.0.0/33", false},
		{"10.0.0.1-", false},
	}
	for _, tc := range tests {
		if got := validDestination(tc.dest); got != tc.ok {
			t.Errorf("validDestination(%q) = %v, want %v", tc.dest, got, tc.ok)
		}
	}
}
