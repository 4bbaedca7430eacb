package models

import (
	"testing"

	"google.golang.org/protobuf/proto"
)

// The decode fuzzers check two properties: decoding never panics, and a
// spec that is accepted survives MarshalJSON and decodes back to an equal
// value (so `gavel` can print what it read and read it again).

func mustMarshalJSON(f *testing.F, m proto.Message) []byte {
	f.Helper()
	b, err := MarshalJSON(m)
	if err != nil {
		f.Fatal(err)
	}
	return b
}

// addSpecSeeds adds specs shared by the decode fuzzers: malformed JSON and
// the edge cases of the path finder.
func addSpecSeeds(f *testing.F) {
	for _, s := range []string{
		``,
		` `,
		`{}`,
		`null`,
		`[]`,
		`{"a":`,
		`{"process_guid":"a"} x`,
		`{"process_guid":"a",}`,
		`{"procss_guid":"a"}`,
		`{"instances":"x"}`,
		`{"routes":{"r":{"a":[1,{"b":[]}]}},"x":1}`,
		`{"routes":{"r":1e400}}`,

		`{"metric_tags":{"m":{"dynamic":7}}}`,
		`{"action":{"run":{"path":"/a"},"try":{}}}`,
		"{\"annotation\":\"\xff\"}",
		"{\n\"annotation\":\"é€𝄞\",\n\"bogus\":1}",
		`{"task_definition":{"action":{"serial":{"actions":[{},{"run":{"pathh":1}}]}}}}`,
	} {
		f.Add([]byte(s))
	}
}

func FuzzDecodeDesiredLRP(f *testing.F) {
	f.Add([]byte(desiredLRPSpec))
	f.Add(mustMarshalJSON(f, validDesiredLRP()))
	f.Add([]byte(`{"process_guid":"p","domain":"d","rootfs":"docker:///x","action":{"run":{"path":"/a"}}}`))
	f.Add([]byte(`{"processGuid":"p","domain":"d","rootfs":"docker:///x","action":{"try":{"action":{"run":{"path":"/a"}}}},"routes":{"r":null}}`))
	for _, spec := range trickySpecs() {
		f.Add(spec)
	}
	addSpecSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := DecodeDesiredLRP(data)
		if err != nil {
			requireValidationErrors(t, err)
			return
		}
		out, err := MarshalJSON(d)
		if err != nil {
			t.Fatalf("accepted spec does not re-encode: %v\n%v", err, d)
		}
		if len(out) > MaxSpecSize {
			return // JSON can grow (enum numbers become names); not a decode bug
		}
		back, err := DecodeDesiredLRP(out)
		if err != nil {
			t.Fatalf("re-encoded spec refused: %v\n%s", err, out)
		}
		if !proto.Equal(back, d) {
			t.Fatalf("round trip differs:\n got %v\nwant %v", back, d)
		}
		// A valid record splits into valid parts and joins without loss.
		s, r := d.SchedulingInfo(), d.RunInfo()
		if err := s.Validate(); err != nil {
			t.Fatalf("valid DesiredLRP has an invalid scheduling info: %v", err)
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("valid DesiredLRP has an invalid run info: %v", err)
		}
		if err := s.LRPStartRequest(0).Validate(); err != nil {
			t.Fatalf("valid DesiredLRP gives an invalid start request: %v", err)
		}
		if joined := NewDesiredLRP(s, r); !proto.Equal(joined, d) {
			t.Fatalf("split and join differ:\n got %v\nwant %v", joined, d)
		}
	})
}

func FuzzDecodeDesiredLRPUpdate(f *testing.F) {
	f.Add([]byte(`{"instances":3}`))
	f.Add([]byte(`{"instances":0,"set_routes":true}`))
	f.Add([]byte(`{"routes":{"cf-router":[{"hostnames":["a.example.com"],"port":8080}]},"annotation":"x"}`))
	f.Add([]byte(`{"metric_tags":{"a":{"static":"b"},"i":{"dynamic":"INSTANCE_GUID"}},"set_metric_tags":true}`))
	f.Add([]byte(`{"image_username":"u","image_password":"p"}`))
	f.Add([]byte(`{"image_username":"u"}`))
	f.Add([]byte(`{"instances":-1}`))
	addSpecSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		u, err := DecodeDesiredLRPUpdate(data)
		if err != nil {
			requireValidationErrors(t, err)
			return
		}
		out, err := MarshalJSON(u)
		if err != nil {
			t.Fatalf("accepted spec does not re-encode: %v\n%v", err, u)
		}
		if len(out) > MaxSpecSize {
			return
		}
		back, err := DecodeDesiredLRPUpdate(out)
		if err != nil {
			t.Fatalf("re-encoded spec refused: %v\n%s", err, out)
		}
		if !proto.Equal(back, u) {
			t.Fatalf("round trip differs:\n got %v\nwant %v", back, u)
		}
		// Applying a valid update never panics, even to empty records.
		u.Apply(&DesiredLRPSchedulingInfo{}, &DesiredLRPRunInfo{})
	})
}

