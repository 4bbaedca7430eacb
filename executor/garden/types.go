package garden

import (
	"io"
	"net"
	"time"
)

// Properties are the string key/value pairs attached to a container. Keys
// starting with "garden." are maintained by the server.
type Properties map[string]string

// Well-known properties a server maintains on every container.
const (
	// PropertyState is "created" once Create has fully completed. List
	// hides containers without it unless the filter names this key.
	PropertyState = "garden.state"
	// StateCreated is the value of PropertyState for usable containers.
	StateCreated = "created"
	// StateAll, as the value of a PropertyState filter, lists every
	// container whatever its state.
	StateAll = "all"
	// PropertyGraceTime holds the container's grace time in decimal
	// nanoseconds.
	PropertyGraceTime = "garden.grace-time"
	// Networking properties.
	PropertyContainerIP  = "garden.network.container-ip"
	PropertyHostIP       = "garden.network.host-ip"
	PropertyExternalIP   = "garden.network.external-ip"
	PropertyMappedPorts  = "garden.network.mapped-ports"
	PropertyNetInterface = "garden.network.interface"
)

// ImageRef names a root filesystem image. An empty URI means the server's
// default rootfs.
type ImageRef struct {
	URI      string `json:"uri,omitempty"`
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
}

// BindMountMode is the access mode of a bind mount.
type BindMountMode uint8

// Bind mount modes.
const (
	BindMountModeRO BindMountMode = 0
	BindMountModeRW BindMountMode = 1
)

// BindMountOrigin says where a bind mount's source path lives.
type BindMountOrigin uint8

// Bind mount origins.
const (
	BindMountOriginHost      BindMountOrigin = 0
	BindMountOriginContainer BindMountOrigin = 1
)

// BindMount mounts SrcPath at DstPath inside the container.
type BindMount struct {
	SrcPath string          `json:"src_path,omitempty"`
	DstPath string          `json:"dst_path,omitempty"`
	Mode    BindMountMode   `json:"mode,omitempty"`
	Origin  BindMountOrigin `json:"origin,omitempty"`
}

// BandwidthLimits are accepted and reported, never enforced by gavel.
type BandwidthLimits struct {
	RateInBytesPerSecond      uint64 `json:"rate,omitempty"`
	BurstRateInBytesPerSecond uint64 `json:"burst,omitempty"`
}

// CPULimits sets the container's CPU shares. Weight wins over
// LimitInShares when both are set.
type CPULimits struct {
	Weight        uint64 `json:"weight,omitempty"`
	LimitInShares uint64 `json:"limit_in_shares,omitempty"`
}

// DiskLimitScope says what counts toward a disk limit.
type DiskLimitScope uint8

// Disk limit scopes.
const (
	// DiskLimitScopeTotal counts the image and the container's writes.
	DiskLimitScopeTotal DiskLimitScope = 0
	// DiskLimitScopeExclusive counts only the container's own writes.
	DiskLimitScopeExclusive DiskLimitScope = 1
)

// DiskLimits bounds the container's filesystem usage.
type DiskLimits struct {
	InodeSoft uint64         `json:"inode_soft,omitempty"`
	InodeHard uint64         `json:"inode_hard,omitempty"`
	ByteSoft  uint64         `json:"byte_soft,omitempty"`
	ByteHard  uint64         `json:"byte_hard,omitempty"`
	Scope     DiskLimitScope `json:"scope,omitempty"`
}

// MemoryLimits bounds the container's memory; exceeding it OOM-kills.
type MemoryLimits struct {
	LimitInBytes uint64 `json:"limit_in_bytes,omitempty"`
}

// PidLimits bounds the number of processes; 0 means unlimited.
type PidLimits struct {
	Max uint64 `json:"max,omitempty"`
}

// Limits are a container's resource limits, applied at Create.
type Limits struct {
	Bandwidth BandwidthLimits `json:"bandwidth_limits,omitempty"`
	CPU       CPULimits       `json:"cpu_limits,omitempty"`
	Disk      DiskLimits      `json:"disk_limits,omitempty"`
	Memory    MemoryLimits    `json:"memory_limits,omitempty"`
	Pid       PidLimits       `json:"pid_limits,omitempty"`
}

