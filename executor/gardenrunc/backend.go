package gardenrunc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

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

// Count is the number of containers, including those being created.
func (b *Backend) Count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.containers) + len(b.creating)
}
