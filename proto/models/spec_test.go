package models

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

const desiredLRPSpec = `{
  "process_guid": "web-1",
  "domain": "cf-apps",
  "instances": 2,
  "rootfs": "preloaded:cflinuxfs4",
  "memory_mb": 128,
  "ports": [8080],
  "routes": {"cf-router": [{"hostnames": ["web.example.com"], "port": 8080}]},
  "action": {"run": {"path": "/app/start", "args": ["--port", "8080"], "env": [{"name": "PORT", "value": "8080"}]}},
  "check_definition": {"checks": [{"tcp_check": {"port": 8080}}]},
  "start_timeout_ms": "60000",
  "metric_tags": {"source_id": {"static": "web-1"}, "instance_id": {"dynamic": "INDEX"}},
  "update_strategy": "RECREATE"
}`

func TestDecodeDesiredLRP(t *testing.T) {
	d, err := DecodeDesiredLRP([]byte(desiredLRPSpec))
	if err != nil {
		t.Fatal(err)
	}
	if d.ProcessGuid != "web-1" || d.Instances != 2 || d.GetAction().GetRun().GetPath() != "/app/start" ||
		d.StartTimeoutMs != 60000 || d.MetricTags["instance_id"].GetDynamic() != MetricTagValue_INDEX ||
		d.UpdateStrategy != UpdateStrategy_RECREATE || d.Routes["cf-router"].GetListValue() == nil {
		t.Errorf("decoded %v", d)
	}
}

func TestDecodeAcceptsCamelCase(t *testing.T) {
	d, err := DecodeDesiredLRP([]byte(`{"processGuid":"p","domain":"d","rootfs":"docker:///x","action":{"run":{"path":"/a"}},"startTimeoutMs":5}`))
	if err != nil {
		t.Fatal(err)
	}
	if d.ProcessGuid != "p" || d.StartTimeoutMs != 5 {
		t.Errorf("decoded %v", d)
	}
}

func TestMarshalJSONRoundTrip(t *testing.T) {
	d := validDesiredLRP()
	out, err := MarshalJSON(d)
	if err != nil {
		t.Fatal(err)
	}
	again, err := MarshalJSON(proto.Clone(d))
	if err != nil || !bytes.Equal(out, again) {
		t.Errorf("MarshalJSON not stable:\n%s\n%s", out, again)
	}
	if bytes.ContainsAny(out, "\n\t") || bytes.Contains(out, []byte(`": `)) || bytes.Contains(out, []byte(`, "`)) {
		t.Errorf("output not compact: %s", out)
	}
	for _, want := range []string{`"process_guid":"web-1234_abcd"`, `"check_definition":`, `"update_strategy":"RECREATE"`} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("output lacks %s: %s", want, out)
		}
	}
	if bytes.Contains(out, []byte("processGuid")) {
		t.Errorf("output uses camelCase: %s", out)
	}
	back, err := DecodeDesiredLRP(out)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(back, d) {
		t.Errorf("round trip differs:\n got %v\nwant %v", back, d)
	}
}

