package gardenrunc

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/gavel-scheduler/gavel/executor/garden"
	"github.com/gavel-scheduler/gavel/internal/testrootfs"
)

// run runs a shell script in c and returns its exit status and combined
// output.
func run(t testing.TB, c garden.Container, spec garden.ProcessSpec) (int, string) {
	t.Helper()
	var out syncBuffer
	p, err := c.Run(context.Background(), spec, garden.ProcessIO{Stdout: &out, Stderr: &out})
	if err != nil {
		t.Fatalf("run %s %v: %v", spec.Path, spec.Args, err)
	}
	code, err := p.Wait()
	if err != nil {
		t.Fatalf("wait %s: %v", spec.Path, err)
	}
	return code, out.String()
}

func sh(script string) garden.ProcessSpec {
	return garden.ProcessSpec{Path: "sh", Args: []string{"-c", script}}
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

func create(t testing.TB, client garden.Client, spec garden.ContainerSpec) garden.Container {
	t.Helper()
	c, err := client.Create(context.Background(), spec)
	if err != nil {
		t.Fatalf("create %s: %v", spec.Handle, err)
	}
	t.Cleanup(func() {
		err := client.Destroy(context.Background(), c.Handle())
		var nf garden.ContainerNotFoundError
		if err != nil && !errors.As(err, &nf) {
			t.Errorf("destroy %s: %v", c.Handle(), err)
		}
	})
	return c
}

func TestCreateRunEcho(t *testing.T) {
	requireHost(t)
	for _, network := range []string{"unix", "tcp"} {
		t.Run(network, func(t *testing.T) {
			s := startServer(t, network)
			c := create(t, s.client, garden.ContainerSpec{Handle: "echo-" + network})
			var stdout, stderr bytes.Buffer
			p, err := c.Run(context.Background(), sh("echo hello; echo oops >&2; exit 3"), garden.ProcessIO{Stdout: &stdout, Stderr: &stderr})
			if err != nil {
				t.Fatal(err)
			}
			code, err := p.Wait()
			if err != nil || code != 3 {
				t.Fatalf("exit = %d, %v (stderr %q)", code, err, stderr.String())
			}
			if stdout.String() != "hello\n" || stderr.String() != "oops\n" {
				t.Fatalf("stdout %q stderr %q", stdout.String(), stderr.String())
			}
			code, out := run(t, c, sh("cat /proc/1/comm; hostname; ip -4 addr show eth0 | grep inet; cat /etc/hosts"))
			if code != 0 {
				t.Fatalf("exit %d: %s", code, out)
			}
			info, err := c.Info(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if len(lines) < 3 || lines[0] != "garden-init" || lines[1] != c.Handle() || !strings.Contains(lines[2], info.ContainerIP+"/") {
				t.Fatalf("inside the container: %q (info %+v)", lines, info)
			}
			if !strings.Contains(out, info.ContainerIP+" "+c.Handle()) {
				t.Fatalf("/etc/hosts lacks the container: %s", out)
			}
			// Orphans land on garden-init, which reaps them: no zombie
			// stays once the orphan has exited.
			if code, out := run(t, c, sh("(sleep 0.3 </dev/null >/dev/null 2>&1 &); cat /etc/resolv.conf >/dev/null")); code != 0 {
				t.Fatalf("orphan maker: %d %s", code, out)
			}
			eventually(t, 10*time.Second, "orphan reaped", func() bool {
				_, out := run(t, c, sh("ps -o stat,comm | grep -c sleep; true"))
				return strings.TrimSpace(out) == "0"
			})
			if _, err := c.Run(context.Background(), garden.ProcessSpec{Path: "no-such-binary"}, garden.ProcessIO{}); !errors.As(err, new(garden.ExecutableNotFoundError)) {
				t.Fatalf("missing executable = %v", err)
			}
		})
	}
}

func TestAttachSignalTTYUser(t *testing.T) { bothNetworks(t, testAttachSignalTTYUser) }

func testAttachSignalTTYUser(t *testing.T, network string) {
	requireHost(t)
	ctx := context.Background()
	s := startServer(t, network)
	c := create(t, s.client, garden.ContainerSpec{Handle: "attach"})

	var out1 syncBuffer
	p, err := c.Run(ctx, garden.ProcessSpec{ID: "counter", Path: "sh", Args: []string{"-c", "read go; for i in 1 2 3; do echo $i; done; exit 12"}},
		garden.ProcessIO{Stdin: strings.NewReader("go\n"), Stdout: &out1})
	if err != nil {
		t.Fatal(err)
	}
	_ = p
	// A second client attaches by ID; it may be late for some output but
	// must see the exit status.
	second := garden.NewClient(network, s.garden.Addr())
	sc, err := second.Lookup(ctx, "attach")
	if err != nil {
		t.Fatal(err)
	}
	ap, err := sc.Attach(ctx, "counter", garden.ProcessIO{Stdout: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	if code, err := ap.Wait(); err != nil || code != 12 {
		t.Fatalf("attached wait = %d, %v", code, err)
	}
	if code, _ := p.Wait(); code != 12 || out1.String() != "1\n2\n3\n" {
		t.Fatalf("run wait = %d, output %q", code, out1.String())
	}
	if _, err := sc.Attach(ctx, "ghost", garden.ProcessIO{}); !errors.As(err, new(garden.ProcessNotFoundError)) {
		t.Fatalf("attach unknown = %v", err)
	}

	// An attacher present from the start sees all output of a long
	// process, and signals work from either client.
	var runOut, attOut syncBuffer
	p, err = c.Run(ctx, garden.ProcessSpec{ID: "sleeper", Path: "sh", Args: []string{"-c", "read x; echo started; exec sleep 1000"}}, garden.ProcessIO{Stdin: strings.NewReader("x\n"), Stdout: &runOut})
	if err != nil {
		t.Fatal(err)
	}
	ap, err = sc.Attach(ctx, "sleeper", garden.ProcessIO{Stdout: &attOut})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "process started", func() bool { return strings.Contains(runOut.String(), "started") })
	if err := ap.Signal(garden.SignalTerminate); err != nil {
		t.Fatal(err)
	}
	if code, err := p.Wait(); err != nil || code != 143 {
		t.Fatalf("terminated = %d, %v", code, err)
	}
	if code, _ := ap.Wait(); code != 143 {
		t.Fatalf("attached terminated = %d", code)
	}
	p, err = c.Run(ctx, garden.ProcessSpec{Path: "sleep", Args: []string{"1000"}}, garden.ProcessIO{})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Signal(garden.SignalKill); err != nil {
		t.Fatal(err)
	}
	if code, _ := p.Wait(); code != 137 {
		t.Fatalf("killed = %d", code)
	}

	// TTY: default 80x24, resize, \r\n line endings.
	var ttyOut syncBuffer
	stdinR, stdinW := io.Pipe()
	p, err = c.Run(ctx, garden.ProcessSpec{Path: "sh", Args: []string{"-c", "stty size; read x; stty size"}, TTY: &garden.TTYSpec{}},
		garden.ProcessIO{Stdin: stdinR, Stdout: &ttyOut})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "first stty", func() bool { return strings.Contains(ttyOut.String(), "24 80\r\n") })
	if err := p.SetTTY(garden.TTYSpec{WindowSize: &garden.WindowSize{Columns: 100, Rows: 30}}); err != nil {
		t.Fatal(err)
	}
	// Resizes are asynchronous; poll the size until it shows.
	eventually(t, 10*time.Second, "resize applied", func() bool {
		code, out := run(t, c, sh("stty -F /dev/pts/0 size 2>/dev/null || true"))
		return code == 0 && strings.Contains(out, "30 100")
	})
	io.WriteString(stdinW, "x\n")
	if code, err := p.Wait(); err != nil || code != 0 {
		t.Fatalf("tty process = %d, %v: %q", code, err, ttyOut.String())
	}
	if !strings.Contains(ttyOut.String(), "30 100\r\n") {
		t.Fatalf("tty output %q", ttyOut.String())
	}
	stdinW.Close()

	// Users, env, dir.
	code, out := run(t, c, garden.ProcessSpec{Path: "sh", Args: []string{"-c", "id -u; id -g; pwd; echo $USER $FOO; grep CapEff /proc/self/status"}, User: "vcap", Env: []string{"FOO=bar"}})
	if code != 0 || !strings.HasPrefix(out, "1000\n1000\n/home/vcap\nvcap bar\n") || !strings.Contains(out, "0000000000000000") {
		t.Fatalf("as vcap: %d %q", code, out)
	}
	code, out = run(t, c, garden.ProcessSpec{Path: "pwd", User: "1000:1000", Dir: "/tmp/newdir"})
	if code != 0 || out != "/tmp/newdir\n" {
		t.Fatalf("uid:gid with dir: %d %q", code, out)
	}
	if _, err := c.Run(ctx, garden.ProcessSpec{Path: "id", User: "nosuchuser"}, garden.ProcessIO{}); err == nil || !strings.Contains(err.Error(), "unable to find user nosuchuser") {
		t.Fatalf("unknown user = %v", err)
	}
}

func TestSecurityDefaults(t *testing.T) {
	requireHost(t)
	s := startServer(t, "unix")
	c := create(t, s.client, garden.ContainerSpec{Handle: "secure"})
	code, out := run(t, c, sh(`grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status
touch /sys/x 2>/dev/null && echo sys-writable
cat /proc/kcore >/dev/null 2>&1 && echo kcore-readable
mount -t tmpfs none /mnt 2>/dev/null && echo mounted
unshare -n true 2>/dev/null && echo unshared
ls `+filepath.Dir(s.garden.Addr())+` 2>/dev/null && echo socket-dir-visible
ls `+s.backend.cfg.Depot+` 2>/dev/null && echo depot-visible
for f in /proc/$$/fd/*; do readlink $f; done | grep -q socket: && echo socket-inherited
true`))
	want := []string{"CapBnd:\t00000000a80425fb", "CapEff:\t00000000a80425fb", "NoNewPrivs:\t1", "Seccomp:\t2"}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("missing %q in:\n%s", w, out)
		}
	}
	for _, bad := range []string{"sys-writable", "kcore-readable", "mounted", "unshared", "socket-dir-visible", "depot-visible", "socket-inherited"} {
		if strings.Contains(out, bad) {
			t.Errorf("container could: %s\n%s", bad, out)
		}
	}
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
}

