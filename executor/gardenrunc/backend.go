package gardenrunc

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/gavel-scheduler/gavel/executor/garden"
)

// Backend is the runc Garden backend. Containers, the pools and the
// destroying set are guarded by mu; each container guards its own state.
type Backend struct {
	cfg      Config
	logger   *slog.Logger
	runc     runcCLI
	net      *network
	images   *imageCache
	initPath string
	cgroups  map[string]string // the server's own cgroup per controller
	swap     bool

	mu         sync.Mutex
	containers map[string]*container // fully created
	creating   map[string]bool       // handles reserved by a Create in progress
	ports      *portPool

	// background tracks the veth deletions that finish a destroy: each
	// holds its container's address until the link is gone.
	background sync.WaitGroup
}

var _ garden.Backend = (*Backend)(nil)

// New builds a backend; Start must run before use. A nil logger discards.
func New(cfg Config, logger *slog.Logger) (*Backend, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	n, err := newNetwork(cfg)
	if err != nil {
		return nil, err
	}
	return &Backend{
		cfg:        cfg,
		logger:     logger,
		runc:       runcCLI{bin: cfg.RuncBinary, root: cfg.RuncRoot},
		net:        n,
		images:     &imageCache{dir: filepath.Join(cfg.Depot, ".images")},
		containers: map[string]*container{},
		creating:   map[string]bool{},
		ports:      newPortPool(cfg.PortPoolStart, cfg.PortPoolSize),
	}, nil
}

// Start prepares the host (directories, garden-init, bridge, iptables)
// and restores the containers in the depot.
func (b *Backend) Start(ctx context.Context) error {
	if os.Geteuid() != 0 {
		return errors.New("the runc garden backend must run as root")
	}
	// Container inits are left to the nearest subreaper when `runc run
	// --detach` exits: this server, so it can reap them on destroy.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("become subreaper: %w", err)
	}
	for _, d := range []string{b.cfg.Depot, b.cfg.RuncRoot, b.images.dir, filepath.Join(b.cfg.Depot, ".bin")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	path, err := installInit(filepath.Join(b.cfg.Depot, ".bin"), b.cfg.InitBinary)
	if err != nil {
		return err
	}
	b.initPath = path
	if b.cgroups, err = ownCgroups(); err != nil {
		return fmt.Errorf("cgroups: %w", err)
	}
	b.swap = swapAccounting(b.cgroups)
	if err := b.net.setup(); err != nil {
		return err
	}
	return b.restore(ctx)
}

// Stop lets go of the containers and their processes, which keep
// running for the next server to restore (a process's output waits in its
// FIFOs meanwhile), and waits for background cleanup.
func (b *Backend) Stop(context.Context) error {
	b.mu.Lock()
	containers := make([]*container, 0, len(b.containers))
	for _, c := range b.containers {
		containers = append(containers, c)
	}
	b.mu.Unlock()
	for _, c := range containers {
		c.mu.Lock()
		for _, p := range c.procs {
			if p.pid != 0 && !p.exitedNow() {
				p.detach()
			}
		}
		c.mu.Unlock()
	}
	b.background.Wait()
	return nil
}

// Teardown destroys every container and removes the bridge and chains:
// for tests and operators retiring a host, never a normal stop.
func (b *Backend) Teardown(ctx context.Context) error {
	b.mu.Lock()
	handles := make([]string, 0, len(b.containers))
	for h := range b.containers {
		handles = append(handles, h)
	}
	b.mu.Unlock()
	var errs []error
	for _, h := range handles {
		if err := b.Destroy(ctx, h); err != nil {
			errs = append(errs, err)
		}
	}
	b.background.Wait()
	if err := b.net.teardown(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (b *Backend) Ping(context.Context) error { return nil }

func (b *Backend) Capacity(context.Context) (garden.Capacity, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(b.cfg.Depot, &st); err != nil {
		return garden.Capacity{}, fmt.Errorf("capacity: %w", err)
	}
	mem, err := memTotal()
	if err != nil {
		return garden.Capacity{}, fmt.Errorf("capacity: %w", err)
	}
	disk := st.Blocks * uint64(st.Bsize)
	return garden.Capacity{MemoryInBytes: mem, DiskInBytes: disk, SchedulableDiskInBytes: disk, MaxContainers: uint64(b.maxContainers())}, nil
}

// cgroupRel is the container's cgroup path relative to the server's; the
// tag keeps two servers' containers with the same handle apart.
func (b *Backend) cgroupRel(handle string) string {
	return filepath.Join(b.cfg.CgroupParent, b.cfg.Tag+"-"+handle)
}

func (b *Backend) maxContainers() int {
	n := b.net.pool.capacity()
	if b.cfg.MaxContainers > 0 && b.cfg.MaxContainers < n {
		n = b.cfg.MaxContainers
	}
	return n
}

func memTotal() (uint64, error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb * 1024, err
		}
	}
	return 0, errors.New("no MemTotal in /proc/meminfo")
}

