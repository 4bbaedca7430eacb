package gardenrunc

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"time"

	"github.com/gavel-scheduler/gavel/executor/garden"
	"github.com/gavel-scheduler/gavel/internal/config"
)

// Defaults of DaemonConfig beyond the backend's.
const (
	DefaultBindSocket   = "/run/gavel/garden.sock"
	DefaultDebugAddress = "127.0.0.1:17022"
)

// DaemonConfig is the configuration of `gavel garden`: where the Garden API
// listens, the debug address, and the backend. It loads from YAML or JSON
// with these keys; every key has a flag of the same name with dashes.
type DaemonConfig struct {
	// BindSocket is the unix socket path; used unless BindIP is set.
	BindSocket string `json:"bind_socket"`
	// BindIP and BindPort serve TCP instead.
	BindIP   string `json:"bind_ip"`
	BindPort int    `json:"bind_port"`
	// DefaultGraceTime applies to containers created without one; 0
	// keeps them until destroyed.
	DefaultGraceTime config.Duration `json:"default_grace_time"`
	DebugAddress     string          `json:"debug_address"`
	LogLevel         string          `json:"log_level"`

	Depot           string            `json:"depot"`
	RuncRoot        string            `json:"runc_root"`
	RuncBinary      string            `json:"runc_binary"`
	DefaultRootFS   string            `json:"default_rootfs"`
	Preloaded       map[string]string `json:"preloaded"`
	ImageStore      string            `json:"image_store"`
	NetworkPool     string            `json:"network_pool"`
	Tag             string            `json:"tag"`
	ExternalIP      string            `json:"external_ip"`
	PortPoolStart   int               `json:"port_pool_start"`
	PortPoolSize    int               `json:"port_pool_size"`
	MaxContainers   int               `json:"max_containers"`
	DNSServers      []string          `json:"dns_servers"`
	AllowHostAccess bool              `json:"allow_host_access"`
	DenyNetworks    []string          `json:"deny_networks"`
	AllowPrivileged bool              `json:"allow_privileged"`
	CgroupParent    string            `json:"cgroup_parent"`
	InitBinary      string            `json:"init_binary"`
	MTU             int               `json:"mtu"`
	StopTimeout     config.Duration   `json:"stop_timeout"`
	// DestroyContainersOnStartup destroys what the depot holds instead of
	// restoring it.
	DestroyContainersOnStartup bool `json:"destroy_containers_on_startup"`
}

// DefaultDaemonConfig is the configuration with every default filled.
func DefaultDaemonConfig() DaemonConfig {
	b := Config{}.WithDefaults()
	return DaemonConfig{
		BindSocket: DefaultBindSocket, DebugAddress: DefaultDebugAddress, LogLevel: "info",
		Depot: b.Depot, RuncRoot: b.RuncRoot, RuncBinary: b.RuncBinary, NetworkPool: b.NetworkPool,
		Tag: b.Tag, ExternalIP: b.ExternalIP, PortPoolStart: b.PortPoolStart, PortPoolSize: b.PortPoolSize,
		CgroupParent: b.CgroupParent, MTU: b.MTU, StopTimeout: config.Duration(b.StopTimeout),
	}
}

// LoadDaemonConfig reads a YAML or JSON file over the defaults ("" reads
// nothing).
func LoadDaemonConfig(path string) (DaemonConfig, error) {
	cfg := DefaultDaemonConfig()
	if path == "" {
		return cfg, nil
	}
	err := config.Load(path, &cfg)
	return cfg, err
}

// Backend is the backend part of the configuration.
func (c DaemonConfig) Backend() Config {
	return Config{
		Depot: c.Depot, RuncRoot: c.RuncRoot, RuncBinary: c.RuncBinary, DefaultRootFS: c.DefaultRootFS,
		Preloaded: c.Preloaded, ImageStore: c.ImageStore, NetworkPool: c.NetworkPool, Tag: c.Tag,
		ExternalIP: c.ExternalIP, PortPoolStart: c.PortPoolStart, PortPoolSize: c.PortPoolSize,
		MaxContainers: c.MaxContainers, DNSServers: c.DNSServers, AllowHostAccess: c.AllowHostAccess,
		DenyNetworks: c.DenyNetworks, AllowPrivileged: c.AllowPrivileged, CgroupParent: c.CgroupParent,
		InitBinary: c.InitBinary, MTU: c.MTU, StopTimeout: time.Duration(c.StopTimeout),
		DestroyOnStart: c.DestroyContainersOnStartup,
	}
}

// Server is the API listener part of the configuration.
func (c DaemonConfig) Server() garden.ServerConfig {
	s := garden.ServerConfig{Network: "unix", Address: c.BindSocket, DefaultGraceTime: time.Duration(c.DefaultGraceTime)}
	if c.BindIP != "" {
		s.Network, s.Address = "tcp", net.JoinHostPort(c.BindIP, strconv.Itoa(c.BindPort))
	}
	return s
}

// Validate names the first bad key.
func (c DaemonConfig) Validate() error {
	switch {
	case c.BindIP != "":
		if net.ParseIP(c.BindIP) == nil {
			return fmt.Errorf("bind_ip %q: not an IP address", c.BindIP)
		}
		if c.BindPort < 0 || c.BindPort > 65535 {
			return fmt.Errorf("bind_port %d: must be 0-65535", c.BindPort)
		}
	case c.BindSocket == "":
		return errors.New("bind_socket: must be set unless bind_ip is")
	case !filepath.IsAbs(c.BindSocket):
		return fmt.Errorf("bind_socket %q: must be an absolute path", c.BindSocket)
	}
	if c.DebugAddress != "" {
		if _, _, err := net.SplitHostPort(c.DebugAddress); err != nil {
			return fmt.Errorf("debug_address %q: %w", c.DebugAddress, err)
		}
	}
	if c.DefaultGraceTime < 0 {
		return fmt.Errorf("default_grace_time %s: must not be negative", time.Duration(c.DefaultGraceTime))
	}
	if err := c.Server().Validate(); err != nil {
		return err
	}
	return c.Backend().Validate()
}