func tarStream(t testing.TB, files map[string]string) io.Reader {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, body := range files {
		if strings.HasSuffix(name, "/") {
			tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: 0o755})
			continue
		}
		tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))})
		tw.Write([]byte(body))
	}
	tw.Close()
	return &buf
}

func TestStreamInOut(t *testing.T) { bothNetworks(t, testStreamInOut) }

func testStreamInOut(t *testing.T, network string) {
	requireHost(t)
	ctx := context.Background()
	s := startServer(t, network)
	c := create(t, s.client, garden.ContainerSpec{Handle: "streams"})
	other := create(t, s.client, garden.ContainerSpec{Handle: "bystander"})

	if err := c.StreamIn(ctx, garden.StreamInSpec{Path: "/data/in", TarStream: tarStream(t, map[string]string{"d/": "", "d/a.txt": "alpha", "b.txt": "beta"})}); err != nil {
		t.Fatal(err)
	}
	code, out := run(t, c, sh("cat /data/in/d/a.txt /data/in/b.txt"))
	if code != 0 || out != "alphabeta" {
		t.Fatalf("streamed files: %d %q", code, out)
	}
	// As a user: relative to home, owned by the user; refused where the
	// user may not write.
	if err := c.StreamIn(ctx, garden.StreamInSpec{Path: "up", User: "vcap", TarStream: tarStream(t, map[string]string{"f": "x"})}); err != nil {
		t.Fatal(err)
	}
	if code, out := run(t, c, sh("stat -c %u /home/vcap/up/f")); code != 0 || out != "1000\n" {
		t.Fatalf("owner of user stream-in: %d %q", code, out)
	}
	err := c.StreamIn(ctx, garden.StreamInSpec{Path: "/etc", User: "vcap", TarStream: tarStream(t, map[string]string{"evil": "x"})})
	if err == nil || !strings.Contains(err.Error(), "error streaming in") || !strings.Contains(err.Error(), "Permission denied") {
		t.Fatalf("stream-in as vcap to /etc = %v", err)
	}

	// Path traversal is refused and touches neither host nor neighbours.
	for _, name := range []string{"../../../../escape", "/abs-escape"} {
		err := c.StreamIn(ctx, garden.StreamInSpec{Path: "/tmp", TarStream: tarStream(t, map[string]string{name: "x"})})
		if err == nil || !strings.Contains(err.Error(), "path traversal") {
			t.Fatalf("traversal %q = %v", name, err)
		}
	}
	// A symlink to / inside the container resolves to the container's
	// root, never the host's.
	if code, out := run(t, c, sh("ln -s / /tmp/rootlink && ln -s /../../.. /tmp/uplink")); code != 0 {
		t.Fatal(out)
	}
	_ = c.StreamIn(ctx, garden.StreamInSpec{Path: "/tmp/uplink/tmp", TarStream: tarStream(t, map[string]string{"marker": "x"})})
	if _, err := os.Stat("/tmp/marker"); err == nil {
		t.Fatal("stream-in through a symlink wrote on the host")
	}
	if code, out := run(t, other, sh("ls /data 2>&1; true")); !strings.Contains(out, "No such file") || code != 0 {
		t.Fatalf("bystander sees: %q", out)
	}

	// Stream out: both layouts.
	entries := func(path string) []string {
		rc, err := c.StreamOut(ctx, garden.StreamOutSpec{Path: path})
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		var names []string
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			names = append(names, h.Name)
			if h.Name == "d/a.txt" || h.Name == "./d/a.txt" {
				body, _ := io.ReadAll(tr)
				if string(body) != "alpha" {
					t.Fatalf("streamed out %q", body)
				}
			}
		}
		return names
	}
	if got := strings.Join(entries("/data/in"), " "); !strings.Contains(got, "in/") || !strings.Contains(got, "in/d/a.txt") {
		t.Fatalf("stream out /data/in: %s", got)
	}
	if got := strings.Join(entries("/data/in/"), " "); !strings.Contains(got, "./") || !strings.Contains(got, "./d/a.txt") {
		t.Fatalf("stream out /data/in/: %s", got)
	}
	if _, err := c.StreamOut(ctx, garden.StreamOutSpec{Path: "/nope"}); err == nil {
		t.Fatal("stream out of a missing path succeeded")
	}
}