func (b *Backend) GraceTime(c garden.Container) time.Duration {
	ct, ok := c.(*container)
	if !ok {
		return 0
	}
	ct.mu.Lock()
	defer ct.mu.Unlock()
	return ct.st.GraceTime
}

func (b *Backend) Lookup(_ context.Context, handle string) (garden.Container, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	c, ok := b.containers[handle]
	if !ok {
		return nil, garden.ContainerNotFoundError{Handle: handle}
	}
	return c, nil
}

func (b *Backend) Containers(_ context.Context, filter garden.Properties) ([]garden.Container, error) {
	b.mu.Lock()
	all := make([]*container, 0, len(b.containers))
	for _, c := range b.containers {
		all = append(all, c)
	}
	b.mu.Unlock()
	var out []garden.Container
	for _, c := range all {
		c.mu.Lock()
		ok := garden.MatchProperties(c.st.Properties, filter)
		c.mu.Unlock()
		if ok {
			out = append(out, c)
		}
	}
	return out, nil
}

func (b *Backend) BulkInfo(ctx context.Context, handles []string) (map[string]garden.ContainerInfoEntry, error) {
	out := map[string]garden.ContainerInfoEntry{}
	for _, h := range handles {
		c, err := b.Lookup(ctx, h)
		if err != nil {
			out[h] = garden.ContainerInfoEntry{Err: garden.NewError(err)}
			continue
		}
		info, err := c.Info(ctx)
		out[h] = garden.ContainerInfoEntry{Info: info, Err: garden.NewError(err)}
	}
	return out, nil
}

func (b *Backend) BulkMetrics(ctx context.Context, handles []string) (map[string]garden.ContainerMetricsEntry, error) {
	out := map[string]garden.ContainerMetricsEntry{}
	for _, h := range handles {
		c, err := b.Lookup(ctx, h)
		if err != nil {
			out[h] = garden.ContainerMetricsEntry{Err: garden.NewError(err)}
			continue
		}
		m, err := c.Metrics(ctx)
		out[h] = garden.ContainerMetricsEntry{Metrics: m, Err: garden.NewError(err)}
	}
	return out, nil
}

// handlePattern keeps handles usable as URL segments, directory, runc and
// cgroup names.
var handlePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

const stateCreating = "creating"

// validateSpec refuses what Create cannot honour, before anything is
// allocated.
func (b *Backend) validateSpec(spec garden.ContainerSpec) error {
	if !handlePattern.MatchString(spec.Handle) {
		return fmt.Errorf("handle %q: must match %s", spec.Handle, handlePattern)
	}
	if spec.RootFSPath != "" && spec.Image.URI != "" {
		return errors.New("cannot specify both rootfs and image.uri")
	}
	if spec.Privileged && !b.cfg.AllowPrivileged {
		return errors.New("privileged container creation is disabled")
	}
	if err := validateLimits(spec.Limits); err != nil {
		return err
	}
	for _, bm := range spec.BindMounts {
		if err := validateBindMount(bm); err != nil {
			return err
		}
	}
	for _, kv := range spec.Env {
		if !strings.Contains(kv, "=") || strings.HasPrefix(kv, "=") {
			return fmt.Errorf("env %q: must be KEY=VALUE", kv)
		}
	}
	for _, r := range spec.NetOut {
		if _, err := netOutRules(r); err != nil {
			return err
		}
	}
	for _, ni := range spec.NetIn {
		if ni.HostPort > 65535 || ni.ContainerPort > 65535 {
			return fmt.Errorf("net-in %d:%d: ports must be at most 65535", ni.HostPort, ni.ContainerPort)
		}
	}
	if spec.GraceTime < 0 {
		return errors.New("grace time must not be negative")
	}
	return nil
}