func FuzzDecodeDesireTaskRequest(f *testing.F) {
	f.Add(mustMarshalJSON(f, &DesireTaskRequest{TaskGuid: "t-1", Domain: "cf-tasks", TaskDefinition: validTaskDefinition()}))
	f.Add([]byte(`{"task_guid":"t","domain":"d","task_definition":{"rootfs":"docker:///x","action":{"run":{"path":"/a"}}}}`))
	f.Add([]byte(`{"task_guid":"t","domain":"d","task_definition":{"rootfs":"docker:///x","action":{"run":{"path":"/a"}},"completion_callback_url":"ftp://x"}}`))
	f.Add([]byte(`{"task_guid":"t","domain":"d","task_definition":{"rootfs":"docker:///x","action":{"timeout":{"action":{"run":{"path":"/a"}},"timeout_ms":"5"}}}}`))
	addSpecSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := DecodeDesireTaskRequest(data)
		if err != nil {
			requireValidationErrors(t, err)
			return
		}
		out, err := MarshalJSON(r)
		if err != nil {
			t.Fatalf("accepted spec does not re-encode: %v\n%v", err, r)
		}
		if len(out) > MaxSpecSize {
			return
		}
		back, err := DecodeDesireTaskRequest(out)
		if err != nil {
			t.Fatalf("re-encoded spec refused: %v\n%s", err, out)
		}
		if !proto.Equal(back, r) {
			t.Fatalf("round trip differs:\n got %v\nwant %v", back, r)
		}
	})
}

func FuzzUnmarshalActualLRP(f *testing.F) {
	for _, s := range []ActualLRP_State{ActualLRP_UNCLAIMED, ActualLRP_CLAIMED, ActualLRP_RUNNING, ActualLRP_CRASHED} {
		b, err := proto.Marshal(validActualLRP(s))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0x02, 0x0a})       // truncated key
	f.Add([]byte{0x30, 0x09})             // unknown state 9
	f.Add([]byte{0x50, 0x02, 0x30, 0x01}) // SUSPECT UNCLAIMED
	f.Fuzz(func(t *testing.T, data []byte) {
		a := &ActualLRP{}
		if err := proto.Unmarshal(data, a); err != nil {
			return
		}
		err := a.Validate()
		if err != nil {
			requireValidationErrors(t, err)
		}
		// The guards and the restart policy take whatever is stored.
		c := NewDefaultRestartCalculator()
		for _, to := range []ActualLRP_State{ActualLRP_UNCLAIMED, ActualLRP_CLAIMED, ActualLRP_RUNNING, ActualLRP_CRASHED} {
			a.AllowsTransitionTo(a.GetActualLrpInstanceKey(), to)
			a.AllowsTransitionTo(nil, to)
		}
		NextCrashCount(a, a.GetSince())
		a.ShouldRestartCrash(a.GetSince(), c)
		a.ShouldRestartImmediately(c)
		_, _, _, _ = a.ProcessGuid(), a.Index(), a.CellID(), a.InstanceGuid()
		if err == nil {
			if _, err := MarshalJSON(a); err != nil {
				t.Fatalf("valid ActualLRP does not encode as JSON: %v", err)
			}
		}
	})
}

func FuzzUnmarshalTask(f *testing.F) {
	for _, s := range []Task_State{Task_PENDING, Task_RUNNING, Task_COMPLETED, Task_RESOLVING} {
		task := validTask()
		task.State = s
		b, err := proto.Marshal(task)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0x38, 0x07})                   // unknown state 7
	f.Add([]byte{0x1a, 0x03, 0x1a, 0x01, 0x00}) // definition with an empty action
	f.Fuzz(func(t *testing.T, data []byte) {
		task := &Task{}
		if err := proto.Unmarshal(data, task); err != nil {
			return
		}
		err := task.Validate()
		if err != nil {
			requireValidationErrors(t, err)
		}
		for _, to := range []Task_State{Task_PENDING, Task_RUNNING, Task_COMPLETED, Task_RESOLVING} {
			_ = task.ValidateTransitionTo(to)
		}
		_, _ = task.ValidateCancelOrFail(), task.ValidateReject()
		req := task.TaskStartRequest()
		if err == nil {
			if rerr := req.Validate(); rerr != nil {
				t.Fatalf("valid task gives an invalid start request: %v", rerr)
			}
		}
	})
}

func requireValidationErrors(t *testing.T, err error) {
	t.Helper()
	verrs, ok := err.(ValidationErrors)
	if !ok || len(verrs) == 0 {
		t.Fatalf("error %#v is not a non-empty ValidationErrors", err)
	}
	for _, v := range verrs {
		if v.Field == "" || v.Reason == "" {
			t.Fatalf("validation error without field or reason: %#v", v)
		}
	}
}