// NetIn maps a host port to a container port at Create time. Both keys are
// always sent, as upstream does.
type NetIn struct {
	HostPort      uint32 `json:"host_port"`
	ContainerPort uint32 `json:"container_port"`
}

// ContainerSpec is the Create request.
type ContainerSpec struct {
	// Handle names the container; the server generates one if empty.
	// Stick to [A-Za-z0-9._-]: handles travel unescaped in URL paths.
	Handle string `json:"handle,omitempty"`
	// GraceTime is how long the container may sit idle (no request naming
	// it in flight) before the server destroys it; 0 takes the server's
	// default, which is usually "never".
	GraceTime time.Duration `json:"grace_time,omitempty"`
	// RootFSPath is the deprecated spelling of Image.URI.
	RootFSPath string   `json:"rootfs,omitempty"`
	Image      ImageRef `json:"image,omitempty"`
	// BindMounts are mounted after the rootfs.
	BindMounts []BindMount `json:"bind_mounts,omitempty"`
	// Network asks for a subnet ("10.254.1.0/24") or a fixed IP
	// ("10.254.1.7/24"); empty takes the next free address of the pool.
	Network    string     `json:"network,omitempty"`
	Properties Properties `json:"properties,omitempty"`
	// Env is appended to the image's environment for every process.
	Env        []string `json:"env,omitempty"`
	Privileged bool     `json:"privileged,omitempty"`
	Limits     Limits   `json:"limits,omitempty"`
	// NetOut and NetIn are applied during Create, exactly as BulkNetOut
	// and NetIn calls made afterwards would be.
	NetOut []NetOutRule `json:"netout_rules,omitempty"`
	NetIn  []NetIn      `json:"netin,omitempty"`
}

// ResourceLimits are per-process rlimits; each set value is used as both
// the soft and the hard limit.
type ResourceLimits struct {
	As         *uint64 `json:"as,omitempty"`
	Core       *uint64 `json:"core,omitempty"`
	Cpu        *uint64 `json:"cpu,omitempty"`
	Data       *uint64 `json:"data,omitempty"`
	Fsize      *uint64 `json:"fsize,omitempty"`
	Locks      *uint64 `json:"locks,omitempty"`
	Memlock    *uint64 `json:"memlock,omitempty"`
	Msgqueue   *uint64 `json:"msgqueue,omitempty"`
	Nice       *uint64 `json:"nice,omitempty"`
	Nofile     *uint64 `json:"nofile,omitempty"`
	Nproc      *uint64 `json:"nproc,omitempty"`
	Rss        *uint64 `json:"rss,omitempty"`
	Rtprio     *uint64 `json:"rtprio,omitempty"`
	Sigpending *uint64 `json:"sigpending,omitempty"`
	Stack      *uint64 `json:"stack,omitempty"`
}

// ProcessLimits override the container's limits for one process (peas
// only; gavel's runc backend refuses them).
type ProcessLimits struct {
	CPU    CPULimits    `json:"cpu_limits,omitempty"`
	Memory MemoryLimits `json:"memory_limits,omitempty"`
}

// WindowSize is a terminal size.
type WindowSize struct {
	Columns uint16 `json:"columns,omitempty"`
	Rows    uint16 `json:"rows,omitempty"`
}

// TTYSpec asks for a pseudo-terminal. Its presence in a ProcessSpec is
// what allocates one; a nil WindowSize means 80x24.
type TTYSpec struct {
	WindowSize *WindowSize `json:"window_size,omitempty"`
}

// ProcessSpec is the Run request.
type ProcessSpec struct {
	// ID names the process; the server generates one if empty. Running a
	// second process with the ID of a live one fails.
	ID string `json:"id,omitempty"`
	// Path is the executable, looked up in the process's PATH when not
	// absolute.
	Path string   `json:"path,omitempty"`
	Args []string `json:"args,omitempty"`
	Env  []string `json:"env,omitempty"`
	// Dir is the working directory, by default the user's home.
	Dir string `json:"dir,omitempty"`
	// User is "name", "uid:gid", "name:group" or "" for root.
	User   string         `json:"user,omitempty"`
	Limits ResourceLimits `json:"rlimits,omitempty"`
	// OverrideContainerLimits gives a pea its own cgroup limits.
	OverrideContainerLimits *ProcessLimits `json:"limits,omitempty"`
	TTY                     *TTYSpec       `json:"tty,omitempty"`
	// Image, when set, runs the process as a "pea" in its own rootfs.
	Image      ImageRef    `json:"image,omitempty"`
	BindMounts []BindMount `json:"bind_mounts,omitempty"`
}