// allocateIPLocked picks the container's address from spec.Network.
func (b *Backend) allocateIPLocked(network string) (net.IP, uint32, error) {
	pool := b.net.pool
	if network == "" {
		return pool.acquire()
	}
	ip, subnet, err := net.ParseCIDR(network)
	if err != nil {
		return nil, 0, fmt.Errorf("network %q: %w", network, err)
	}
	if !pool.network.Contains(subnet.IP) {
		return nil, 0, fmt.Errorf("network %q: outside the pool %s", network, pool.network)
	}
	if !ip.Equal(subnet.IP) {
		off, err := pool.claim(ip)
		return ip.To4(), off, err
	}
	first, _ := pool.offset(subnet.IP)
	ones, bits := subnet.Mask.Size()
	for i := uint32(0); i < 1<<(bits-ones); i++ {
		cand := pool.ip(first + i)
		if off, err := pool.claim(cand); err == nil {
			return cand, off, nil
		}
	}
	return nil, 0, fmt.Errorf("network %q: no free address", network)
}

func (b *Backend) Create(ctx context.Context, spec garden.ContainerSpec) (garden.Container, error) {
	if spec.Handle == "" {
		spec.Handle = uuid.NewString()
	}
	if err := b.validateSpec(spec); err != nil {
		return nil, err
	}
	uri := spec.Image.URI
	if uri == "" {
		uri = spec.RootFSPath
	}
	src, err := parseImageURI(uri, b.cfg.DefaultRootFS, b.cfg.Preloaded, b.cfg.ImageStore)
	if err != nil {
		return nil, err
	}

	b.mu.Lock()
	if _, ok := b.containers[spec.Handle]; ok || b.creating[spec.Handle] {
		b.mu.Unlock()
		return nil, fmt.Errorf("Handle '%s' already in use", spec.Handle)
	}
	if len(b.containers)+len(b.creating) >= b.maxContainers() {
		b.mu.Unlock()
		return nil, errors.New("max containers reached")
	}
	ip, off, err := b.allocateIPLocked(spec.Network)
	if err != nil {
		b.mu.Unlock()
		return nil, err
	}
	props := garden.Properties{}
	for k, v := range spec.Properties {
		props[k] = v
	}
	props[garden.PropertyState] = stateCreating
	c := &container{
		b:     b,
		dir:   filepath.Join(b.cfg.Depot, spec.Handle),
		procs: map[string]*process{},
		st: containerState{
			Handle: spec.Handle, CreatedAt: time.Now(), Spec: spec, IP: ip.String(), IPOffset: off,
			Properties: props, GraceTime: spec.GraceTime,
			Cgroups: containerCgroups(b.cgroups, b.cgroupRel(spec.Handle)),
		},
	}
	// Until built, the container is invisible: Lookup, List and Destroy
	// do not see it, so nothing races the build.
	b.creating[spec.Handle] = true
	b.mu.Unlock()

	if err := b.build(ctx, c, src); err != nil {
		if derr := b.teardownContainer(context.WithoutCancel(ctx), c); derr != nil {
			b.logger.Error("clean up failed create", "handle", spec.Handle, "error", derr)
		}
		b.mu.Lock()
		delete(b.creating, spec.Handle)
		b.mu.Unlock()
		b.release(c)
		return nil, err
	}
	b.mu.Lock()
	delete(b.creating, spec.Handle)
	b.containers[spec.Handle] = c
	b.mu.Unlock()
	return c, nil
}

// release returns a removed container's ports, then (once its veth is
// gone, off the caller's path) its address.
func (b *Backend) release(c *container) {
	b.mu.Lock()
	for _, m := range c.st.MappedPorts {
		b.ports.release(int(m.HostPort))
	}
	b.mu.Unlock()
	b.background.Add(1)
	go func() {
		defer b.background.Done()
		if err := b.net.deleteVeth(c.st.IPOffset); err != nil {
			// Keep the address: its veth name is still taken.
			b.logger.Error("delete veth", "handle", c.st.Handle, "error", err)
			return
		}
		b.mu.Lock()
		b.net.pool.release(c.st.IPOffset)
		b.mu.Unlock()
	}()
}

