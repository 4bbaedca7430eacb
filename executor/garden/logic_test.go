package garden

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestListFilter(t *testing.T) {
	tests := []struct {
		name  string
		query map[string][]string
		want  Properties
	}{
		{"none adds created", nil, Properties{PropertyState: StateCreated}},
		{"keeps others", map[string][]string{"a": {"1"}}, Properties{"a": "1", PropertyState: StateCreated}},
		{"explicit state", map[string][]string{PropertyState: {"creating"}}, Properties{PropertyState: "creating"}},
		{"all lifts", map[string][]string{PropertyState: {StateAll}, "a": {"1"}}, Properties{"a": "1"}},
		{"first value wins", map[string][]string{"a": {"1", "2"}}, Properties{"a": "1", PropertyState: StateCreated}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, listFilter(tt.query)); diff != "" {
				t.Fatal(diff)
			}
		})
	}
}

func TestMatchProperties(t *testing.T) {
	props := Properties{"a": "1", "b": "2"}
	tests := []struct {
		filter Properties
		want   bool
	}{
		{nil, true},
		{Properties{"a": "1"}, true},
		{Properties{"a": "1", "b": "2"}, true},
		{Properties{"a": "2"}, false},
		{Properties{"a": "1", "c": ""}, false},
	}
	for _, tt := range tests {
		if got := MatchProperties(props, tt.filter); got != tt.want {
			t.Errorf("MatchProperties(%v) = %v, want %v", tt.filter, got, tt.want)
		}
	}
}

func TestRouteMethodPath(t *testing.T) {
	tests := []struct {
		route        string
		params       []string
		method, path string
	}{
		{routePing, nil, "GET", "/ping"},
		{routeInfo, []string{"h"}, "GET", "/containers/h/info"},
		{routeStdout, []string{"h", "p", "3"}, "GET", "/containers/h/processes/p/attaches/3/stdout"},
		{routeSetProperty, []string{"h", "k"}, "PUT", "/containers/h/properties/k"},
	}
	for _, tt := range tests {
		m, p := routeMethodPath(tt.route, tt.params...)
		if m != tt.method || p != tt.path {
			t.Errorf("%s = %s %s, want %s %s", tt.route, m, p, tt.method, tt.path)
		}
	}
}

func TestErrorJSONRoundTrip(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{ContainerNotFoundError{Handle: "h"}, "unknown handle: h"},
		{ProcessNotFoundError{ProcessID: "p"}, "unknown process: p"},
		{ExecutableNotFoundError{Message: "no exe"}, "no exe"},
		{ServiceUnavailableError{Cause: "later"}, "later"},
		{UnrecoverableError{Symptom: "bad"}, "bad"},
		{errors.New("plain"), "plain"},
	}
	for _, tt := range tests {
		data, err := json.Marshal(NewError(tt.err))
		if err != nil {
			t.Fatal(err)
		}
		var back Error
		if err := json.Unmarshal(data, &back); err != nil {
			t.Fatal(err)
		}
		if back.Error() != tt.want {
			t.Errorf("%T round trip = %q, want %q", tt.err, back.Error(), tt.want)
		}
		if got, want := typeString(back.Err), typeString(tt.err); got != want {
			t.Errorf("type %s, want %s", got, want)
		}
	}
}

func typeString(v any) string {
	switch v.(type) {
	case ContainerNotFoundError:
		return "ContainerNotFoundError"
	case ProcessNotFoundError:
		return "ProcessNotFoundError"
	case ExecutableNotFoundError:
		return "ExecutableNotFoundError"
	case ServiceUnavailableError:
		return "ServiceUnavailableError"
	case UnrecoverableError:
		return "UnrecoverableError"
	}
	return "*errors.errorString"
}

func TestSpecJSONKeys(t *testing.T) {
	// The keys upstream clients send and expect.
	spec := ContainerSpec{Handle: "h", GraceTime: 5, NetIn: []NetIn{{HostPort: 0, ContainerPort: 8080}}}
	data, _ := json.Marshal(spec)
	want := `{"handle":"h","grace_time":5,"image":{},"limits":{"bandwidth_limits":{},"cpu_limits":{},"disk_limits":{},"memory_limits":{},"pid_limits":{}},"netin":[{"host_port":0,"container_port":8080}]}`
	if string(data) != want {
		t.Fatalf("spec JSON\n got %s\nwant %s", data, want)
	}
	rule := NetOutRule{Protocol: ProtocolTCP, Networks: []IPRange{IPRangeFromIPNet(&net.IPNet{IP: net.IPv4(10, 0, 0, 0), Mask: net.CIDRMask(30, 32)})}, Ports: []PortRange{{80, 90}}}
	data, _ = json.Marshal(rule)
	if string(data) != `{"protocol":1,"networks":[{"start":"10.0.0.0","end":"10.0.0.3"}],"ports":[{"start":80,"end":90}]}` {
		t.Fatalf("rule JSON %s", data)
	}
	info, _ := json.Marshal(ContainerInfo{State: "active"})
	if string(info) != `{"State":"active","Events":null,"HostIP":"","ContainerIP":"","ContainerIPv6":"","ExternalIP":"","ContainerPath":"","ProcessIDs":null,"Properties":null,"MappedPorts":null}` {
		t.Fatalf("info JSON %s", info)
	}
}

func TestOutStreamBuffering(t *testing.T) {
	reg := newStreamRegistry()
	st := reg.open("1", "stdout")
	chunk := bytes.Repeat([]byte("x"), 64<<10)
	for i := 0; i < 40; i++ { // 2.5 MiB while nobody is attached
		if n, err := st.Write(chunk); err != nil || n != len(chunk) {
			t.Fatalf("unattached write = %d, %v", n, err)
		}
	}
	if got := reg.take("1", "stdout"); got != st {
		t.Fatal("stream not registered")
	}
	if reg.take("1", "stdout") != nil {
		t.Fatal("a stream was handed out twice")
	}
	// Attached, nothing is dropped: writes wait for the reader.
	server, client := net.Pipe()
	var got bytes.Buffer
	done := make(chan struct{})
	go func() {
		io.Copy(&got, client)
		close(done)
	}()
	drained := make(chan struct{})
	go func() {
		st.drain(server)
		server.Close()
		close(drained)
	}()
	for i := 0; i < 100; i++ {
		st.Write(chunk)
	}
	st.finish()
	<-drained
	<-done
	if want := streamBytes + 100*len(chunk); got.Len() != want {
		t.Fatalf("delivered %d bytes, want %d (1 MiB buffered unattached, then everything)", got.Len(), want)
	}
	if _, err := st.Write(chunk); err == nil {
		t.Fatal("write after finish accepted")
	}
}