func TestNetIn(t *testing.T) { bothNetworks(t, testNetIn) }

func testNetIn(t *testing.T, network string) {
	requireHost(t)
	ctx := context.Background()
	s := startServer(t, network)
	c := create(t, s.client, garden.ContainerSpec{Handle: "netin", NetIn: []garden.NetIn{{HostPort: 0, ContainerPort: 8080}}})
	p, err := c.Run(ctx, sh("while true; do echo hello-from-container | nc -l -p 8080; done"), garden.ProcessIO{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Signal(garden.SignalKill)
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(info.MappedPorts) != 1 || info.MappedPorts[0].ContainerPort != 8080 || info.ExternalIP != "127.0.0.1" {
		t.Fatalf("mapped ports %+v external %s", info.MappedPorts, info.ExternalIP)
	}
	hostPort := info.MappedPorts[0].HostPort
	read := func(addr string) string {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return ""
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(2 * time.Second))
		data, _ := io.ReadAll(conn)
		return string(data)
	}
	for _, addr := range []string{
		net.JoinHostPort("127.0.0.1", fmt.Sprint(hostPort)),
		net.JoinHostPort(info.ContainerIP, "8080"),
	} {
		eventually(t, 10*time.Second, "reach "+addr, func() bool { return read(addr) == "hello-from-container\n" })
	}
	// A second mapping with an explicit host port.
	hp, cp, err := c.NetIn(ctx, uint32(testPortStart+99), 0)
	if err != nil || hp != uint32(testPortStart+99) || cp != hp {
		t.Fatalf("netin explicit = %d %d %v", hp, cp, err)
	}
	if _, _, err := c.NetIn(ctx, hp, 0); err == nil {
		t.Fatal("mapped the same host port twice")
	}
	if err := c.NetOut(ctx, garden.NetOutRule{Protocol: garden.ProtocolTCP, Networks: []garden.IPRange{garden.IPRangeFromIP(net.ParseIP("127.0.0.1"))}, Ports: []garden.PortRange{garden.PortRangeFromPort(80)}}); err != nil {
		t.Fatal(err)
	}
	if err := c.NetOut(ctx, garden.NetOutRule{Protocol: garden.ProtocolICMP, Ports: []garden.PortRange{garden.PortRangeFromPort(80)}}); err == nil {
		t.Fatal("icmp rule with ports accepted")
	}
	props, _ := c.Properties(ctx)
	if props[garden.PropertyContainerIP] != info.ContainerIP || !strings.Contains(props[garden.PropertyMappedPorts], "8080") {
		t.Fatalf("network properties %v", props)
	}
}

func TestLimits(t *testing.T) { bothNetworks(t, testLimits) }

func testLimits(t *testing.T, network string) {
	requireHost(t)
	ctx := context.Background()
	s := startServer(t, network)
	c := create(t, s.client, garden.ContainerSpec{Handle: "limited", Limits: garden.Limits{
		Memory: garden.MemoryLimits{LimitInBytes: 32 << 20},
		Pid:    garden.PidLimits{Max: 20},
		CPU:    garden.CPULimits{Weight: 512},
	}})
	if l, _ := c.CurrentMemoryLimits(ctx); l.LimitInBytes != 32<<20 {
		t.Fatalf("memory limit %+v", l)
	}
	if l, _ := c.CurrentCPULimits(ctx); l.LimitInShares != 512 {
		t.Fatalf("cpu limit %+v", l)
	}
	// Pids: forks beyond the limit fail.
	code, out := run(t, c, sh("for i in $(seq 40); do sleep 30 </dev/null >/dev/null 2>&1 & done 2>&1; echo done"))
	if !strings.Contains(out, "fork") && !strings.Contains(out, "Resource temporarily unavailable") {
		t.Fatalf("no fork failure under a pid limit of 20 (exit %d): %s", code, out)
	}
	m, err := c.Metrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if m.PidStat.Max != 20 || m.PidStat.Current == 0 || m.CPUStat.Usage == 0 || m.MemoryStat.TotalUsageTowardLimit == 0 || m.Age <= 0 {
		t.Fatalf("metrics %+v", m)
	}
	if err := c.Stop(ctx, true); err != nil {
		t.Fatal(err)
	}
	if info, _ := c.Info(ctx); info.State != garden.StateStopped {
		t.Fatalf("state after stop %q", info.State)
	}
	if m, _ := c.Metrics(ctx); m.PidStat.Current != 1 {
		t.Fatalf("processes after stop: %d", m.PidStat.Current)
	}
	// Stop(false): TERM first; a process that traps it exits its way.
	trapper, err := c.Run(ctx, sh("trap 'exit 42' TERM; echo ready; while true; do sleep 0.05; done"), garden.ProcessIO{Stdout: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "trapper running", func() bool {
		m, _ := c.Metrics(ctx)
		return m.PidStat.Current >= 3
	})
	if err := c.Stop(ctx, false); err != nil {
		t.Fatal(err)
	}
	if code, _ := trapper.Wait(); code != 42 {
		t.Fatalf("TERM-trapping process exited %d, want 42", code)
	}
	// Memory: filling a tmpfs past the limit is OOM-killed and reported.
	code, out = run(t, c, sh("dd if=/dev/zero of=/dev/shm/fill bs=1M count=64"))
	if code == 0 {
		t.Fatalf("wrote 64 MiB under a 32 MiB limit: %s", out)
	}
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Events) == 0 || info.Events[0] != garden.EventOutOfMemory {
		t.Fatalf("events %v after OOM (exit %d)", info.Events, code)
	}
	// Disk limit: the upper layer is a tmpfs of the limit's size.
	d := create(t, s.client, garden.ContainerSpec{Handle: "disk", Limits: garden.Limits{Disk: garden.DiskLimits{ByteHard: 8 << 20}}})
	if code, out := run(t, d, sh("dd if=/dev/zero of=/big bs=1M count=16")); code == 0 || !strings.Contains(out, "No space left") {
		t.Fatalf("wrote 16 MiB under an 8 MiB disk limit: %d %s", code, out)
	}
	if dl, _ := d.CurrentDiskLimits(ctx); dl.ByteHard != 8<<20 {
		t.Fatalf("disk limits %+v", dl)
	}
}

func TestPropertiesAndGraceTime(t *testing.T) { bothNetworks(t, testPropertiesAndGraceTime) }

func testPropertiesAndGraceTime(t *testing.T, network string) {
	requireHost(t)
	ctx := context.Background()
	s := startServer(t, network)
	create(t, s.client, garden.ContainerSpec{Handle: "p1", Properties: garden.Properties{"app": "a", "tier": "web"}})
	create(t, s.client, garden.ContainerSpec{Handle: "p2", Properties: garden.Properties{"app": "a", "tier": "worker"}})
	create(t, s.client, garden.ContainerSpec{Handle: "p3", Properties: garden.Properties{"app": "b"}})
	handles := func(filter garden.Properties) string {
		list, err := s.client.Containers(ctx, filter)
		if err != nil {
			t.Fatal(err)
		}
		var hs []string
		for _, c := range list {
			hs = append(hs, c.Handle())
		}
		sortStrings(hs)
		return strings.Join(hs, ",")
	}
	for _, tt := range []struct {
		filter garden.Properties
		want   string
	}{
		{garden.Properties{"app": "a"}, "p1,p2"},
		{garden.Properties{"app": "a", "tier": "web"}, "p1"},
		{garden.Properties{"app": "c"}, ""},
		{nil, "p1,p2,p3"},
	} {
		if got := handles(tt.filter); got != tt.want {
			t.Errorf("filter %v = %q, want %q", tt.filter, got, tt.want)
		}
	}
	infos, err := s.client.BulkInfo(ctx, []string{"p1", "p2", "ghost"})
	if err != nil || len(infos) != 3 || infos["p1"].Err != nil || infos["p1"].Info.Properties["tier"] != "web" || infos["p2"].Info.ContainerIP == "" {
		t.Fatalf("bulk info %+v, %v", infos, err)
	}
	if !errors.As(infos["ghost"].Err, new(garden.ContainerNotFoundError)) {
		t.Fatalf("bulk info of an unknown handle: %v", infos["ghost"].Err)
	}
	metrics, err := s.client.BulkMetrics(ctx, []string{"p1", "ghost"})
	if err != nil || metrics["p1"].Err != nil || metrics["p1"].Metrics.PidStat.Current != 1 || metrics["ghost"].Err == nil {
		t.Fatalf("bulk metrics %+v, %v", metrics, err)
	}
	capacity, err := s.client.Capacity(ctx)
	if err != nil || capacity.MemoryInBytes == 0 || capacity.DiskInBytes == 0 || capacity.SchedulableDiskInBytes == 0 || capacity.MaxContainers != 509 {
		t.Fatalf("capacity %+v, %v", capacity, err)
	}
	p3, _ := s.client.Lookup(ctx, "p3")
	if err := p3.SetProperty(ctx, "tier", "web"); err != nil {
		t.Fatal(err)
	}
	if got := handles(garden.Properties{"tier": "web"}); got != "p1,p3" {
		t.Fatalf("after set property: %q", got)
	}
	if err := p3.RemoveProperty(ctx, "tier"); err != nil {
		t.Fatal(err)
	}
	if _, err := p3.Property(ctx, "tier"); err == nil || err.Error() != "property does not exist: tier" {
		t.Fatalf("removed property = %v", err)
	}

	// Grace time: an idle container is destroyed, and with it its host
	// resources.
	idle, err := s.client.Create(ctx, garden.ContainerSpec{Handle: "idle", GraceTime: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	_ = idle
	eventually(t, 20*time.Second, "idle container reaped", func() bool {
		_, err := s.client.Lookup(ctx, "idle")
		return errors.As(err, new(garden.ContainerNotFoundError))
	})
	if _, err := os.Stat(filepath.Join(s.backend.cfg.Depot, "idle")); err == nil {
		t.Fatal("reaped container's depot directory remains")
	}
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

func TestRestoreAfterServerRestart(t *testing.T) { bothNetworks(t, testRestoreAfterServerRestart) }

func testRestoreAfterServerRestart(t *testing.T, network string) {
	requireHost(t)
	ctx := context.Background()
	s := startServer(t, network)
	c, err := s.client.Create(ctx, garden.ContainerSpec{Handle: "survivor", Properties: garden.Properties{"keep": "me"}, NetIn: []garden.NetIn{{ContainerPort: 7070}}})
	if err != nil {
		t.Fatal(err)
	}
	if code, out := run(t, c, sh("echo state > /root/file")); code != 0 {
		t.Fatal(out)
	}
	if _, err := c.Run(ctx, garden.ProcessSpec{Path: "sh", Args: []string{"-c", "while true; do echo restored | nc -l -p 7070; done"}}, garden.ProcessIO{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Run(ctx, garden.ProcessSpec{ID: "talker", Path: "sh", Args: []string{"-c", "i=0; while true; do echo line-$i; i=$((i+1)); sleep 0.05; done"}}, garden.ProcessIO{Stdout: io.Discard}); err != nil {
		t.Fatal(err)
	}
	before, _ := c.Info(ctx)
	s.stop()

	s2 := startServer(t, network)
	c2, err := s2.client.Lookup(ctx, "survivor")
	if err != nil {
		t.Fatalf("lookup after restart: %v", err)
	}
	t.Cleanup(func() { s2.client.Destroy(ctx, "survivor") })
	after, err := c2.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after.ContainerIP != before.ContainerIP || after.Properties["keep"] != "me" || len(after.MappedPorts) != 1 {
		t.Fatalf("info after restart %+v, before %+v", after, before)
	}
	if code, out := run(t, c2, sh("cat /root/file")); code != 0 || out != "state\n" {
		t.Fatalf("file after restart: %d %q", code, out)
	}
	addr := net.JoinHostPort("127.0.0.1", fmt.Sprint(after.MappedPorts[0].HostPort))
	eventually(t, 10*time.Second, "net in after restart", func() bool {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return false
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(2 * time.Second))
		data, _ := io.ReadAll(conn)
		return string(data) == "restored\n"
	})
	// The process started before the restart kept running (its output
	// waited in its FIFO) and can be attached again; its exit status is
	// unknown to the new server, which says so.
	var talk syncBuffer
	tp, err := c2.Attach(ctx, "talker", garden.ProcessIO{Stdout: &talk})
	if err != nil {
		t.Fatalf("attach after restart: %v", err)
	}
	eventually(t, 10*time.Second, "output after restart", func() bool { return strings.Count(talk.String(), "line-") >= 3 })
	if err := tp.Signal(garden.SignalKill); err != nil {
		t.Fatal(err)
	}
	if _, err := tp.Wait(); err == nil || !strings.Contains(err.Error(), "exit status unknown") {
		t.Fatalf("wait for a restored process = %v", err)
	}
	// New containers do not collide with the restored one.
	n := create(t, s2.client, garden.ContainerSpec{Handle: "newcomer"})
	if ni, _ := n.Info(ctx); ni.ContainerIP == after.ContainerIP {
		t.Fatal("new container took the restored one's address")
	}
}

func TestImages(t *testing.T) {
	requireHost(t)
	layoutDir := filepath.Join(testDir, "images", "busybox", "latest")
	tarPath := filepath.Join(testDir, "busybox-image.tar")
	if _, err := os.Stat(layoutDir); err != nil {
		img, err := testrootfs.OCILayout(testRootfs, layoutDir, []string{"IMAGE_VAR=from-image", "PATH=/bin:/usr/bin"})
		if err != nil {
			t.Fatal(err)
		}
		if err := tarball.WriteToFile(tarPath, name.MustParseReference("gavel/busybox:test").(name.Tag), img); err != nil {
			t.Fatal(err)
		}
	}
	s := startServer(t, "unix")
	for _, uri := range []string{"oci://" + layoutDir, "oci://" + tarPath, "docker:///busybox", "docker:///busybox:latest", "preloaded:busybox", "raw://" + testRootfs} {
		c := create(t, s.client, garden.ContainerSpec{Image: garden.ImageRef{URI: uri}, Env: []string{"SPEC_VAR=from-spec"}})
		code, out := run(t, c, sh("echo $IMAGE_VAR $SPEC_VAR; touch /bin/written"))
		wantImageVar := strings.HasPrefix(uri, "oci:") || strings.HasPrefix(uri, "docker:")
		if code != 0 || strings.Contains(out, "from-image") != wantImageVar || !strings.Contains(out, "from-spec") {
			t.Errorf("%s: %d %q", uri, code, out)
		}
	}
	// Copy-on-write: writes never reach the shared image.
	if _, err := os.Stat(filepath.Join(testRootfs, "bin/written")); err == nil {
		t.Fatal("a container wrote into the shared rootfs")
	}
	for _, uri := range []string{"docker:///nope", "preloaded:nope", "raw:///does/not/exist", "http://example/x", "oci://relative"} {
		if _, err := s.client.Create(context.Background(), garden.ContainerSpec{Image: garden.ImageRef{URI: uri}}); err == nil {
			t.Errorf("create with %s succeeded", uri)
		}
	}
}

// TestNetworkIsolation: a container reaches neither the Garden API (TCP on
// 127.0.0.1) nor the host's other services, nor another container, while
// the host reaches the container.
func TestNetworkIsolation(t *testing.T) {
	requireHost(t)
	ctx := context.Background()
	s := startServer(t, "tcp")
	a := create(t, s.client, garden.ContainerSpec{Handle: "iso-a"})
	b := create(t, s.client, garden.ContainerSpec{Handle: "iso-b"})
	p, err := b.Run(ctx, sh("while true; do echo b-answers | nc -l -p 9090; done"), garden.ProcessIO{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Signal(garden.SignalKill)
	bInfo, _ := b.Info(ctx)
	// The host reaches b, so b listens.
	eventually(t, 10*time.Second, "host reaches b", func() bool {
		conn, err := net.DialTimeout("tcp", net.JoinHostPort(bInfo.ContainerIP, "9090"), time.Second)
		if err != nil {
			return false
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(2 * time.Second))
		data, _ := io.ReadAll(conn)
		return string(data) == "b-answers\n"
	})
	_, port, _ := net.SplitHostPort(s.garden.Addr())
	gw := s.backend.net.pool.gateway().String()
	aInfo, _ := a.Info(ctx)
	// Positive control: the same nc reaches a listener on a's own address.
	script := fmt.Sprintf(`(echo a-answers | nc -l -p 9191 &) ; until netstat -ltn | grep -q :9191; do :; done
nc -w 2 %s 9191 </dev/null | grep -q a-answers && echo self-ok
nc -w 2 %s 9090 </dev/null | grep -q b-answers && echo reached-b
echo | nc -w 2 127.0.0.1 %s && echo reached-api-loopback
echo | nc -w 2 %s %s && echo reached-api-gateway
true`, aInfo.ContainerIP, bInfo.ContainerIP, port, gw, port)
	code, out := run(t, a, sh(script))
	if code != 0 || strings.Contains(out, "reached") || !strings.Contains(out, "self-ok") {
		t.Fatalf("container a reached what it must not (exit %d):\n%s", code, out)
	}
}
