package gardenrunc

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/gavel-scheduler/gavel/executor/garden"
)

// TestBadInput sends malformed or invalid requests to every kind of
// endpoint of a real server and checks each gets a clear Garden error
// while a bystander container keeps working.
func TestBadInput(t *testing.T) { bothNetworks(t, testBadInput) }

func testBadInput(t *testing.T, network string) {
	requireHost(t)
	s := startServer(t, network)
	ctx := context.Background()
	bystander := create(t, s.client, garden.ContainerSpec{Handle: "bystander", Properties: garden.Properties{"k": "v"}})
	create(t, s.client, garden.ContainerSpec{Handle: "target"})

	traversal := func() string {
		var sb strings.Builder
		io.Copy(&sb, tarStream(t, map[string]string{"../../../etc/gavel-escape": "x"}))
		return sb.String()
	}()
	tests := []struct {
		name, method, path, body string
		status                   int
		message                  string
	}{
		{"create malformed", "POST", "/containers", `{"handle":`, 500, "malformed request body"},
		{"create bad handle", "POST", "/containers", `{"handle":"a/b"}`, 500, "handle"},
		{"create duplicate", "POST", "/containers", `{"handle":"target"}`, 500, "Handle 'target' already in use"},
		{"create tiny memory", "POST", "/containers", `{"handle":"x1","limits":{"memory_limits":{"limit_in_bytes":1}}}`, 500, "memory limit 1 bytes"},
		{"create bad cpu", "POST", "/containers", `{"handle":"x2","limits":{"cpu_limits":{"weight":1}}}`, 500, "cpu shares 1"},
		{"create bad disk", "POST", "/containers", `{"handle":"x3","limits":{"disk_limits":{"byte_soft":9000000,"byte_hard":2000000}}}`, 500, "soft limit"},
		{"create bad scope", "POST", "/containers", `{"handle":"x4","limits":{"disk_limits":{"scope":7}}}`, 500, "scope 7"},
		{"create privileged", "POST", "/containers", `{"handle":"x5","privileged":true}`, 500, "privileged container creation is disabled"},
		{"create bad network", "POST", "/containers", `{"handle":"x6","network":"192.168.0.0/24"}`, 500, "outside the pool"},
		{"create bad rootfs", "POST", "/containers", `{"handle":"x7","image":{"uri":"raw:///nope"}}`, 500, "/nope"},
		{"create bad bind mount", "POST", "/containers", `{"handle":"x8","bind_mounts":[{"src_path":"rel","dst_path":"/x"}]}`, 500, "must be absolute"},
		{"create bad netout", "POST", "/containers", `{"handle":"x9","netout_rules":[{"protocol":9}]}`, 500, "invalid protocol"},
		{"create both rootfs", "POST", "/containers", `{"handle":"x10","rootfs":"raw:///a","image":{"uri":"raw:///b"}}`, 500, "both"},
		{"destroy unknown", "DELETE", "/containers/ghost", "", 404, "unknown handle: ghost"},
		{"info unknown", "GET", "/containers/ghost/info", "", 404, "unknown handle: ghost"},
		{"metrics unknown", "GET", "/containers/ghost/metrics", "", 404, "unknown handle: ghost"},
		{"stop unknown", "PUT", "/containers/ghost/stop", `{"kill":true}`, 404, "unknown handle"},
		{"stop malformed", "PUT", "/containers/target/stop", `{kill}`, 500, "malformed"},
		{"run malformed", "POST", "/containers/target/processes", `{"path":`, 500, "malformed"},
		{"run empty path", "POST", "/containers/target/processes", `{"path":""}`, 500, "path must not be empty"},
		{"run bad id", "POST", "/containers/target/processes", `{"id":"../x","path":"true"}`, 500, "process ID"},
		{"run bad user", "POST", "/containers/target/processes", `{"path":"true","user":"nobody2"}`, 500, "unable to find user nobody2"},
		{"run bind mounts", "POST", "/containers/target/processes", `{"path":"true","bind_mounts":[{"src_path":"/a","dst_path":"/b"}]}`, 500, "bind mounts and no image"},
		{"attach unknown process", "GET", "/containers/target/processes/nope", "", 404, "unknown process: nope"},
		{"netin malformed", "POST", "/containers/target/net/in", `{"host_port":"x"}`, 500, "malformed"},
		{"netin bad port", "POST", "/containers/target/net/in", `{"host_port":70000}`, 500, "at most 65535"},
		{"netout ports for icmp", "POST", "/containers/target/net/out", `{"protocol":3,"ports":[{"start":1,"end":2}]}`, 500, "Ports cannot be specified for Protocol ICMP"},
		{"bulk netout malformed", "POST", "/containers/target/net/out/bulk", `{"protocol":1}`, 500, "malformed"},
		{"stream in traversal", "PUT", "/containers/target/files?destination=/tmp", traversal, 500, "path traversal"},
		{"stream in not tar", "PUT", "/containers/target/files?destination=/tmp", "this is not a tar stream, just some bytes that are long enough to be read as a header block maybe " + strings.Repeat("x", 600), 500, "error streaming in"},
		{"stream out missing", "GET", "/containers/target/files?source=/no/such", "", 500, "no such file"},
		{"property missing", "GET", "/containers/target/properties/nope", "", 500, "property does not exist: nope"},
		{"set property malformed", "PUT", "/containers/target/properties/k", `{"value":1}`, 500, "malformed"},
		{"grace time malformed", "PUT", "/containers/target/grace_time", `"soon"`, 500, "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := net.Dial(network, s.garden.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			req, _ := http.NewRequest(tt.method, "http://api"+tt.path, strings.NewReader(tt.body))
			if tt.body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			req.Write(conn)
			resp, err := http.ReadResponse(bufio.NewReader(conn), req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var e struct{ Type, Message string }
			if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
				t.Fatalf("status %d with a body that is no Garden error: %v", resp.StatusCode, err)
			}
			if resp.StatusCode != tt.status || !strings.Contains(e.Message, tt.message) {
				t.Fatalf("status %d message %q; want %d containing %q", resp.StatusCode, e.Message, tt.status, tt.message)
			}
		})
	}
	// Nothing half-made is listed, and the bystander is untouched.
	list, err := s.client.Containers(ctx, garden.Properties{garden.PropertyState: garden.StateAll})
	if err != nil || len(list) != 2 {
		t.Fatalf("containers after bad input: %d, %v", len(list), err)
	}
	if code, out := run(t, bystander, sh("echo still here")); code != 0 || out != "still here\n" {
		t.Fatalf("bystander: %d %q", code, out)
	}
	if v, err := bystander.Property(ctx, "k"); err != nil || v != "v" {
		t.Fatalf("bystander property %q, %v", v, err)
	}
}
