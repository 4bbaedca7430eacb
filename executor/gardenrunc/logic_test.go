package gardenrunc

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/gavel-scheduler/gavel/executor/garden"
)

func baseParams() bundleParams {
	return bundleParams{
		Handle: "h", RootFS: "/depot/h/rootfs", InitPath: "/depot/.bin/garden-init",
		HostsPath: "/depot/h/hosts", ResolvPath: "/depot/h/resolv.conf", CgroupsPath: "gavel-garden/gvl-h",
	}
}

func mountDests(s *specs.Spec) []string {
	var out []string
	for _, m := range s.Mounts {
		out = append(out, m.Destination)
	}
	return out
}

func TestBuildSpec(t *testing.T) {
	u64 := func(v uint64) *uint64 { return &v }
	i64 := func(v int64) *int64 { return &v }
	tests := []struct {
		name  string
		p     func(*bundleParams)
		check func(t *testing.T, s *specs.Spec)
	}{
		{"unprivileged defaults", func(*bundleParams) {}, func(t *testing.T, s *specs.Spec) {
			if s.Hostname != "h" || s.Process.Args[0] != "/tmp/garden-init" || !s.Process.NoNewPrivileges {
				t.Fatalf("process %+v hostname %q", s.Process, s.Hostname)
			}
			if !slices.Equal(s.Process.Capabilities.Bounding, dockerDefaultCaps) || slices.Contains(s.Process.Capabilities.Effective, "CAP_SYS_ADMIN") {
				t.Fatalf("caps %+v", s.Process.Capabilities)
			}
			if s.Linux.Seccomp == nil || s.Linux.Seccomp.DefaultAction != specs.ActAllow || len(s.Linux.MaskedPaths) == 0 || !slices.Contains(s.Linux.ReadonlyPaths, "/proc/sys") {
				t.Fatal("missing seccomp, masked or read-only paths")
			}
			for _, ns := range s.Linux.Namespaces {
				if ns.Type == specs.UserNamespace {
					t.Fatal("user namespace")
				}
			}
			if len(s.Linux.Namespaces) != 5 {
				t.Fatalf("namespaces %v", s.Linux.Namespaces)
			}
			want := []string{"/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/tmp/garden-init", "/etc/hosts", "/etc/resolv.conf", "/sys/fs/cgroup"}
			if diff := cmp.Diff(want, mountDests(s)); diff != "" {
				t.Fatal(diff)
			}
			for _, m := range s.Mounts {
				if m.Destination == "/sys" && !slices.Contains(m.Options, "ro") {
					t.Fatal("/sys writable")
				}
			}
			if len(s.Linux.Resources.Devices) != 1 || s.Linux.Resources.Devices[0].Allow {
				t.Fatal("no default-deny device rule")
			}
			if s.Linux.Resources.Memory != nil || s.Linux.Resources.CPU != nil || s.Linux.Resources.Pids != nil {
				t.Fatal("limits without a spec")
			}
		}},
		{"limits", func(p *bundleParams) {
			p.Limits = garden.Limits{Memory: garden.MemoryLimits{LimitInBytes: 64 << 20}, CPU: garden.CPULimits{Weight: 300, LimitInShares: 100}, Pid: garden.PidLimits{Max: 9}}
		}, func(t *testing.T, s *specs.Spec) {
			r := s.Linux.Resources
			if *r.Memory.Limit != 64<<20 || r.Memory.Swap != nil || *r.CPU.Shares != 300 || r.Pids.Limit != 9 {
				t.Fatalf("resources %+v", r)
			}
		}},
		{"limits with swap accounting", func(p *bundleParams) {
			p.Limits.Memory.LimitInBytes = 32 << 20
			p.SwapAccounting = true
		}, func(t *testing.T, s *specs.Spec) {
			if !cmp.Equal(s.Linux.Resources.Memory.Swap, i64(32<<20)) {
				t.Fatal("swap not capped at the memory limit")
			}
		}},
		{"shares only", func(p *bundleParams) { p.Limits.CPU.LimitInShares = 100 }, func(t *testing.T, s *specs.Spec) {
			if !cmp.Equal(s.Linux.Resources.CPU.Shares, u64(100)) {
				t.Fatal("shares")
			}
		}},
		{"privileged", func(p *bundleParams) { p.Privileged = true }, func(t *testing.T, s *specs.Spec) {
			if s.Linux.Seccomp != nil || len(s.Linux.MaskedPaths) != 0 || s.Process.NoNewPrivileges || !slices.Contains(s.Process.Capabilities.Effective, "CAP_SYS_ADMIN") {
				t.Fatal("privileged container still confined")
			}
		}},
		{"bind mounts", func(p *bundleParams) {
			p.BindMounts = []garden.BindMount{{SrcPath: "/a", DstPath: "/ro"}, {SrcPath: "/b", DstPath: "/rw", Mode: garden.BindMountModeRW}}
		}, func(t *testing.T, s *specs.Spec) {
			n := len(s.Mounts)
			ro, rw := s.Mounts[n-2], s.Mounts[n-1]
			if ro.Destination != "/ro" || !slices.Contains(ro.Options, "ro") || rw.Destination != "/rw" || !slices.Contains(rw.Options, "rw") {
				t.Fatalf("bind mounts %+v %+v", ro, rw)
			}
		}},
		{"long handle", func(p *bundleParams) { p.Handle = strings.Repeat("a", 30) + strings.Repeat("b", 49) }, func(t *testing.T, s *specs.Spec) {
			if s.Hostname != strings.Repeat("b", 49) {
				t.Fatalf("hostname %q", s.Hostname)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := baseParams()
			tt.p(&p)
			tt.check(t, buildSpec(p))
		})
	}
}

func TestValidateLimits(t *testing.T) {
	tests := []struct {
		name   string
		limits garden.Limits
		err    string
	}{
		{"none", garden.Limits{}, ""},
		{"usual", garden.Limits{Memory: garden.MemoryLimits{LimitInBytes: 1 << 30}, CPU: garden.CPULimits{Weight: 1024}, Pid: garden.PidLimits{Max: 1024}, Disk: garden.DiskLimits{ByteHard: 1 << 30}}, ""},
		{"tiny memory", garden.Limits{Memory: garden.MemoryLimits{LimitInBytes: 4096}}, "memory limit"},
		{"huge memory", garden.Limits{Memory: garden.MemoryLimits{LimitInBytes: 1 << 63}}, "too large"},
		{"shares 1", garden.Limits{CPU: garden.CPULimits{LimitInShares: 1}}, "cpu shares"},
		{"shares huge", garden.Limits{CPU: garden.CPULimits{Weight: 1 << 20}}, "cpu shares"},
		{"pids huge", garden.Limits{Pid: garden.PidLimits{Max: 1 << 30}}, "pid limit"},
		{"soft over hard", garden.Limits{Disk: garden.DiskLimits{ByteSoft: 5 << 20, ByteHard: 2 << 20}}, "soft limit"},
		{"inode soft over hard", garden.Limits{Disk: garden.DiskLimits{InodeSoft: 5, InodeHard: 2}}, "inode soft"},
		{"tiny disk", garden.Limits{Disk: garden.DiskLimits{ByteHard: 10}}, "disk limit"},
		{"bad scope", garden.Limits{Disk: garden.DiskLimits{Scope: 2}}, "scope"},
	}
	for _, tt := range tests {
		err := validateLimits(tt.limits)
		if (tt.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.err)
		}
	}
}

