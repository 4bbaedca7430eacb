package garden

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// startServer runs a Server over a fake backend on network and returns a
// client for it; the server stops at the end of the test.
func startServer(t *testing.T, network string, cfg ServerConfig) (*fakeBackend, *HTTPClient, *Server) {
	t.Helper()
	b := newFakeBackend()
	cfg.Network = network
	switch network {
	case "unix":
		cfg.Address = filepath.Join(t.TempDir(), "garden.sock")
	case "tcp":
		cfg.Address = "127.0.0.1:0"
	}
	s := NewServer(cfg, b, nil)
	signals := make(chan os.Signal, 1)
	ready := make(chan struct{})
	errc := make(chan error, 1)
	go func() { errc <- s.Run(signals, ready) }()
	select {
	case <-ready:
	case err := <-errc:
		t.Fatalf("server: %v", err)
	}
	t.Cleanup(func() {
		signals <- os.Interrupt
		if err := <-errc; err != nil {
			t.Errorf("server run: %v", err)
		}
	})
	return b, NewClient(network, s.Addr()), s
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestClientServerRoundTrip(t *testing.T) {
	for _, network := range []string{"unix", "tcp"} {
		t.Run(network, func(t *testing.T) {
			ctx := context.Background()
			b, client, _ := startServer(t, network, ServerConfig{})
			if err := client.Ping(ctx); err != nil {
				t.Fatalf("ping: %v", err)
			}
			capacity, err := client.Capacity(ctx)
			if err != nil || capacity.MaxContainers != 7 {
				t.Fatalf("capacity = %+v, %v", capacity, err)
			}
			spec := ContainerSpec{
				Handle:     "c1",
				Properties: Properties{"app": "web"},
				Limits:     Limits{Memory: MemoryLimits{LimitInBytes: 64 << 20}, CPU: CPULimits{LimitInShares: 512}, Pid: PidLimits{Max: 10}},
			}
			c, err := client.Create(ctx, spec)
			if err != nil || c.Handle() != "c1" {
				t.Fatalf("create: %v", err)
			}
			if _, err := client.Create(ctx, ContainerSpec{Handle: "c2", Properties: Properties{"app": "worker"}}); err != nil {
				t.Fatal(err)
			}
			if _, err := client.Create(ctx, ContainerSpec{Handle: "c1"}); err == nil || err.Error() != "Handle 'c1' already in use" {
				t.Fatalf("duplicate create error = %v", err)
			}
			list, err := client.Containers(ctx, Properties{"app": "web"})
			if err != nil || len(list) != 1 || list[0].Handle() != "c1" {
				t.Fatalf("filtered list = %v, %v", list, err)
			}
			if _, err := client.Lookup(ctx, "c2"); err != nil {
				t.Fatalf("lookup: %v", err)
			}
			if _, err := client.Lookup(ctx, "nope"); !errors.As(err, new(ContainerNotFoundError)) {
				t.Fatalf("lookup unknown = %v", err)
			}

			mem, err := c.CurrentMemoryLimits(ctx)
			if err != nil || mem.LimitInBytes != 64<<20 {
				t.Fatalf("memory limits = %+v, %v", mem, err)
			}
			cpu, err := c.CurrentCPULimits(ctx)
			if err != nil || cpu.LimitInShares != 512 {
				t.Fatalf("cpu limits = %+v, %v", cpu, err)
			}
			if d, err := c.CurrentDiskLimits(ctx); err != nil || d != (DiskLimits{}) {
				t.Fatalf("disk limits = %+v, %v", d, err)
			}
			if bw, err := c.CurrentBandwidthLimits(ctx); err != nil || bw != (BandwidthLimits{}) {
				t.Fatalf("bandwidth limits = %+v, %v", bw, err)
			}
			info, err := c.Info(ctx)
			if err != nil || info.State != StateActive || info.ContainerIP != "10.254.0.2" || info.Properties["app"] != "web" {
				t.Fatalf("info = %+v, %v", info, err)
			}
			if err := c.Stop(ctx, true); err != nil {
				t.Fatal(err)
			}
			if info, _ := c.Info(ctx); info.State != StateStopped {
				t.Fatalf("state after stop = %q", info.State)
			}
			hp, cp, err := c.NetIn(ctx, 0, 8080)
			if err != nil || hp != 61001 || cp != 8080 {
				t.Fatalf("netin = %d %d %v", hp, cp, err)
			}
			if err := c.NetOut(ctx, NetOutRule{Protocol: ProtocolTCP, Ports: []PortRange{PortRangeFromPort(80)}}); err != nil {
				t.Fatal(err)
			}
			if err := c.BulkNetOut(ctx, []NetOutRule{{Protocol: ProtocolICMP, Ports: []PortRange{{1, 2}}}}); err == nil || !strings.Contains(err.Error(), "Ports cannot be specified for Protocol ICMP") {
				t.Fatalf("bulk netout error = %v", err)
			}
			m, err := c.Metrics(ctx)
			if err != nil || m.PidStat.Max != 10 || m.Age != time.Second {
				t.Fatalf("metrics = %+v, %v", m, err)
			}

			if err := c.SetProperty(ctx, "k", "v w"); err != nil {
				t.Fatal(err)
			}
			if v, err := c.Property(ctx, "k"); err != nil || v != "v w" {
				t.Fatalf("property = %q, %v", v, err)
			}
			if _, err := c.Property(ctx, "missing"); err == nil || err.Error() != "property does not exist: missing" {
				t.Fatalf("missing property error = %v", err)
			}
			if err := c.RemoveProperty(ctx, "k"); err != nil {
				t.Fatal(err)
			}
			props, err := c.Properties(ctx)
			if err != nil || props["k"] != "" || props["app"] != "web" {
				t.Fatalf("properties = %v, %v", props, err)
			}

			if err := c.StreamIn(ctx, StreamInSpec{Path: "/tmp", TarStream: strings.NewReader("tar bytes")}); err != nil {
				t.Fatal(err)
			}
			rc, err := c.StreamOut(ctx, StreamOutSpec{Path: "/tmp"})
			if err != nil {
				t.Fatal(err)
			}
			data, _ := io.ReadAll(rc)
			rc.Close()
			if string(data) != "tar bytes" {
				t.Fatalf("stream out = %q", data)
			}
			if _, err := c.StreamOut(ctx, StreamOutSpec{Path: "/nope"}); err == nil || !strings.Contains(err.Error(), "no such file") {
				t.Fatalf("stream out error = %v", err)
			}

			infos, err := client.BulkInfo(ctx, []string{"c1", "ghost"})
			if err != nil || len(infos) != 2 || infos["c1"].Err != nil || infos["c1"].Info.State != StateStopped {
				t.Fatalf("bulk info = %+v, %v", infos, err)
			}
			if !errors.As(infos["ghost"].Err, new(ContainerNotFoundError)) {
				t.Fatalf("bulk info ghost err = %v", infos["ghost"].Err)
			}
			metrics, err := client.BulkMetrics(ctx, nil)
			if err != nil || len(metrics) != 0 {
				t.Fatalf("empty bulk metrics = %v, %v", metrics, err)
			}

			if err := client.Destroy(ctx, "c1"); err != nil {
				t.Fatal(err)
			}
			if err := client.Destroy(ctx, "c1"); err == nil || err.Error() != "unknown handle: c1" {
				t.Fatalf("second destroy = %v", err)
			}
			if _, err := c.Info(ctx); !errors.As(err, new(ContainerNotFoundError)) {
				t.Fatalf("info after destroy = %v", err)
			}
			if b.has("c1") {
				t.Fatal("c1 still in backend")
			}
		})
	}
}

func TestRunStreamsOutputAndExitStatus(t *testing.T) {
	for _, network := range []string{"unix", "tcp"} {
		t.Run(network, func(t *testing.T) {
			ctx := context.Background()
			_, client, _ := startServer(t, network, ServerConfig{})
			c, err := client.Create(ctx, ContainerSpec{Handle: "run"})
			if err != nil {
				t.Fatal(err)
			}
			var stdout, stderr bytes.Buffer
			p, err := c.Run(ctx, ProcessSpec{Path: "echo", Args: []string{"hello", "world"}}, ProcessIO{Stdout: &stdout, Stderr: &stderr})
			if err != nil {
				t.Fatal(err)
			}
			if code, err := p.Wait(); err != nil || code != 0 {
				t.Fatalf("wait = %d, %v", code, err)
			}
			if stdout.String() != "hello world\n" || stderr.String() != "err:hello world\n" {
				t.Fatalf("stdout %q stderr %q", stdout.String(), stderr.String())
			}

			// stdin round trip
			stdout.Reset()
			p, err = c.Run(ctx, ProcessSpec{Path: "cat"}, ProcessIO{Stdin: strings.NewReader("from stdin"), Stdout: &stdout})
			if err != nil {
				t.Fatal(err)
			}
			if code, err := p.Wait(); err != nil || code != 0 || stdout.String() != "from stdin" {
				t.Fatalf("cat = %d %v %q", code, err, stdout.String())
			}

			p, err = c.Run(ctx, ProcessSpec{Path: "exit", Args: []string{"42"}}, ProcessIO{})
			if err != nil {
				t.Fatal(err)
			}
			if code, err := p.Wait(); err != nil || code != 42 {
				t.Fatalf("exit = %d, %v", code, err)
			}

			if _, err := c.Run(ctx, ProcessSpec{Path: "missing"}, ProcessIO{}); !errors.As(err, new(ExecutableNotFoundError)) {
				t.Fatalf("missing executable = %v", err)
			}
		})
	}
}

func TestAttachFansOutAndSignals(t *testing.T) {
	ctx := context.Background()
	b, client, _ := startServer(t, "unix", ServerConfig{})
	c, err := client.Create(ctx, ContainerSpec{Handle: "att"})
	if err != nil {
		t.Fatal(err)
	}
	var out1 syncBuffer
	p, err := c.Run(ctx, ProcessSpec{ID: "proc", Path: "wait"}, ProcessIO{Stdout: &out1})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "first output", func() bool { return out1.String() == "waiting\n" })
	if _, err := c.Run(ctx, ProcessSpec{ID: "proc", Path: "wait"}, ProcessIO{}); err == nil || !strings.Contains(err.Error(), "already in use") {
		t.Fatalf("duplicate process id = %v", err)
	}
	// Six attachers (one from a second client) all see the rest of the
	// output and the exit status.
	second := NewClient("unix", client.address)
	sc, err := second.Lookup(ctx, "att")
	if err != nil {
		t.Fatal(err)
	}
	type attached struct {
		p   Process
		out *syncBuffer
	}
	var atts []attached
	for i := 0; i < 6; i++ {
		var buf syncBuffer
		ap, err := sc.Attach(ctx, "proc", ProcessIO{Stdout: &buf})
		if err != nil {
			t.Fatal(err)
		}
		if ap.ID() != "proc" {
			t.Fatalf("attached id %q", ap.ID())
		}
		atts = append(atts, attached{ap, &buf})
	}
	if _, err := sc.Attach(ctx, "ghost", ProcessIO{}); !errors.As(err, new(ProcessNotFoundError)) {
		t.Fatalf("attach unknown = %v", err)
	}
	fc, _ := b.Lookup(ctx, "att")
	close(fc.(*fakeContainer).procs["proc"].release)
	for _, a := range atts {
		if code, err := a.p.Wait(); err != nil || code != 12 {
			t.Fatalf("attacher wait = %d, %v", code, err)
		}
		if a.out.String() != "1\n2\n3\n" {
			t.Fatalf("attacher output %q", a.out.String())
		}
	}
	if code, _ := p.Wait(); code != 12 || out1.String() != "waiting\n1\n2\n3\n" {
		t.Fatalf("runner = %d %q", code, out1.String())
	}

	// Signals and resizes travel on the control connection.
	p, err = c.Run(ctx, ProcessSpec{Path: "wait", TTY: &TTYSpec{}}, ProcessIO{Stdout: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.SetTTY(TTYSpec{WindowSize: &WindowSize{Columns: 100, Rows: 30}}); err != nil {
		t.Fatal(err)
	}
	if err := p.Signal(SignalKill); err != nil {
		t.Fatal(err)
	}
	if code, err := p.Wait(); err != nil || code != 137 {
		t.Fatalf("killed = %d, %v", code, err)
	}
	fp := fc.(*fakeContainer).procs[p.ID()]
	fp.mu.Lock()
	resized := fp.resized
	fp.mu.Unlock()
	if len(resized) != 1 || *resized[0].WindowSize != (WindowSize{Columns: 100, Rows: 30}) {
		t.Fatalf("resizes = %+v", resized)
	}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// rawRequest sends one hand-written request and returns the status,
// headers and body, as an upstream client would see them on the wire.
func rawRequest(t *testing.T, addr, method, path, body string) (int, http.Header, string) {
	t.Helper()
	conn, err := net.Dial("unix", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req, _ := http.NewRequest(method, "http://api"+path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if err := req.Write(conn); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(data)
}

func TestWireFormat(t *testing.T) {
	_, client, s := startServer(t, "unix", ServerConfig{})
	ctx := context.Background()
	if _, err := client.Create(ctx, ContainerSpec{Handle: "w"}); err != nil {
		t.Fatal(err)
	}
	notFound := `{"Type":"ContainerNotFoundError","Message":"unknown handle: ghost","Handle":"ghost","ProcessID":"","Binary":""}`
	tests := []struct {
		name, method, path, body string
		status                   int
		want                     string
	}{
		{"ping is {}", "GET", "/ping", "", 200, `{}`},
		{"destroy unknown", "DELETE", "/containers/ghost", "", 404, notFound},
		{"info unknown", "GET", "/containers/ghost/info", "", 404, notFound},
		{"metrics unknown", "GET", "/containers/ghost/metrics", "", 404, notFound},
		{"limits unknown", "GET", "/containers/ghost/limits/memory", "", 404, notFound},
		{"property unknown handle", "GET", "/containers/ghost/properties/x", "", 404, notFound},
		{"stream in unknown", "PUT", "/containers/ghost/files?destination=/", "x", 404, notFound},
		{"run on unknown", "POST", "/containers/ghost/processes", `{"path":"echo"}`, 404, notFound},
		{"attach unknown process", "GET", "/containers/w/processes/nope", "", 404,
			`{"Type":"ProcessNotFoundError","Message":"unknown process: nope","Handle":"","ProcessID":"nope","Binary":""}`},
		{"create malformed", "POST", "/containers", `{"handle":`, 500, ""},
		{"create wrong type", "POST", "/containers", `{"handle":7}`, 500, ""},
		{"stop malformed", "PUT", "/containers/w/stop", `nope`, 500, ""},
		{"netin malformed", "POST", "/containers/w/net/in", `[1]`, 500, ""},
		{"netout malformed", "POST", "/containers/w/net/out", `{"protocol":"tcp"}`, 500, ""},
		{"bulk netout malformed", "POST", "/containers/w/net/out/bulk", `{}`, 500, ""},
		{"set property malformed", "PUT", "/containers/w/properties/k", `"v"`, 500, ""},
		{"grace time malformed", "PUT", "/containers/w/grace_time", `{"grace":1}`, 500, ""},
		{"grace time negative", "PUT", "/containers/w/grace_time", `-1`, 500, ""},
		{"run malformed", "POST", "/containers/w/processes", `{"path":[]}`, 500, ""},
		{"set property", "PUT", "/containers/w/properties/k", `{"value":"v"}`, 200, `{}`},
		{"property", "GET", "/containers/w/properties/k", "", 200, `{"value":"v"}`},
		{"missing property", "GET", "/containers/w/properties/zz", "", 500,
			`{"Type":"","Message":"property does not exist: zz","Handle":"","ProcessID":"","Binary":""}`},
		{"remove missing property", "DELETE", "/containers/w/properties/zz", "", 200, `{}`},
		{"bulk info no handles", "GET", "/containers/bulk_info?handles=", "", 200, `{}`},
		{"bulk info no param", "GET", "/containers/bulk_info", "", 200, `{}`},
		{"bulk info unknown", "GET", "/containers/bulk_info?handles=ghost", "", 200,
			`{"ghost":{"Info":{"State":"","Events":null,"HostIP":"","ContainerIP":"","ContainerIPv6":"","ExternalIP":"","ContainerPath":"","ProcessIDs":null,"Properties":null,"MappedPorts":null},"Err":` + notFound + `}}`},
		{"list", "GET", "/containers", "", 200, `{"Handles":["w"]}`},
		{"list hides by state", "GET", "/containers?garden.state=creating", "", 200, `{"Handles":[]}`},
		{"list all", "GET", "/containers?garden.state=all", "", 200, `{"Handles":["w"]}`},
		{"netin zero omitted", "POST", "/containers/w/net/in", `{"handle":"w","container_port":8080}`, 200, `{"host_port":61001,"container_port":8080}`},
		{"disk limits zero", "GET", "/containers/w/limits/disk", "", 200, `{}`},
		{"capacity", "GET", "/capacity", "", 200, `{"memory_in_bytes":1073741824,"disk_in_bytes":2147483648,"schedulable_disk_in_bytes":2147483648,"max_containers":7}`},
		{"unknown path", "GET", "/nope", "", 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, hdr, body := rawRequest(t, s.Addr(), tt.method, tt.path, tt.body)
			if status != tt.status {
				t.Fatalf("status %d, want %d (body %s)", status, tt.status, body)
			}
			if tt.status == 404 && tt.want == "" {
				return
			}
			if ct := hdr.Get("Content-Type"); ct != "application/json" {
				t.Fatalf("content type %q", ct)
			}
			var w wireError
			if tt.status == 500 {
				if err := json.Unmarshal([]byte(body), &w); err != nil || w.Message == "" {
					t.Fatalf("500 body is not a Garden error: %s", body)
				}
			}
			if tt.want != "" && strings.TrimSpace(body) != tt.want {
				t.Fatalf("body\n got %s\nwant %s", strings.TrimSpace(body), tt.want)
			}
		})
	}
	// Bad requests left the container alone.
	if _, err := client.Lookup(ctx, "w"); err != nil {
		t.Fatalf("container gone after bad requests: %v", err)
	}
}

// TestRunWireFraming checks the hijacked stream byte by byte: a header that
// claims chunked encoding, then raw JSON lines, then raw output bytes.
func TestRunWireFraming(t *testing.T) {
	_, client, s := startServer(t, "unix", ServerConfig{})
	if _, err := client.Create(context.Background(), ContainerSpec{Handle: "f"}); err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("unix", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := `{"id":"x","path":"echo","args":["hi"]}` + "\n"
	io.WriteString(conn, "POST /containers/f/processes HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\nContent-Length: "+itoa(len(body))+"\r\n\r\n"+body)
	br := bufio.NewReader(conn)
	var header []string
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line == "\r\n" {
			break
		}
		header = append(header, strings.TrimSpace(line))
	}
	want := []string{"HTTP/1.1 201 Created", "Content-Type: application/json", "Transfer-Encoding: chunked"}
	if diff := cmp.Diff(want, header); diff != "" {
		t.Fatalf("header (-want +got):\n%s", diff)
	}
	first, _ := br.ReadString('\n')
	if strings.TrimSpace(first) != `{"process_id":"x","stream_id":"`+strings.TrimPrefix(strings.TrimSpace(first), `{"process_id":"x","stream_id":"`) {
		t.Fatalf("first message %q", first)
	}
	var msg ProcessPayload
	json.Unmarshal([]byte(first), &msg)
	out, err := net.Dial("unix", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	io.WriteString(out, "GET /containers/f/processes/x/attaches/"+msg.StreamID+"/stdout HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\n\r\n")
	raw, _ := io.ReadAll(out)
	if !strings.HasSuffix(string(raw), "\r\nTransfer-Encoding: chunked\r\n\r\nhi\n") {
		t.Fatalf("stdout connection bytes %q", raw)
	}
	last, _ := br.ReadString('\n')
	if strings.TrimSpace(last) != `{"process_id":"x","exit_status":0}` {
		t.Fatalf("terminal message %q", last)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("control connection not closed after exit: %v", err)
	}
}

func TestGraceTime(t *testing.T) {
	ctx := context.Background()
	b, client, _ := startServer(t, "unix", ServerConfig{DefaultGraceTime: 50 * time.Millisecond})
	if _, err := client.Create(ctx, ContainerSpec{Handle: "idle"}); err != nil {
		t.Fatal(err)
	}
	keep, err := client.Create(ctx, ContainerSpec{Handle: "busy", GraceTime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "idle container reaped", func() bool { return !b.has("idle") })
	if _, err := client.Lookup(ctx, "idle"); !errors.As(err, new(ContainerNotFoundError)) {
		t.Fatalf("lookup reaped = %v", err)
	}

	// A running, attached process holds the timer however short it is.
	p, err := keep.Run(ctx, ProcessSpec{ID: "w", Path: "wait"}, ProcessIO{Stdout: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	if err := keep.SetGraceTime(ctx, 20*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if b.GraceTime(mustLookup(t, b, "busy")) != 20*time.Millisecond {
		t.Fatal("grace time not stored by the backend")
	}
	deadline := time.Now().Add(200 * time.Millisecond)
	for time.Now().Before(deadline) {
		if !b.has("busy") {
			t.Fatal("container reaped while a process was attached")
		}
		time.Sleep(10 * time.Millisecond)
	}
	p.Signal(SignalKill)
	p.Wait()
	eventually(t, "busy container reaped after its process ended", func() bool { return !b.has("busy") })
}

func mustLookup(t *testing.T, b *fakeBackend, h string) Container {
	t.Helper()
	c, err := b.Lookup(context.Background(), h)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