// build does the slow part of Create; any failure is cleaned up by
// Destroy, which copes with every partial state.
func (b *Backend) build(ctx context.Context, c *container, src imageSource) error {
	spec := c.st.Spec
	if err := os.Mkdir(c.dir, 0o700); err != nil {
		return fmt.Errorf("create depot dir: %w", err)
	}
	img, err := b.images.resolve(src)
	if err != nil {
		return err
	}
	c.st.Image = img
	c.mu.Lock()
	err = c.saveLocked()
	c.mu.Unlock()
	if err != nil {
		return err
	}
	ov, err := mountOverlay(c.dir, img.Dir, spec.Limits.Disk)
	c.st.Overlay = ov
	if err != nil {
		return err
	}
	bindMounts, err := resolveBindMounts(ov.Root, spec.BindMounts)
	if err != nil {
		return err
	}
	hosts, resolv := filepath.Join(c.dir, "hosts"), filepath.Join(c.dir, "resolv.conf")
	if err := os.WriteFile(hosts, []byte(hostsFile(c.st.IP, hostname(spec.Handle))), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(resolv, []byte(b.resolvConf()), 0o644); err != nil {
		return err
	}
	ociSpec := buildSpec(bundleParams{
		Handle: spec.Handle, RootFS: ov.Root, InitPath: b.initPath, HostsPath: hosts, ResolvPath: resolv,
		CgroupsPath: b.cgroupRel(spec.Handle), Privileged: spec.Privileged,
		Limits: spec.Limits, BindMounts: bindMounts, SwapAccounting: b.swap,
	})
	data, err := json.Marshal(ociSpec)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(c.dir, "config.json"), data, 0o600); err != nil {
		return err
	}
	pidFile := filepath.Join(c.dir, "init.pid")
	if err := b.runc.run(ctx, spec.Handle, c.dir, pidFile); err != nil {
		return fmt.Errorf("start container: %w", err)
	}
	pidData, err := os.ReadFile(pidFile)
	if err != nil {
		return err
	}
	if c.st.InitPID, err = strconv.Atoi(strings.TrimSpace(string(pidData))); err != nil {
		return fmt.Errorf("init pid: %w", err)
	}
	c.st.InitStart = procStartTime(c.st.InitPID)
	c.st.Attached = true
	if err := b.net.attach(c.st.InitPID, c.ip(), c.st.IPOffset); err != nil {
		return err
	}
	c.mu.Lock()
	c.st.Properties[garden.PropertyContainerIP] = c.st.IP
	c.st.Properties[garden.PropertyHostIP] = b.net.pool.gateway().String()
	c.st.Properties[garden.PropertyExternalIP] = b.net.externalIP.String()
	c.st.Properties[garden.PropertyNetInterface] = b.net.vethName(c.st.IPOffset)
	c.st.Properties[garden.PropertyGraceTime] = strconv.FormatInt(int64(c.st.GraceTime), 10)
	err = c.saveLocked()
	c.mu.Unlock()
	if err != nil {
		return err
	}
	for _, ni := range spec.NetIn {
		if _, _, err := c.NetIn(ctx, ni.HostPort, ni.ContainerPort); err != nil {
			return err
		}
	}
	if len(spec.NetOut) > 0 {
		if err := c.BulkNetOut(ctx, spec.NetOut); err != nil {
			return err
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.st.Properties[garden.PropertyState] = garden.StateCreated
	return c.saveLocked()
}

// resolveBindMounts turns container-origin sources into host paths under
// the rootfs, checking every source exists.
func resolveBindMounts(rootfs string, mounts []garden.BindMount) ([]garden.BindMount, error) {
	out := make([]garden.BindMount, 0, len(mounts))
	for _, bm := range mounts {
		if bm.Origin == garden.BindMountOriginContainer {
			root, err := os.OpenRoot(rootfs)
			if err != nil {
				return nil, err
			}
			_, err = root.Stat(cleanRel(bm.SrcPath))
			root.Close()
			if err != nil {
				return nil, fmt.Errorf("bind mount source %s (in container): %w", bm.SrcPath, err)
			}
			bm.SrcPath = filepath.Join(rootfs, cleanRel(bm.SrcPath))
		} else if _, err := os.Stat(bm.SrcPath); err != nil {
			return nil, fmt.Errorf("bind mount source %s: %w", bm.SrcPath, err)
		}
		out = append(out, bm)
	}
	return out, nil
}

func hostsFile(ip, name string) string {
	return "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n" + ip + " " + name + "\n"
}

// resolvConf is the configured DNS servers, or the host's resolv.conf
// without loopback nameservers (unreachable from the container).
func (b *Backend) resolvConf() string {
	var sb strings.Builder
	if len(b.cfg.DNSServers) > 0 {
		for _, s := range b.cfg.DNSServers {
			sb.WriteString("nameserver " + s + "\n")
		}
		return sb.String()
	}
	data, _ := os.ReadFile("/etc/resolv.conf")
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "nameserver" {
			if ip := net.ParseIP(f[1]); ip == nil || ip.IsLoopback() {
				continue
			}
		}
		if len(f) > 0 && (f[0] == "nameserver" || f[0] == "search" || f[0] == "options" || f[0] == "domain") {
			sb.WriteString(line + "\n")
		}
	}
	return sb.String()
}

func (b *Backend) Destroy(ctx context.Context, handle string) error {
	b.mu.Lock()
	c, ok := b.containers[handle]
	b.mu.Unlock()
	if !ok {
		return garden.ContainerNotFoundError{Handle: handle}
	}
	if err := b.teardownContainer(ctx, c); err != nil {
		return fmt.Errorf("destroy %s: %w", handle, err)
	}
	b.mu.Lock()
	delete(b.containers, handle)
	b.mu.Unlock()
	b.release(c)
	return nil
}

// teardownContainer removes everything a (possibly half-built) container
// holds on the host, in reverse order of creation. It is safe to repeat.
func (b *Backend) teardownContainer(ctx context.Context, c *container) error {
	handle := c.st.Handle
	if err := b.killInit(ctx, c.st.InitPID, c.st.InitStart); err != nil {
		return err
	}
	// With init dead, what `runc delete` would do is removing the cgroups
	// and runc's state directory (gavel sets no hooks): done here, it
	// saves a runc start per destroy. runc itself is the fallback.
	if c.st.InitPID <= 0 || c.st.Cgroups.remove() != nil || os.RemoveAll(filepath.Join(b.cfg.RuncRoot, handle)) != nil {
		if err := b.runc.delete(ctx, handle); err != nil {
			return err
		}
	}
	c.waitProcesses(10 * time.Second)
	var errs []error
	c.mu.Lock()
	chains := c.st.Chains
	c.mu.Unlock()
	if err := b.net.detach(c.ip(), c.st.IPOffset, chains); err != nil {
		errs = append(errs, err)
	}
	if err := c.st.Overlay.unmount(); err != nil {
		errs = append(errs, err)
	}
	if err := c.st.Cgroups.remove(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	// Never remove through a live mount: that would reach the image.
	if mounted(c.st.Overlay.Root) || mounted(c.st.Overlay.Layer) {
		return fmt.Errorf("rootfs of %s still mounted", handle)
	}
	if err := os.RemoveAll(c.dir); err != nil {
		return err
	}
	return nil
}

// killInit kills the container's init, which takes every process of its
// pid namespace with it, and waits for it to be gone. Doing this before
// `runc delete` spares runc's kill-and-poll loop, which sleeps 100 ms at a
// time. A restored container's init is not our child: then its death is
// polled. The recorded start time guards against a recycled pid (after a
// reboot the depot may name pids that are now someone else's).
func (b *Backend) killInit(ctx context.Context, pid int, startTime string) error {
	if pid <= 0 || startTime == "" || procStartTime(pid) != startTime {
		return nil
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return nil
		}
		return fmt.Errorf("kill init %d: %w", pid, err)
	}
	var ws syscall.WaitStatus
	if _, err := syscall.Wait4(pid, &ws, 0, nil); err == nil || !errors.Is(err, syscall.ECHILD) {
		return nil
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
		if err != nil {
			return nil
		}
		// "pid (comm) S ...": a zombie (or dead) init is gone enough.
		if i := strings.LastIndexByte(string(stat), ')'); i > 0 && i+2 < len(stat) && (stat[i+2] == 'Z' || stat[i+2] == 'X') {
			return nil
		}
		time.Sleep(time.Millisecond)
	}
	return fmt.Errorf("init %d survived SIGKILL", pid)
}

// mounted reports whether path is a mount point.
func mounted(path string) bool {
	if path == "" {
		return false
	}
	var st, parent unix.Stat_t
	if unix.Lstat(path, &st) != nil || unix.Lstat(filepath.Dir(path), &parent) != nil {
		return false
	}
	return st.Dev != parent.Dev
}

// restore adopts the depot's containers whose init still runs and removes
// the rest, then sweeps host resources no container owns.
func (b *Backend) restore(ctx context.Context) error {
	entries, err := os.ReadDir(b.cfg.Depot)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		dir := filepath.Join(b.cfg.Depot, e.Name())
		c := &container{b: b, dir: dir, procs: map[string]*process{}}
		data, err := os.ReadFile(filepath.Join(dir, "state.json"))
		if err == nil {
			err = json.Unmarshal(data, &c.st)
		}
		if err != nil {
			b.logger.Warn("unreadable container state, removing", "dir", dir, "error", err)
			_ = b.runc.delete(ctx, e.Name())
			c.st.Handle = e.Name()
			c.st.Overlay = overlay{Root: filepath.Join(dir, "rootfs"), Layer: filepath.Join(dir, "layer"), Tmpfs: mounted(filepath.Join(dir, "layer"))}
			if err := b.teardownContainer(ctx, c); err != nil {
				b.logger.Error("remove broken container", "dir", dir, "error", err)
			}
			continue
		}
		st, serr := b.runc.state(ctx, c.st.Handle)
		if serr != nil || st.Status != "running" || st.Pid != c.st.InitPID || c.st.Properties[garden.PropertyState] != garden.StateCreated {
			b.logger.Info("removing container that did not survive", "handle", c.st.Handle, "runc_status", st.Status)
			if err := b.teardownContainer(ctx, c); err != nil {
				b.logger.Error("remove dead container", "handle", c.st.Handle, "error", err)
			}
			continue
		}
		b.mu.Lock()
		if _, err := b.net.pool.claim(c.ip()); err != nil {
			b.logger.Error("restored container address", "handle", c.st.Handle, "error", err)
		}
		for _, m := range c.st.MappedPorts {
			_ = b.ports.claim(int(m.HostPort))
		}
		b.containers[c.st.Handle] = c
		b.mu.Unlock()
		c.restoreProcesses(b.logger)
		b.logger.Info("restored container", "handle", c.st.Handle)
	}
	return b.sweep(ctx)
}