// ProcessIO connects a process's standard streams. Nil fields are not
// connected: a nil Stdin leaves the process's stdin open until it exits.
type ProcessIO struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
}

// Signal is a signal a client may send to a process.
type Signal int

// Signals.
const (
	SignalTerminate Signal = 0 // SIGTERM
	SignalKill      Signal = 1 // SIGKILL
)

// ProcessStreamSource names a stream in a process payload.
type ProcessStreamSource int

// Stream sources; only stdin travels on the wire.
const (
	ProcessStreamSourceStdin  ProcessStreamSource = 0
	ProcessStreamSourceStdout ProcessStreamSource = 1
	ProcessStreamSourceStderr ProcessStreamSource = 2
)

// StreamInSpec is a StreamIn request: TarStream (uncompressed tar) is
// extracted under Path, created if missing, as User ("" is root). A
// relative Path is relative to the user's home.
type StreamInSpec struct {
	Path      string
	User      string
	TarStream io.Reader
}

// StreamOutSpec is a StreamOut request. Path "dir" yields entries
// "dir/..." and "dir/" yields "./...".
type StreamOutSpec struct {
	Path string
	User string
}

// PortMapping is one NetIn mapping.
type PortMapping struct {
	HostPort      uint32
	ContainerPort uint32
}

// ContainerInfo describes a container. The JSON keys are the Go field
// names, as upstream.
type ContainerInfo struct {
	State         string
	Events        []string
	HostIP        string
	ContainerIP   string
	ContainerIPv6 string
	ExternalIP    string
	ContainerPath string
	ProcessIDs    []string
	Properties    Properties
	MappedPorts   []PortMapping
}

// Container states.
const (
	StateActive  = "active"
	StateStopped = "stopped"
)

// EventOutOfMemory is the ContainerInfo event recorded on an OOM kill.
const EventOutOfMemory = "Out of memory"

// ContainerInfoEntry is one BulkInfo result.
type ContainerInfoEntry struct {
	Info ContainerInfo
	Err  *Error
}

// ContainerMemoryStat mirrors cgroup memory.stat, plus the figure Diego
// uses against the limit.
type ContainerMemoryStat struct {
	ActiveAnon              uint64 `json:"active_anon"`
	ActiveFile              uint64 `json:"active_file"`
	Cache                   uint64 `json:"cache"`
	HierarchicalMemoryLimit uint64 `json:"hierarchical_memory_limit"`
	InactiveAnon            uint64 `json:"inactive_anon"`
	InactiveFile            uint64 `json:"inactive_file"`
	MappedFile              uint64 `json:"mapped_file"`
	Pgfault                 uint64 `json:"pgfault"`
	Pgmajfault              uint64 `json:"pgmajfault"`
	Pgpgin                  uint64 `json:"pgpgin"`
	Pgpgout                 uint64 `json:"pgpgout"`
	Rss                     uint64 `json:"rss"`
	TotalActiveAnon         uint64 `json:"total_active_anon"`
	TotalActiveFile         uint64 `json:"total_active_file"`
	TotalCache              uint64 `json:"total_cache"`
	TotalInactiveAnon       uint64 `json:"total_inactive_anon"`
	TotalInactiveFile       uint64 `json:"total_inactive_file"`
	TotalMappedFile         uint64 `json:"total_mapped_file"`
	TotalPgfault            uint64 `json:"total_pgfault"`
	TotalPgmajfault         uint64 `json:"total_pgmajfault"`
	TotalPgpgin             uint64 `json:"total_pgpgin"`
	TotalPgpgout            uint64 `json:"total_pgpgout"`
	TotalRss                uint64 `json:"total_rss"`
	TotalUnevictable        uint64 `json:"total_unevictable"`
	Unevictable             uint64 `json:"unevictable"`
	Swap                    uint64 `json:"swap"`
	HierarchicalMemswLimit  uint64 `json:"hierarchical_memsw_limit"`
	TotalSwap               uint64 `json:"total_swap"`
	Anon                    uint64 `json:"anon"`
	File                    uint64 `json:"file"`
	SwapCached              uint64 `json:"swapcached"`
	// TotalUsageTowardLimit is rss + cache + swap - inactive file: what
	// the kernel weighs against the memory limit.
	TotalUsageTowardLimit uint64
}

