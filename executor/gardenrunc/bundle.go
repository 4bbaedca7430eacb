package gardenrunc

import (
	"fmt"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/gavel-scheduler/gavel/executor/garden"
)

// initPathInContainer is where garden-init is bind-mounted.
const initPathInContainer = "/tmp/garden-init"

// defaultPath is the PATH of root processes that bring none.
const (
	rootPath    = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	nonRootPath = "/usr/local/bin:/usr/bin:/bin"
)

// Paths masked (or made read-only) in unprivileged containers.
var (
	maskedPaths = []string{
		"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
		"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
		"/sys/firmware", "/sys/devices/virtual/powercap",
	}
	readonlyPaths = []string{
		"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
	}
)

// bundleParams is everything a container's OCI config depends on.
type bundleParams struct {
	Handle      string
	RootFS      string // host path of the (overlay) root
	InitPath    string // host path of garden-init
	HostsPath   string
	ResolvPath  string
	CgroupsPath string
	Privileged  bool
	Limits      garden.Limits
	// BindMounts are resolved to host paths already.
	BindMounts []garden.BindMount
	// SwapAccounting says memory.memsw.* exists, so swap can be capped.
	SwapAccounting bool
}

// hostname is the handle's last 49 characters.
func hostname(handle string) string {
	if len(handle) > 49 {
		return handle[len(handle)-49:]
	}
	return handle
}

// cpuShares picks the shares value: weight wins over limit_in_shares.
func cpuShares(l garden.CPULimits) uint64 {
	if l.Weight != 0 {
		return l.Weight
	}
	return l.LimitInShares
}

// buildSpec is the container's OCI runtime config: pid 1 is garden-init,
// namespaces for everything but users, and the limits as cgroup resources.
func buildSpec(p bundleParams) *specs.Spec {
	caps := initCaps(p.Privileged)
	s := &specs.Spec{
		Version:  specs.Version,
		Hostname: hostname(p.Handle),
		Root:     &specs.Root{Path: p.RootFS},
		Process: &specs.Process{
			Args:            []string{initPathInContainer},
			Cwd:             "/",
			Env:             []string{"PATH=" + rootPath},
			Capabilities:    caps,
			NoNewPrivileges: !p.Privileged,
		},
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
			{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777"}},
			{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
			{Destination: initPathInContainer, Type: "bind", Source: p.InitPath, Options: []string{"bind", "ro"}},
			{Destination: "/etc/hosts", Type: "bind", Source: p.HostsPath, Options: []string{"bind", "rw"}},
			{Destination: "/etc/resolv.conf", Type: "bind", Source: p.ResolvPath, Options: []string{"bind", "rw"}},
		},
		Linux: &specs.Linux{
			CgroupsPath: p.CgroupsPath,
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace}, {Type: specs.IPCNamespace}, {Type: specs.UTSNamespace},
				{Type: specs.MountNamespace}, {Type: specs.NetworkNamespace},
			},
			Resources: resources(p.Limits, p.SwapAccounting),
		},
	}
	if !p.Privileged {
		s.Mounts = append(s.Mounts, specs.Mount{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}})
		s.Linux.MaskedPaths = maskedPaths
		s.Linux.ReadonlyPaths = readonlyPaths
		s.Linux.Seccomp = defaultSeccomp()
		s.Linux.Resources.Devices = []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}
	}
	for _, bm := range p.BindMounts {
		opts := []string{"bind", "ro"}
		if bm.Mode == garden.BindMountModeRW {
			opts[1] = "rw"
		}
		s.Mounts = append(s.Mounts, specs.Mount{Destination: bm.DstPath, Type: "bind", Source: bm.SrcPath, Options: append(opts, "rbind")})
	}
	return s
}

func resources(l garden.Limits, swapAccounting bool) *specs.LinuxResources {
	r := &specs.LinuxResources{}
	if l.Memory.LimitInBytes > 0 {
		limit := int64(l.Memory.LimitInBytes)
		r.Memory = &specs.LinuxMemory{Limit: &limit}
		if swapAccounting {
			swap := limit
			r.Memory.Swap = &swap
		}
	}
	if shares := cpuShares(l.CPU); shares > 0 {
		r.CPU = &specs.LinuxCPU{Shares: &shares}
	}
	if l.Pid.Max > 0 {
		r.Pids = &specs.LinuxPids{Limit: int64(l.Pid.Max)}
	}
	return r
}