// sweep removes runc containers, veths and per-container chains that no
// known container owns (left by a crash mid-create or mid-destroy).
func (b *Backend) sweep(ctx context.Context) error {
	b.mu.Lock()
	owned := map[string]bool{}
	vethOwned := map[string]bool{}
	for h, c := range b.containers {
		owned[h] = true
		vethOwned[b.net.vethName(c.st.IPOffset)] = true
		vethOwned[b.net.outChain(c.st.IPOffset)] = true
		vethOwned[b.net.natChain(c.st.IPOffset)] = true
	}
	b.mu.Unlock()
	ids, err := b.runc.list(ctx)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if !owned[id] {
			b.logger.Info("removing orphaned runc container", "id", id)
			_ = b.runc.delete(ctx, id)
		}
	}
	links, err := netlink.LinkList()
	if err != nil {
		return err
	}
	for _, l := range links {
		name := l.Attrs().Name
		if _, ok := l.(*netlink.Veth); ok && strings.HasPrefix(name, b.cfg.Tag) && !vethOwned[name] {
			_ = netlink.LinkDel(l)
		}
	}
	for _, table := range []string{"filter", "nat"} {
		chains, err := b.net.ipt.ListChains(table)
		if err != nil {
			return err
		}
		for _, ch := range chains {
			rest, ok := strings.CutPrefix(ch, b.cfg.Tag+"-")
			if !ok || vethOwned[ch] || (!strings.HasPrefix(rest, "o") && !strings.HasPrefix(rest, "n")) {
				continue
			}
			if _, err := strconv.ParseUint(rest[1:], 16, 32); err != nil {
				continue
			}
			// Drop the jump to it first, whatever its address.
			rules, _ := b.net.ipt.List(table, b.net.chain(map[string]string{"filter": "forward", "nat": "prerouting"}[table]))
			for _, r := range rules {
				if strings.HasSuffix(r, " "+ch) {
					f := strings.Fields(r)
					_ = b.net.ipt.Delete(table, f[1], f[2:]...)
				}
			}
			_ = b.net.ipt.ClearAndDeleteChain(table, ch)
		}
	}
	return nil
}

// size is the disk usage of an image directory, computed once.
func (c *imageCache) size(dir string) usage {
	c.sizesMu.Lock()
	defer c.sizesMu.Unlock()
	if c.sizes == nil {
		c.sizes = map[string]usage{}
	}
	u, ok := c.sizes[dir]
	if !ok {
		u = diskUsage(dir)
		c.sizes[dir] = u
	}
	return u
}

// Count is the number of containers, including those being created.
func (b *Backend) Count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.containers) + len(b.creating)
}