func TestDecodeErrors(t *testing.T) {
	big := `{"annotation":"` + strings.Repeat("a", MaxSpecSize) + `"}`
	tests := []struct {
		name   string
		spec   string
		field  string
		reason string // substring
	}{
		{"empty", ``, "spec", "must not be empty"},
		{"blank", " \n\t", "spec", "must not be empty"},
		{"too large", big, "spec", "must be at most 2097152 bytes"},
		{"not an object", `[1]`, "spec", "unexpected token ["},
		{"null", `null`, "spec", "unexpected token null"},
		{"trailing garbage", `{"process_guid":"a"} x`, "spec", "syntax error at line 1:22"},
		{"trailing object", `{"process_guid":"a"}{}`, "spec", "syntax error"},
		{"truncated", `{"process_guid":"a"`, "spec", "unexpected EOF"},
		{"trailing comma", `{"process_guid":"a",}`, "spec", "syntax error"},
		{"syntax error inside", `{"action":{"run":{"path":"/a",}}}`, "action.run", "syntax error at line 1:31"},
		{"missing colon", `{"domain" "d"}`, "spec", "syntax error at line 1:11"},
		{"unknown field", `{"procss_guid":"a"}`, "procss_guid", `unknown field "procss_guid"`},
		{"unknown nested field", `{"action":{"run":{"pathh":"/a"}}}`, "action.run.pathh", `unknown field "pathh"`},
		{"unknown field in list", `{"env":[{"name":"a"},{"nam":"b"}]}`, "env[1].nam", `unknown field "nam"`},
		{"unknown field in map value", `{"metric_tags":{"x":{"statc":"s"}}}`, `metric_tags["x"].statc`, `unknown field "statc"`},
		{"wrong type", `{"instances":"three"}`, "instances", `invalid value for int32: "three"`},
		{"wrong type camelCase", `{"memoryMb":true}`, "memory_mb", "invalid value for int32: true"},
		{"negative uint", `{"ports":[8080,-1]}`, "ports[1]", "invalid value for uint32: -1"},
		{"fraction", `{"instances":1.5}`, "instances", "invalid value for int32"},
		{"deep wrong type", `{"action":{"serial":{"actions":[{"run":{"path":"/a"}},{"run":{"path":1}}]}}}`,
			"action.serial.actions[1].run.path", "invalid value for string: 1"},
		{"check port", `{"check_definition":{"checks":[{"http_check":{"port":"x"}}]}}`,
			"check_definition.checks[0].http_check.port", "invalid value for uint32"},
		{"bad enum", `{"metric_tags":{"i":{"dynamic":"INDEXX"}}}`, `metric_tags["i"].dynamic`, "invalid value for enum"},
		{"object expected", `{"action":"run /a"}`, "action", `wrong JSON type: unexpected token "run /a"`},
		{"list expected", `{"ports":8080}`, "ports", "wrong JSON type"},
		{"duplicate field", `{"process_guid":"a","processGuid":"b"}`, "process_guid", "duplicate field"},
		{"two action kinds", `{"action":{"run":{"path":"/a"},"try":{}}}`, "action.try", "oneof"},
		{"free-form routes then bad field", `{"routes":{"r":{"a":[1,{"b":2}]}},"instances":{}}`, "instances", "invalid value for int32"},
		{"error on a later line", "{\n  \"process_guid\": \"a\",\n  \"domain\": 7\n}", "domain", "invalid value for string: 7"},
		{"columns count runes", `{"annotation":"ééé€𝄞","bogus":1}`, "bogus", `unknown field "bogus"`},
		{"invalid utf8", "{\"annotation\":\"\xff\"}", "annotation", "invalid UTF-8"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := DecodeDesiredLRP([]byte(tc.spec))
			if err == nil {
				t.Fatalf("decoded %v", d)
			}
			if d != nil {
				t.Errorf("returned a record with the error")
			}
			var verrs ValidationErrors
			if !errors.As(err, &verrs) || len(verrs) != 1 {
				t.Fatalf("error %#v is not one ValidationError", err)
			}
			if verrs[0].Field != tc.field || !strings.Contains(verrs[0].Reason, tc.reason) {
				t.Errorf("got field %q reason %q, want field %q reason containing %q", verrs[0].Field, verrs[0].Reason, tc.field, tc.reason)
			}
			if ToStatus(err).Code() != codes.InvalidArgument {
				t.Errorf("status code %v", ToStatus(err).Code())
			}
		})
	}
}

func TestDecodeDeepNesting(t *testing.T) {
	// Past protojson's recursion limit there is no position to report.
	const depth = 6000
	spec := `{"action":` + strings.Repeat(`{"try":{"action":`, depth) + `{"run":{"path":"/a"}}` + strings.Repeat(`}}`, depth) + `}`
	_, err := DecodeDesiredLRP([]byte(spec))
	var verrs ValidationErrors
	if !errors.As(err, &verrs) || verrs[0].Field != "spec" || !strings.Contains(verrs[0].Reason, "recursion") {
		t.Errorf("error %v", err)
	}
	// Within the limit, the action depth rule applies.
	spec = `{"process_guid":"p","domain":"d","rootfs":"a:b","action":` + strings.Repeat(`{"try":{"action":`, 40) +
		`{"run":{"path":"/a"}}` + strings.Repeat(`}}`, 40) + `}`
	_, err = DecodeDesiredLRP([]byte(spec))
	if !errors.As(err, &verrs) || len(verrs) != 1 || !strings.Contains(verrs[0].Reason, "deep") {
		t.Errorf("error %v", err)
	}
}

func TestDecodeReturnsValidationErrors(t *testing.T) {
	spec := `{"process_guid":"a b","domain":"d","rootfs":"preloaded:x","instances":-1,
	  "action":{"serial":{"actions":[{"run":{"path":"/a"}},{"run":{}}]}}}`
	_, err := DecodeDesiredLRP([]byte(spec))
	var verrs ValidationErrors
	if !errors.As(err, &verrs) {
		t.Fatalf("error %v is %T", err, err)
	}
	want := []string{"process_guid", "instances", "action.serial.actions[1].run.path"}
	if !slices.Equal(verrs.Fields(), want) {
		t.Errorf("fields %q, want %q", verrs.Fields(), want)
	}
}

