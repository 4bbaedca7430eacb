package gardenrunc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sys/unix"

	"github.com/gavel-scheduler/gavel/executor/garden"
)

// containerState is what the depot keeps of a container (state.json), so
// a restarted server can adopt it.
type containerState struct {
	Handle      string               `json:"handle"`
	CreatedAt   time.Time            `json:"created_at"`
	Spec        garden.ContainerSpec `json:"spec"`
	Image       image                `json:"image"`
	Overlay     overlay              `json:"overlay"`
	IP          string               `json:"ip"`
	IPOffset    uint32               `json:"ip_offset"`
	InitPID     int                  `json:"init_pid"`
	InitStart   string               `json:"init_start_time"`
	Cgroups     cgroupPaths          `json:"cgroups"`
	Properties  garden.Properties    `json:"properties"`
	GraceTime   time.Duration        `json:"grace_time"`
	Stopped     bool                 `json:"stopped,omitempty"`
	Chains      containerChains      `json:"chains"`
	MappedPorts []garden.PortMapping `json:"mapped_ports,omitempty"`
	NetOut      []garden.NetOutRule  `json:"netout,omitempty"`
	Attached    bool                 `json:"network_attached,omitempty"`
}

// container is one container. Fields after mu are guarded by it; st is
// saved to the depot after every change.
type container struct {
	b   *Backend
	dir string

	mu    sync.Mutex
	st    containerState
	procs map[string]*process
}

var _ garden.Container = (*container)(nil)

func (c *container) Handle() string { return c.st.Handle }

func (c *container) statePath() string { return filepath.Join(c.dir, "state.json") }

// saveLocked writes the state atomically.
func (c *container) saveLocked() error {
	data, err := json.Marshal(c.st)
	if err != nil {
		return err
	}
	tmp := c.statePath() + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("save container state: %w", err)
	}
	return os.Rename(tmp, c.statePath())
}

func (c *container) ip() net.IP { return net.ParseIP(c.st.IP).To4() }

// root opens the container's root as its processes see it (through its
// init's mount namespace, so bind mounts count), falling back to the
// overlay when init is gone.
func (c *container) root() (*os.Root, error) {
	if c.st.InitPID > 0 {
		if r, err := os.OpenRoot(filepath.Join("/proc", strconv.Itoa(c.st.InitPID), "root")); err == nil {
			return r, nil
		}
	}
	return os.OpenRoot(c.st.Overlay.Root)
}

