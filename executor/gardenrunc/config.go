// Package gardenrunc is gavel's Garden backend on runc: each container is
// an OCI bundle in the depot, started with `runc run --detach` around a
// pid 1 named garden-init, with an overlayfs copy-on-write layer over its
// image, cgroup limits, and a veth on a bridge with an address from a pool.
// Processes are forked by garden-init on the server's request (spawn.go),
// with the init's confinement and no runc start; StreamIn/StreamOut move tar streams
// resolved inside the container's root; NetIn and NetOut are iptables
// rules. Containers outlive the server: their state lives in the depot and
// Start restores them.
//
// What it owns on the host, all named from Config.Tag so several servers
// (or test runs) never collide: the depot and runc root directories, the
// bridge <tag>br0 and veths <tag>h<n>, iptables chains <tag>-*, cgroups
// under <server's cgroup>/<Config.CgroupParent>/<tag>-<handle>.
//
// Limits and security: memory (+ swap when the kernel accounts it), CPU
// shares, pids; disk limits put the upper layer on a tmpfs of that size
// (writes then also count as memory); Docker's default capabilities, a
// seccomp profile denying the kernel-administration system calls, masked
// /proc paths, a read-only /sys, no_new_privs. There is no user namespace:
// container root is host root confined by the above, as in Docker's
// default.
package gardenrunc

import (
	"errors"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"regexp"
	"time"
)

// Defaults for Config.
const (
	DefaultDepot         = "/var/lib/gavel/garden/depot"
	DefaultRuncRoot      = "/run/gavel/garden/runc"
	DefaultRuncBinary    = "runc"
	DefaultNetworkPool   = "10.254.0.0/22"
	DefaultTag           = "gvl"
	DefaultCgroupParent  = "gavel-garden"
	DefaultPortPoolStart = 61001
	DefaultPortPoolSize  = 4534
	DefaultExternalIP    = "127.0.0.1"
	DefaultMTU           = 1500
	// DefaultStopTimeout is how long Stop(false) waits after SIGTERM.
	DefaultStopTimeout = 10 * time.Second
)

// Config configures the runc backend. Zero fields take the defaults.
type Config struct {
	// Depot holds one directory per container (bundle, overlay layers,
	// state).
	Depot string
	// RuncRoot is runc's --root (container state, on tmpfs ideally).
	RuncRoot string
	// RuncBinary is the runc executable.
	RuncBinary string
	// DefaultRootFS is the rootfs directory used when a spec names none.
	DefaultRootFS string
	// Preloaded maps preloaded:NAME image URIs to rootfs directories.
	Preloaded map[string]string
	// ImageStore holds OCI image layouts for docker:///NAME[:TAG] URIs:
	// <store>/<NAME>/<TAG> (TAG defaults to "latest").
	ImageStore string
	// NetworkPool is the container address pool; the first address is
	// the bridge's (the gateway).
	NetworkPool string
	// Tag prefixes every host resource name (bridge, veths, iptables
	// chains); at most 5 characters of [a-z0-9].
	Tag string
	// ExternalIP is where NetIn host ports are reachable.
	ExternalIP string
	// PortPoolStart and PortPoolSize bound the NetIn host ports handed
	// out when a request asks for port 0.
	PortPoolStart, PortPoolSize int
	// MaxContainers caps the containers (0: the pool's size).
	MaxContainers int
	// DNSServers replace the host's resolv.conf nameservers.
	DNSServers []string
	// AllowHostAccess lets containers open connections to the host.
	AllowHostAccess bool
	// DenyNetworks are CIDRs containers may not reach unless a NetOut
	// rule allows them.
	DenyNetworks []string
	// AllowPrivileged permits privileged containers.
	AllowPrivileged bool
	// CgroupParent is the cgroup (relative to the server's own) under
	// which containers get theirs.
	CgroupParent string
	// InitBinary replaces the built-in garden-init: a static executable
	// that reaps, never exits, and starts processes over the spawn socket
	// it gets as fd 3 (the protocol of spawn.go and initsrc/).
	InitBinary string
	// MTU of the container interfaces.
	MTU int
	// StopTimeout is how long Stop(false) waits after SIGTERM.
	StopTimeout time.Duration
	// DestroyOnStart destroys the depot's containers at Start instead of
	// restoring them.
	DestroyOnStart bool
}