// ContainerCPUStat is cumulative CPU time in nanoseconds.
type ContainerCPUStat struct {
	Usage  uint64
	User   uint64
	System uint64
}

// ContainerDiskStat is filesystem usage in bytes and inodes.
type ContainerDiskStat struct {
	TotalBytesUsed      uint64
	TotalInodesUsed     uint64
	ExclusiveBytesUsed  uint64
	ExclusiveInodesUsed uint64
}

// ContainerNetworkStat is interface traffic.
type ContainerNetworkStat struct {
	RxBytes uint64
	TxBytes uint64
}

// ContainerPidStat counts processes; Max 0 is unlimited.
type ContainerPidStat struct {
	Current uint64
	Max     uint64
}

// Metrics is a container's resource usage. The JSON keys are the Go field
// names, as upstream.
type Metrics struct {
	MemoryStat     ContainerMemoryStat
	CPUStat        ContainerCPUStat
	DiskStat       ContainerDiskStat
	NetworkStat    *ContainerNetworkStat
	PidStat        ContainerPidStat
	Age            time.Duration
	CPUEntitlement uint64
}

// ContainerMetricsEntry is one BulkMetrics result.
type ContainerMetricsEntry struct {
	Metrics Metrics
	Err     *Error
}

// Capacity is what the server can host.
type Capacity struct {
	MemoryInBytes          uint64 `json:"memory_in_bytes,omitempty"`
	DiskInBytes            uint64 `json:"disk_in_bytes,omitempty"`
	SchedulableDiskInBytes uint64 `json:"schedulable_disk_in_bytes,omitempty"`
	MaxContainers          uint64 `json:"max_containers,omitempty"`
}

// Protocol is a NetOutRule protocol.
type Protocol uint8

// Protocols.
const (
	ProtocolAll    Protocol = 0
	ProtocolTCP    Protocol = 1
	ProtocolUDP    Protocol = 2
	ProtocolICMP   Protocol = 3
	ProtocolICMPv6 Protocol = 4
)

// String names the protocol as iptables spells it.
func (p Protocol) String() string {
	switch p {
	case ProtocolAll:
		return "all"
	case ProtocolTCP:
		return "tcp"
	case ProtocolUDP:
		return "udp"
	case ProtocolICMP:
		return "icmp"
	case ProtocolICMPv6:
		return "icmpv6"
	}
	return "unknown"
}

// IPRange is an inclusive range of addresses; a nil end means Start only.
type IPRange struct {
	Start net.IP `json:"start,omitempty"`
	End   net.IP `json:"end,omitempty"`
}

// IPRangeFromIP is the range holding only ip.
func IPRangeFromIP(ip net.IP) IPRange { return IPRange{Start: ip, End: ip} }

// IPRangeFromIPNet is the range covering n.
func IPRangeFromIPNet(n *net.IPNet) IPRange {
	start := n.IP.Mask(n.Mask)
	end := make(net.IP, len(start))
	for i := range start {
		end[i] = start[i] | ^n.Mask[i]
	}
	return IPRange{Start: start, End: end}
}

// PortRange is an inclusive range of ports.
type PortRange struct {
	Start uint16 `json:"start,omitempty"`
	End   uint16 `json:"end,omitempty"`
}

// PortRangeFromPort is the range holding only port.
func PortRangeFromPort(port uint16) PortRange { return PortRange{Start: port, End: port} }

// ICMPCode is an ICMP code; nil matches any code.
type ICMPCode uint8

// ICMPControl matches ICMP packets of Type (and Code when set).
type ICMPControl struct {
	Type ICMPType  `json:"type,omitempty"`
	Code *ICMPCode `json:"code,omitempty"`
}

// ICMPType is an ICMP type.
type ICMPType uint8

// NetOutRule allows outbound traffic from the container.
type NetOutRule struct {
	Protocol Protocol     `json:"protocol,omitempty"`
	Networks []IPRange    `json:"networks,omitempty"`
	Ports    []PortRange  `json:"ports,omitempty"`
	ICMPs    *ICMPControl `json:"icmps,omitempty"`
	Log      bool         `json:"log,omitempty"`
}