func TestNetOutRules(t *testing.T) {
	code := garden.ICMPCode(3)
	tests := []struct {
		name string
		rule garden.NetOutRule
		want []string
		err  string
	}{
		{"all anywhere", garden.NetOutRule{}, []string{"-p all -j ACCEPT"}, ""},
		{"tcp range and ports", garden.NetOutRule{
			Protocol: garden.ProtocolTCP,
			Networks: []garden.IPRange{{Start: net.ParseIP("10.0.0.1"), End: net.ParseIP("10.0.0.9")}, garden.IPRangeFromIP(net.ParseIP("8.8.8.8"))},
			Ports:    []garden.PortRange{{Start: 80, End: 90}, garden.PortRangeFromPort(443)},
		}, []string{
			"-p tcp -m iprange --dst-range 10.0.0.1-10.0.0.9 -m tcp --dport 80:90 -j ACCEPT",
			"-p tcp -m iprange --dst-range 10.0.0.1-10.0.0.9 -m tcp --dport 443:443 -j ACCEPT",
			"-p tcp -m iprange --dst-range 8.8.8.8-8.8.8.8 -m tcp --dport 80:90 -j ACCEPT",
			"-p tcp -m iprange --dst-range 8.8.8.8-8.8.8.8 -m tcp --dport 443:443 -j ACCEPT",
		}, ""},
		{"start only", garden.NetOutRule{Protocol: garden.ProtocolUDP, Networks: []garden.IPRange{{Start: net.ParseIP("1.2.3.4")}}}, []string{"-p udp -d 1.2.3.4 -j ACCEPT"}, ""},
		{"icmp type code", garden.NetOutRule{Protocol: garden.ProtocolICMP, ICMPs: &garden.ICMPControl{Type: 8, Code: &code}}, []string{"-p icmp -m icmp --icmp-type 8/3 -j ACCEPT"}, ""},
		{"logged", garden.NetOutRule{Protocol: garden.ProtocolTCP, Log: true}, []string{
			"-p tcp -m conntrack --ctstate NEW -j LOG --log-prefix gavel-netout ",
			"-p tcp -j ACCEPT",
		}, ""},
		{"ports for icmp", garden.NetOutRule{Protocol: garden.ProtocolICMP, Ports: []garden.PortRange{{Start: 1}}}, nil, "Ports cannot be specified for Protocol ICMP"},
		{"ports for all", garden.NetOutRule{Ports: []garden.PortRange{{Start: 1}}}, nil, "Ports cannot be specified for Protocol ALL"},
		{"icmp control for tcp", garden.NetOutRule{Protocol: garden.ProtocolTCP, ICMPs: &garden.ICMPControl{}}, nil, "ICMP control"},
		{"unknown protocol", garden.NetOutRule{Protocol: 9}, nil, "invalid protocol"},
		{"icmpv6", garden.NetOutRule{Protocol: garden.ProtocolICMPv6}, nil, "invalid protocol"},
		{"backwards ports", garden.NetOutRule{Protocol: garden.ProtocolTCP, Ports: []garden.PortRange{{Start: 90, End: 80}}}, nil, "start after end"},
		{"v6 range", garden.NetOutRule{Networks: []garden.IPRange{{Start: net.ParseIP("::1"), End: net.ParseIP("::2")}}}, nil, "IPv4 only"},
		{"log udp", garden.NetOutRule{Protocol: garden.ProtocolUDP, Log: true}, nil, "logging"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := netOutRules(tt.rule)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var lines []string
			for _, g := range got {
				lines = append(lines, strings.Join(g, " "))
			}
			if diff := cmp.Diff(tt.want, lines); diff != "" {
				t.Fatal(diff)
			}
		})
	}
}