// WithDefaults returns c with empty fields set.
func (c Config) WithDefaults() Config {
	set := func(s *string, d string) {
		if *s == "" {
			*s = d
		}
	}
	set(&c.Depot, DefaultDepot)
	set(&c.RuncRoot, DefaultRuncRoot)
	set(&c.RuncBinary, DefaultRuncBinary)
	set(&c.NetworkPool, DefaultNetworkPool)
	set(&c.Tag, DefaultTag)
	set(&c.ExternalIP, DefaultExternalIP)
	set(&c.CgroupParent, DefaultCgroupParent)
	if c.PortPoolStart == 0 {
		c.PortPoolStart = DefaultPortPoolStart
	}
	if c.PortPoolSize == 0 {
		c.PortPoolSize = DefaultPortPoolSize
	}
	if c.MTU == 0 {
		c.MTU = DefaultMTU
	}
	if c.StopTimeout == 0 {
		c.StopTimeout = DefaultStopTimeout
	}
	return c
}

var tagPattern = regexp.MustCompile(`^[a-z][a-z0-9]{0,4}$`)

// Validate reports the first invalid field, named by its flag.
func (c Config) Validate() error {
	c = c.WithDefaults()
	for name, p := range map[string]string{"depot": c.Depot, "runc-root": c.RuncRoot} {
		if !filepath.IsAbs(p) {
			return fmt.Errorf("%s %q: must be an absolute path", name, p)
		}
	}
	if c.DefaultRootFS != "" && !filepath.IsAbs(c.DefaultRootFS) {
		return fmt.Errorf("default-rootfs %q: must be an absolute path", c.DefaultRootFS)
	}
	for name, dir := range c.Preloaded {
		if !filepath.IsAbs(dir) {
			return fmt.Errorf("preloaded rootfs %s=%q: must be an absolute path", name, dir)
		}
	}
	if _, err := exec.LookPath(c.RuncBinary); err != nil {
		return fmt.Errorf("runc-binary %q: %w", c.RuncBinary, err)
	}
	_, pool, err := net.ParseCIDR(c.NetworkPool)
	if err != nil || pool.IP.To4() == nil {
		return fmt.Errorf("network-pool %q: must be an IPv4 CIDR", c.NetworkPool)
	}
	if ones, _ := pool.Mask.Size(); ones > 29 || ones < 16 {
		return fmt.Errorf("network-pool %q: prefix must be between /16 and /29", c.NetworkPool)
	}
	if !tagPattern.MatchString(c.Tag) {
		return fmt.Errorf("tag %q: must be 1-5 characters of [a-z0-9], starting with a letter", c.Tag)
	}
	if ip := net.ParseIP(c.ExternalIP); ip == nil || ip.To4() == nil {
		return fmt.Errorf("external-ip %q: must be an IPv4 address", c.ExternalIP)
	}
	if c.PortPoolStart < 1024 || c.PortPoolSize < 1 || c.PortPoolStart+c.PortPoolSize > 65536 {
		return fmt.Errorf("port pool %d+%d: must lie within 1024-65535", c.PortPoolStart, c.PortPoolSize)
	}
	if c.MaxContainers < 0 {
		return errors.New("max-containers: must not be negative")
	}
	for _, d := range c.DNSServers {
		if net.ParseIP(d) == nil {
			return fmt.Errorf("dns-server %q: not an IP address", d)
		}
	}
	for _, n := range c.DenyNetworks {
		if _, _, err := net.ParseCIDR(n); err != nil {
			return fmt.Errorf("deny-network %q: %w", n, err)
		}
	}
	if c.MTU < 576 || c.MTU > 9000 {
		return fmt.Errorf("mtu %d: must be between 576 and 9000", c.MTU)
	}
	if c.StopTimeout < 0 {
		return errors.New("stop-timeout: must not be negative")
	}
	return nil
}