func (c *container) Stop(ctx context.Context, kill bool) error {
	init := c.st.InitPID
	others := func() []int {
		pids, _ := c.st.Cgroups.pids()
		return slices.DeleteFunc(pids, func(p int) bool { return p == init })
	}
	// The processes' shims report their exits: they are left to end with
	// their processes.
	procs := c.started()
	signal := func(sig syscall.Signal) {
		shims := make(map[int]bool, len(procs))
		for _, p := range procs {
			if p.shimRuns() {
				shims[p.shim] = true
			}
		}
		for _, pid := range others() {
			if !shims[pid] {
				_ = syscall.Kill(pid, sig)
			}
		}
	}
	gone := func(d time.Duration) bool {
		deadline := time.Now().Add(d)
		for len(others()) > 0 {
			if time.Now().After(deadline) || ctx.Err() != nil {
				return false
			}
			time.Sleep(20 * time.Millisecond)
		}
		return true
	}
	if !kill {
		signal(syscall.SIGTERM)
		if !gone(c.b.cfg.StopTimeout) {
			kill = true
		}
	}
	if kill {
		signal(syscall.SIGKILL)
		if !gone(10 * time.Second) {
			return errors.New("stop: processes survived SIGKILL")
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.st.Stopped = true
	return c.saveLocked()
}

func (c *container) Info(ctx context.Context) (garden.ContainerInfo, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	info := garden.ContainerInfo{
		State:         garden.StateActive,
		HostIP:        c.b.net.pool.gateway().String(),
		ContainerIP:   c.st.IP,
		ExternalIP:    c.b.net.externalIP.String(),
		ContainerPath: c.dir,
		ProcessIDs:    []string{},
		Properties:    copyProps(c.st.Properties),
		MappedPorts:   append([]garden.PortMapping{}, c.st.MappedPorts...),
		Events:        []string{},
	}
	if c.st.Stopped {
		info.State = garden.StateStopped
	}
	if c.st.Cgroups.oomKills() > 0 {
		info.Events = append(info.Events, garden.EventOutOfMemory)
	}
	for id, p := range c.procs {
		if !p.exitedNow() {
			info.ProcessIDs = append(info.ProcessIDs, id)
		}
	}
	slices.Sort(info.ProcessIDs)
	return info, nil
}

func copyProps(p garden.Properties) garden.Properties {
	out := garden.Properties{}
	for k, v := range p {
		out[k] = v
	}
	return out
}

// resolveInContainer turns a container path into one relative to the
// root ("" is the root); relative paths start at home.
func resolveInContainer(p, home string) string {
	if !path.IsAbs(p) {
		p = path.Join(home, p)
	}
	return cleanRel(p)
}

func (c *container) StreamIn(ctx context.Context, spec garden.StreamInSpec) error {
	root, err := c.root()
	if err != nil {
		return fmt.Errorf("stream-in: %w", err)
	}
	defer root.Close()
	u, err := lookupUser(root, spec.User)
	if err != nil {
		return fmt.Errorf("stream-in: %w", err)
	}
	o := owner{uid: int(u.UID), gid: int(u.GID)}
	for _, g := range u.Groups {
		o.groups = append(o.groups, int(g))
	}
	dest := resolveInContainer(spec.Path, u.Home)
	if err := extractTarInRoot(root, dest, spec.TarStream, o); err != nil {
		return fmt.Errorf("stream-in: error streaming in: %w", err)
	}
	return nil
}

func (c *container) StreamOut(ctx context.Context, spec garden.StreamOutSpec) (io.ReadCloser, error) {
	root, err := c.root()
	if err != nil {
		return nil, fmt.Errorf("stream-out: %w", err)
	}
	u, err := lookupUser(root, spec.User)
	if err != nil {
		root.Close()
		return nil, fmt.Errorf("stream-out: %w", err)
	}
	src := resolveInContainer(spec.Path, u.Home)
	name := src
	if name == "" {
		name = "."
	}
	if _, err := root.Lstat(name); err != nil {
		root.Close()
		return nil, fmt.Errorf("stream-out: %s: %w", spec.Path, errors.Unwrap(err))
	}
	pr, pw := io.Pipe()
	go func() {
		defer root.Close()
		pw.CloseWithError(writeTar(root, src, strings.HasSuffix(spec.Path, "/"), pw))
	}()
	return pr, nil
}

func (c *container) CurrentBandwidthLimits(context.Context) (garden.BandwidthLimits, error) {
	// Accepted, never enforced: report none, as upstream does.
	return garden.BandwidthLimits{}, nil
}

func (c *container) CurrentCPULimits(context.Context) (garden.CPULimits, error) {
	return garden.CPULimits{LimitInShares: cpuShares(c.st.Spec.Limits.CPU)}, nil
}

func (c *container) CurrentDiskLimits(context.Context) (garden.DiskLimits, error) {
	return c.st.Spec.Limits.Disk, nil
}

func (c *container) CurrentMemoryLimits(context.Context) (garden.MemoryLimits, error) {
	return c.st.Spec.Limits.Memory, nil
}

func (c *container) NetIn(ctx context.Context, hostPort, containerPort uint32) (uint32, uint32, error) {
	if hostPort > 65535 || containerPort > 65535 {
		return 0, 0, fmt.Errorf("net-in %d:%d: ports must be at most 65535", hostPort, containerPort)
	}
	b := c.b
	b.mu.Lock()
	var err error
	if hostPort == 0 {
		var p int
		p, err = b.ports.acquire()
		hostPort = uint32(p)
	} else {
		err = b.ports.claim(int(hostPort))
	}
	b.mu.Unlock()
	if err != nil {
		return 0, 0, fmt.Errorf("net-in: %w", err)
	}
	if containerPort == 0 {
		containerPort = hostPort
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := b.net.netIn(c.ip(), c.st.IPOffset, &c.st.Chains, hostPort, containerPort); err != nil {
		b.mu.Lock()
		b.ports.release(int(hostPort))
		b.mu.Unlock()
		_ = c.saveLocked()
		return 0, 0, fmt.Errorf("net-in: %w", err)
	}
	c.st.MappedPorts = append(c.st.MappedPorts, garden.PortMapping{HostPort: hostPort, ContainerPort: containerPort})
	data, _ := json.Marshal(c.st.MappedPorts)
	c.st.Properties[garden.PropertyMappedPorts] = string(data)
	return hostPort, containerPort, c.saveLocked()
}

func (c *container) NetOut(ctx context.Context, rule garden.NetOutRule) error {
	return c.BulkNetOut(ctx, []garden.NetOutRule{rule})
}

func (c *container) BulkNetOut(ctx context.Context, rules []garden.NetOutRule) error {
	for _, r := range rules {
		if _, err := netOutRules(r); err != nil {
			return fmt.Errorf("net-out: %w", err)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.b.net.netOut(c.ip(), c.st.IPOffset, &c.st.Chains, rules); err != nil {
		_ = c.saveLocked()
		return fmt.Errorf("net-out: %w", err)
	}
	c.st.NetOut = append(c.st.NetOut, rules...)
	return c.saveLocked()
}

func (c *container) Metrics(ctx context.Context) (garden.Metrics, error) {
	mem, cpu, pid, err := c.st.Cgroups.stats()
	if err != nil {
		return garden.Metrics{}, err
	}
	disk := diskUsage(filepath.Join(c.st.Overlay.Layer, "upper"))
	imageSize := c.b.images.size(c.st.Image.Dir)
	return garden.Metrics{
		MemoryStat: mem,
		CPUStat:    cpu,
		DiskStat: garden.ContainerDiskStat{
			TotalBytesUsed: disk.bytes + imageSize.bytes, TotalInodesUsed: disk.inodes + imageSize.inodes,
			ExclusiveBytesUsed: disk.bytes, ExclusiveInodesUsed: disk.inodes,
		},
		PidStat: pid,
		Age:     time.Since(c.st.CreatedAt),
	}, nil
}

type usage struct{ bytes, inodes uint64 }

// diskUsage walks dir adding up allocated bytes and inodes.
func diskUsage(dir string) usage {
	var u usage
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		u.inodes++
		if fi, err := d.Info(); err == nil {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				u.bytes += uint64(st.Blocks) * 512
			}
		}
		return nil
	})
	return u
}

func (c *container) SetGraceTime(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.st.GraceTime = d
	c.st.Properties[garden.PropertyGraceTime] = strconv.FormatInt(int64(d), 10)
	return c.saveLocked()
}

func (c *container) Properties(context.Context) (garden.Properties, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return copyProps(c.st.Properties), nil
}

func (c *container) Property(_ context.Context, name string) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.st.Properties[name]
	if !ok {
		return "", fmt.Errorf("property does not exist: %s", name)
	}
	return v, nil
}

func (c *container) SetProperty(_ context.Context, name, value string) error {
	if name == "" {
		return errors.New("property name must not be empty")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.st.Properties[name] = value
	return c.saveLocked()
}

func (c *container) RemoveProperty(_ context.Context, name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.st.Properties, name)
	return c.saveLocked()
}

// processIDPattern keeps process IDs usable as URL path segments and
// directory names.
var processIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// exitedProcessTTL is how long an exited process's status stays
// attachable.
const exitedProcessTTL = 10 * time.Minute

func (c *container) Run(ctx context.Context, spec garden.ProcessSpec, pio garden.ProcessIO) (garden.Process, error) {
	if spec.Image.URI != "" {
		return nil, errors.New("processes with their own image (peas) are not supported")
	}
	if len(spec.BindMounts) > 0 {
		return nil, errors.New("Running a process with bind mounts and no image provided is not allowed")
	}
	if spec.OverrideContainerLimits != nil {
		return nil, errors.New("process limits are only supported for peas, which are not supported")
	}
	if spec.Path == "" {
		return nil, errors.New("process path must not be empty")
	}
	if spec.ID == "" {
		spec.ID = uuid.NewString()
	}
	if !processIDPattern.MatchString(spec.ID) {
		return nil, fmt.Errorf("process ID %q: must match %s", spec.ID, processIDPattern)
	}
	root, err := c.root()
	if err != nil {
		return nil, err
	}
	u, err := lookupUser(root, spec.User)
	if err != nil {
		root.Close()
		return nil, err
	}
	cwd := spec.Dir
	if cwd == "" {
		cwd = u.Home
	}
	if !path.IsAbs(cwd) {
		root.Close()
		return nil, fmt.Errorf("process dir %q: must be absolute", cwd)
	}
	// The working directory is created for the user if missing.
	err = mkdirAllAs(root, cleanRel(cwd), owner{uid: int(u.UID), gid: int(u.GID)})
	root.Close()
	if err != nil {
		return nil, fmt.Errorf("process dir %s: %w", cwd, err)
	}

	c.mu.Lock()
	for id, p := range c.procs {
		if p.exitedNow() && time.Since(p.exited) > exitedProcessTTL {
			delete(c.procs, id)
		}
	}
	if p, ok := c.procs[spec.ID]; ok && !p.exitedNow() {
		c.mu.Unlock()
		return nil, fmt.Errorf("process ID '%s' already in use", spec.ID)
	}
	// Reserve the ID while starting.
	placeholder := &process{id: spec.ID, done: make(chan struct{})}
	c.procs[spec.ID] = placeholder
	imageEnv, containerEnv := c.st.Image.Env, c.st.Spec.Env
	c.mu.Unlock()

	p, err := c.startProcess(spec, u, cwd, mergeEnv(imageEnv, containerEnv), pio)
	c.mu.Lock()
	if err != nil {
		delete(c.procs, spec.ID)
	} else {
		c.procs[spec.ID] = p
	}
	c.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return p, nil
}

func (c *container) startProcess(spec garden.ProcessSpec, u execUser, cwd string, baseEnv []string, pio garden.ProcessIO) (*process, error) {
	dir := filepath.Join(c.dir, "processes", spec.ID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	// The process inherits garden-init's capabilities, seccomp filter and
	// no_new_privs; a user other than root loses the capabilities when
	// its uid is set, as under runc.
	ss := spawnSpec{
		Path:    spec.Path,
		Args:    append([]string{spec.Path}, spec.Args...),
		Env:     processEnv(baseEnv, nil, spec.Env, spec.User, u.UID),
		Dir:     cwd,
		UID:     u.UID,
		GID:     u.GID,
		Groups:  u.Groups,
		Rlimits: rlimits(spec.Limits),
	}
	var term [2]*os.File
	if spec.TTY != nil {
		root, err := c.root()
		if err != nil {
			return nil, err
		}
		term[0], term[1], err = openPty(root, u.UID)
		root.Close()
		if err != nil {
			return nil, err
		}
		if err := setWinsize(term[0], windowSize(spec.TTY)); err != nil {
			term[0].Close()
			term[1].Close()
			return nil, fmt.Errorf("terminal size: %w", err)
		}
		ss.TTY = true
	}
	init, initStart := c.st.InitPID, c.st.InitStart
	initAlive := func() bool { return procStartTime(init) == initStart }
	p, err := startProcess(c.dir, dir, spec.ID, ss, term, pio, initAlive)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	go func() {
		<-p.done
		_ = os.RemoveAll(dir)
	}()
	return p, nil
}

// restoreProcesses adopts the processes of a restored container that still
// run, so they can be attached again; the others' directories go.
func (c *container) restoreProcesses(logger *slog.Logger) {
	root := filepath.Join(c.dir, "processes")
	entries, _ := os.ReadDir(root)
	for _, e := range entries {
		dir := filepath.Join(root, e.Name())
		p, err := restoreProcess(dir)
		if err != nil {
			_ = os.RemoveAll(dir)
			continue
		}
		c.mu.Lock()
		c.procs[p.id] = p
		c.mu.Unlock()
		logger.Info("restored process", "handle", c.st.Handle, "process_id", p.id)
		go func() {
			<-p.done
			_ = os.RemoveAll(dir)
		}()
	}
}

// rlimits maps Garden's rlimits (soft = hard) onto the kernel's.
func rlimits(l garden.ResourceLimits) []spawnRlimit {
	var out []spawnRlimit
	add := func(resource int, name string, v *uint64) {
		if v != nil {
			out = append(out, spawnRlimit{Resource: resource, Name: name, Hard: *v, Soft: *v})
		}
	}
	add(unix.RLIMIT_AS, "AS", l.As)
	add(unix.RLIMIT_CORE, "CORE", l.Core)
	add(unix.RLIMIT_CPU, "CPU", l.Cpu)
	add(unix.RLIMIT_DATA, "DATA", l.Data)
	add(unix.RLIMIT_FSIZE, "FSIZE", l.Fsize)
	add(unix.RLIMIT_LOCKS, "LOCKS", l.Locks)
	add(unix.RLIMIT_MEMLOCK, "MEMLOCK", l.Memlock)
	add(unix.RLIMIT_MSGQUEUE, "MSGQUEUE", l.Msgqueue)
	add(unix.RLIMIT_NICE, "NICE", l.Nice)
	add(unix.RLIMIT_NOFILE, "NOFILE", l.Nofile)
	add(unix.RLIMIT_NPROC, "NPROC", l.Nproc)
	add(unix.RLIMIT_RSS, "RSS", l.Rss)
	add(unix.RLIMIT_RTPRIO, "RTPRIO", l.Rtprio)
	add(unix.RLIMIT_SIGPENDING, "SIGPENDING", l.Sigpending)
	add(unix.RLIMIT_STACK, "STACK", l.Stack)
	return out
}

func (c *container) Attach(ctx context.Context, id string, pio garden.ProcessIO) (garden.Process, error) {
	c.mu.Lock()
	p, ok := c.procs[id]
	c.mu.Unlock()
	if !ok || p.pid == 0 {
		return nil, garden.ProcessNotFoundError{ProcessID: id}
	}
	p.attach(pio)
	if pio.Stdin != nil && p.stdin != nil {
		go p.copyStdin(pio.Stdin, false)
	}
	return attachment{p}, nil
}

// started is the container's processes that have started (not the
// placeholders of those starting).
func (c *container) started() []*process {
	c.mu.Lock()
	defer c.mu.Unlock()
	procs := make([]*process, 0, len(c.procs))
	for _, p := range c.procs {
		if p.pid != 0 {
			procs = append(procs, p)
		}
	}
	return procs
}

// waitProcesses waits for every process of the container to end after
// they were killed.
func (c *container) waitProcesses(timeout time.Duration) {
	deadline := time.After(timeout)
	for _, p := range c.started() {
		select {
		case <-p.done:
		case <-deadline:
			return
		}
	}
}