func TestParseImageURI(t *testing.T) {
	pre := map[string]string{"cflinuxfs4": "/rootfs/cf4"}
	tests := []struct {
		uri  string
		want imageSource
		err  string
	}{
		{"", imageSource{kind: "dir", path: "/default"}, ""},
		{"raw:///srv/rootfs", imageSource{kind: "dir", path: "/srv/rootfs"}, ""},
		{"preloaded:cflinuxfs4", imageSource{kind: "dir", path: "/rootfs/cf4"}, ""},
		{"preloaded:nope", imageSource{}, "no preloaded rootfs"},
		{"oci:///images/app", imageSource{kind: "oci-layout", path: "/images/app"}, ""},
		{"oci:///images/app#v2", imageSource{kind: "oci-layout", path: "/images/app", tag: "v2"}, ""},
		{"oci:///images/app.tar", imageSource{kind: "oci-tarball", path: "/images/app.tar"}, ""},
		{"docker:///busybox", imageSource{kind: "oci-layout", path: "/store/busybox/latest"}, ""},
		{"docker:///library/busybox:1.36", imageSource{kind: "oci-layout", path: "/store/library/busybox/1.36"}, ""},
		{"docker:///busybox#1.36", imageSource{kind: "oci-layout", path: "/store/busybox/1.36"}, ""},
		{"docker:///../../etc", imageSource{}, "bad image name"},
		{"docker://registry.example/busybox", imageSource{}, "remote registries"},
		{"raw://relative/path", imageSource{}, "remote registries"},
		{"raw:///a/../b", imageSource{}, "absolute and clean"},
		{"ftp:///x", imageSource{}, "unsupported scheme"},
	}
	for _, tt := range tests {
		got, err := parseImageURI(tt.uri, "/default", pre, "/store")
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%q: err %v, want %q", tt.uri, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%q = %+v, %v; want %+v", tt.uri, got, err, tt.want)
		}
	}
	if _, err := parseImageURI("", "", nil, ""); err == nil {
		t.Error("empty URI without a default rootfs accepted")
	}
	if _, err := parseImageURI("docker:///x", "", nil, ""); err == nil {
		t.Error("docker URI without an image store accepted")
	}
}

