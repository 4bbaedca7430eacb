package gardenrunc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/gavel-scheduler/gavel/executor/garden"
)

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
	spawnSock, err := listenSpawn(c.dir)
	if err != nil {
		return err
	}
	err = b.runc.run(ctx, spec.Handle, c.dir, pidFile, spawnSock)
	spawnSock.Close() // garden-init holds it now
	if err != nil {
		return fmt.Errorf("start container: %w", err)
	}
	if c.st.InitPID, err = readPid(pidFile); err != nil {
		return fmt.Errorf("init: %w", err)
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