func TestDecodeDesiredLRPUpdate(t *testing.T) {
	u, err := DecodeDesiredLRPUpdate([]byte(`{"instances":0,"routes":{},"set_routes":true,"annotation":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	if u.Instances == nil || *u.Instances != 0 || !u.SetRoutes || u.GetAnnotation() != "x" || u.ImageUsername != nil {
		t.Errorf("decoded %v", u)
	}
	out, err := MarshalJSON(u)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(out, []byte(`"instances":0`)) {
		t.Errorf("explicit zero instances lost: %s", out)
	}

	tests := []struct {
		spec  string
		field string
	}{
		{`{"instances":-1}`, "instances"},
		{`{"instance":1}`, "instance"},
		{`{"image_username":"u"}`, "image_password"},
		{`{"metric_tags":{"a":{}}}`, `metric_tags["a"]`},
		{`{"set_routes":"yes"}`, "set_routes"},
		{``, "spec"},
	}
	for _, tc := range tests {
		_, err := DecodeDesiredLRPUpdate([]byte(tc.spec))
		var verrs ValidationErrors
		if !errors.As(err, &verrs) || verrs[0].Field != tc.field {
			t.Errorf("%s: error %v, want field %q", tc.spec, err, tc.field)
		}
	}
}

func TestDecodeDesireTaskRequest(t *testing.T) {
	spec := `{"task_guid":"t-1","domain":"cf-tasks","task_definition":{
	  "rootfs":"docker:///busybox","action":{"run":{"path":"/bin/echo","args":["hi"]}},
	  "result_file":"/tmp/out","completion_callback_url":"https://cc.example.com/done"}}`
	r, err := DecodeDesireTaskRequest([]byte(spec))
	if err != nil {
		t.Fatal(err)
	}
	if r.TaskGuid != "t-1" || r.GetTaskDefinition().GetResultFile() != "/tmp/out" {
		t.Errorf("decoded %v", r)
	}

	tests := []struct {
		spec   string
		fields []string
	}{
		{`{"task_guid":"t-1","domain":"d","task_definition":{"rootfs":"docker:///x"}}`, []string{"task_definition.action"}},
		{`{"task_guid":"t-1","domain":"d"}`, []string{"task_definition"}},
		{`{"task_guid":"t-1","domain":"d","task_definition":{"actoin":{}}}`, []string{"task_definition.actoin"}},
		{`{"task_guid":"t-1","domain":"d","task_definition":{"rootfs":"docker:///x","action":{"run":{"path":"/a"}},"result_file":"out"}}`,
			[]string{"task_definition.result_file"}},
		{`{"task_guid":1}`, []string{"task_guid"}},
		{`{}`, []string{"task_guid", "domain", "task_definition"}},
	}
	for _, tc := range tests {
		_, err := DecodeDesireTaskRequest([]byte(tc.spec))
		var verrs ValidationErrors
		if !errors.As(err, &verrs) || !slices.Equal(verrs.Fields(), tc.fields) {
			t.Errorf("%s: error %v, want fields %q", tc.spec, err, tc.fields)
		}
	}
}

func TestMarshalJSONError(t *testing.T) {
	// A Value with no kind cannot be written as JSON.
	d := &DesiredLRP{Routes: map[string]*structpb.Value{"r": {}}}
	if _, err := MarshalJSON(d); err == nil {
		t.Error("marshalled an empty google.protobuf.Value")
	}
}

// trickySpecs are valid specs whose encodings do not come back byte for
// byte: number forms, escapes, enum numbers, empty collections.
func trickySpecs() [][]byte {
	var out [][]byte
	for _, extra := range []string{
		`"routes":{"r":[-0,5e-324,1.7976931348623157e308,123456789012345678901234567890]}`,
		`"routes":{"r":"\u0000\ud83d\ude00\u2028<>&\/"}`,
		`"routes":{"s":null,"t":{"u":{}},"v":[[],{}],"w":true}`,
		`"instances":1e2,"memory_mb":"12","start_timeout_ms":1.0e1`,
		`"update_strategy":1,"metric_tags":{"a":{"dynamic":2}}`,
		`"ports":[],"env":[],"routes":{},"metric_tags":{},"setup":null`,
		`"image_layers":[{"url":"u","destination_path":"/","layer_type":1,"media_type":3}]`,
		`"annotation":"é€𝄞\t\"","memoryMb":5,"startTimeoutMs":"7"`,
	} {
		out = append(out, []byte(`{"process_guid":"p","domain":"d","rootfs":"docker:///x","action":{"run":{"path":"/a"}},`+extra+`}`))
	}
	return out
}

func TestTrickySpecsRoundTrip(t *testing.T) {
	for _, spec := range trickySpecs() {
		d, err := DecodeDesiredLRP(spec)
		if err != nil {
			t.Errorf("%s: %v", spec, err)
			continue
		}
		out, err := MarshalJSON(d)
		if err != nil {
			t.Fatal(err)
		}
		back, err := DecodeDesiredLRP(out)
		if err != nil || !proto.Equal(back, d) {
			t.Errorf("%s: round trip gave %v, %v", spec, back, err)
		}
	}
}