// Bounds on limits, so a typo is refused with a reason instead of failing
// deep inside runc or starving the container at once.
const (
	minMemoryLimit = 4 << 20
	minCPUShares   = 2
	maxCPUShares   = 262144
	minDiskLimit   = 1 << 20
)

// validateLimits refuses limits the backend cannot honour.
func validateLimits(l garden.Limits) error {
	if m := l.Memory.LimitInBytes; m != 0 && m < minMemoryLimit {
		return fmt.Errorf("memory limit %d bytes: must be 0 (unlimited) or at least %d", m, minMemoryLimit)
	}
	if m := l.Memory.LimitInBytes; m > 1<<62 {
		return fmt.Errorf("memory limit %d bytes: too large", m)
	}
	if s := cpuShares(l.CPU); s != 0 && (s < minCPUShares || s > maxCPUShares) {
		return fmt.Errorf("cpu shares %d: must be 0 or between %d and %d", s, minCPUShares, maxCPUShares)
	}
	if l.Pid.Max > 1<<22 {
		return fmt.Errorf("pid limit %d: above the kernel's maximum", l.Pid.Max)
	}
	d := l.Disk
	if d.ByteSoft > 0 && d.ByteHard > 0 && d.ByteSoft > d.ByteHard {
		return fmt.Errorf("disk byte soft limit %d above hard limit %d", d.ByteSoft, d.ByteHard)
	}
	if d.InodeSoft > 0 && d.InodeHard > 0 && d.InodeSoft > d.InodeHard {
		return fmt.Errorf("disk inode soft limit %d above hard limit %d", d.InodeSoft, d.InodeHard)
	}
	if d.ByteHard != 0 && d.ByteHard < minDiskLimit {
		return fmt.Errorf("disk limit %d bytes: must be 0 or at least %d", d.ByteHard, minDiskLimit)
	}
	if d.Scope > garden.DiskLimitScopeExclusive {
		return fmt.Errorf("disk limit scope %d: must be 0 (total) or 1 (exclusive)", d.Scope)
	}
	return nil
}

// validateBindMount checks one spec bind mount.
func validateBindMount(bm garden.BindMount) error {
	if !filepath.IsAbs(bm.SrcPath) || !filepath.IsAbs(bm.DstPath) {
		return fmt.Errorf("bind mount %q -> %q: paths must be absolute", bm.SrcPath, bm.DstPath)
	}
	if bm.Mode > garden.BindMountModeRW || bm.Origin > garden.BindMountOriginContainer {
		return fmt.Errorf("bind mount %q: bad mode or origin", bm.DstPath)
	}
	if cleanRel(bm.DstPath) == "" {
		return fmt.Errorf("bind mount destination %q: cannot be the root", bm.DstPath)
	}
	return nil
}

// cleanRel is p cleaned and made relative to "/" ("" for the root).
func cleanRel(p string) string {
	c := filepath.Clean("/" + p)
	return strings.TrimPrefix(c, "/")
}

// mergeEnv appends each list in order; a later value of a key replaces an
// earlier one in its first position.
func mergeEnv(lists ...[]string) []string {
	var out []string
	pos := map[string]int{}
	for _, l := range lists {
		for _, kv := range l {
			k, _, _ := strings.Cut(kv, "=")
			if i, ok := pos[k]; ok {
				out[i] = kv
				continue
			}
			pos[k] = len(out)
			out = append(out, kv)
		}
	}
	return out
}

// processEnv is the environment of a process: image, container, process,
// then PATH and USER when absent.
func processEnv(image, container, process []string, user string, uid uint32) []string {
	env := mergeEnv(image, container, process)
	has := func(k string) bool {
		for _, kv := range env {
			if strings.HasPrefix(kv, k+"=") {
				return true
			}
		}
		return false
	}
	if !has("PATH") {
		if uid == 0 {
			env = append(env, "PATH="+rootPath)
		} else {
			env = append(env, "PATH="+nonRootPath)
		}
	}
	if !has("USER") {
		if user == "" {
			user = "root"
		}
		env = append(env, "USER="+user)
	}
	return env
}