func TestProcessEnv(t *testing.T) {
	tests := []struct {
		name                string
		image, ctr, process []string
		user                string
		uid                 uint32
		want                []string
	}{
		{"defaults for root", nil, nil, nil, "", 0, []string{"PATH=" + rootPath, "USER=root"}},
		{"defaults for a user", nil, nil, nil, "vcap", 1000, []string{"PATH=" + nonRootPath, "USER=vcap"}},
		{"later wins in first position", []string{"A=image", "PATH=/img"}, []string{"B=ctr", "A=ctr"}, []string{"A=proc"}, "", 0,
			[]string{"A=proc", "PATH=/img", "B=ctr", "USER=root"}},
		{"user kept", nil, nil, []string{"USER=me"}, "vcap", 1000, []string{"USER=me", "PATH=" + nonRootPath}},
	}
	for _, tt := range tests {
		if got := processEnv(tt.image, tt.ctr, tt.process, tt.user, tt.uid); !cmp.Equal(got, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestLookupUser(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "etc"), 0o755)
	os.WriteFile(filepath.Join(dir, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/sh\nvcap:x:1000:1001:v:/home/vcap:/bin/sh\n# comment\nnohome:x:7:7:n::/bin/sh\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "etc/group"), []byte("root:x:0:\nvcap:x:1001:\nstaff:x:50:vcap,other\nwheel:x:10:root\n"), 0o644)
	root, _ := os.OpenRoot(dir)
	defer root.Close()
	tests := []struct {
		spec string
		want execUser
		err  string
	}{
		{"", execUser{Name: "root", Home: "/root", Groups: []uint32{10}}, ""},
		{"root", execUser{Name: "root", Home: "/root", Groups: []uint32{10}}, ""},
		{"vcap", execUser{Name: "vcap", UID: 1000, GID: 1001, Home: "/home/vcap", Groups: []uint32{50}}, ""},
		{"1000", execUser{Name: "vcap", UID: 1000, GID: 1001, Home: "/home/vcap", Groups: []uint32{50}}, ""},
		{"2000:3000", execUser{Name: "2000", UID: 2000, GID: 3000, Home: "/"}, ""},
		{"vcap:staff", execUser{Name: "vcap", UID: 1000, GID: 50, Home: "/home/vcap"}, ""},
		{"nohome", execUser{Name: "nohome", UID: 7, GID: 7, Home: "/"}, ""},
		{"ghost", execUser{}, "unable to find user ghost: no matching entries in passwd file"},
		{"vcap:nogroup", execUser{}, "unable to find group nogroup"},
	}
	for _, tt := range tests {
		got, err := lookupUser(root, tt.spec)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%q: err %v, want %q", tt.spec, err, tt.err)
			}
			continue
		}
		if err != nil || !cmp.Equal(got, tt.want) {
			t.Errorf("%q = %+v, %v; want %+v", tt.spec, got, err, tt.want)
		}
	}
	empty, _ := os.OpenRoot(t.TempDir())
	defer empty.Close()
	if u, err := lookupUser(empty, ""); err != nil || u.UID != 0 || u.Home != "/root" {
		t.Errorf("root without passwd = %+v, %v", u, err)
	}
}

func TestMemoryStat(t *testing.T) {
	kv := parseKeyValues([]byte("total_rss 100\ntotal_cache 50\ntotal_swap 10\ntotal_inactive_file 30\nrss 7\nbogus x\n"))
	s := memoryStat(kv)
	if s.TotalUsageTowardLimit != 130 || s.Rss != 7 || s.TotalCache != 50 {
		t.Fatalf("stat %+v", s)
	}
	if s := memoryStat(parseKeyValues([]byte("total_inactive_file 500\ntotal_rss 1\n"))); s.TotalUsageTowardLimit != 0 {
		t.Fatalf("usage not floored at zero: %d", s.TotalUsageTowardLimit)
	}
}

func TestResolveInContainer(t *testing.T) {
	for _, tt := range []struct{ p, home, want string }{
		{"/a/b", "/root", "a/b"},
		{"x", "/home/vcap", "home/vcap/x"},
		{".", "/home/vcap", "home/vcap"},
		{"/", "/root", ""},
		{"/../../etc", "/root", "etc"},
		{"../../..", "/home/vcap", ""},
	} {
		if got := resolveInContainer(tt.p, tt.home); got != tt.want {
			t.Errorf("resolveInContainer(%q, %q) = %q, want %q", tt.p, tt.home, got, tt.want)
		}
	}
}

func TestCgroupStatsV1AndV2(t *testing.T) {
	write := func(dir string, files map[string]string) {
		os.MkdirAll(dir, 0o755)
		for name, body := range files {
			os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644)
		}
	}
	v1 := t.TempDir()
	write(filepath.Join(v1, "memory"), map[string]string{"memory.stat": "total_rss 10\ntotal_cache 5\n", "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n"})
	write(filepath.Join(v1, "cpuacct"), map[string]string{"cpuacct.usage": "12345\n", "cpuacct.stat": "user 3\nsystem 1\n"})
	write(filepath.Join(v1, "pids"), map[string]string{"pids.current": "4\n", "pids.max": "max\n", "cgroup.procs": "10\n11\n"})
	p1 := cgroupPaths{"memory": filepath.Join(v1, "memory"), "cpuacct": filepath.Join(v1, "cpuacct"), "pids": filepath.Join(v1, "pids"), "unified": filepath.Join(v1, "unified")}
	mem, cpu, pid, err := p1.stats()
	if err != nil || mem.TotalUsageTowardLimit != 15 || cpu.Usage != 12345 || cpu.User != 30_000_000 || pid.Current != 4 || pid.Max != 0 || p1.oomKills() != 2 {
		t.Fatalf("v1: %+v %+v %+v %v oom %d", mem, cpu, pid, err, p1.oomKills())
	}
	if pids, _ := p1.pids(); len(pids) != 2 {
		t.Fatalf("v1 pids %v", pids)
	}
	v2 := t.TempDir()
	write(v2, map[string]string{
		"memory.stat": "anon 100\nfile 50\ninactive_file 20\nswapcached 0\n", "memory.events": "low 0\noom 1\noom_kill 1\n",
		"cpu.stat": "usage_usec 7\nuser_usec 5\nsystem_usec 2\n", "pids.current": "3\n", "pids.max": "64\n", "cgroup.procs": "5\n",
	})
	p2 := cgroupPaths{"unified": v2}
	mem, cpu, pid, err = p2.stats()
	if err != nil || mem.TotalUsageTowardLimit != 130 || cpu.Usage != 7000 || cpu.System != 2000 || pid.Max != 64 || p2.oomKills() != 1 {
		t.Fatalf("v2: %+v %+v %+v %v", mem, cpu, pid, err)
	}
}
