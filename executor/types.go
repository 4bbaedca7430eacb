package executor

import (
	"maps"
	"slices"
	"time"

	"github.com/gavel-scheduler/gavel/proto/models"
)

// State is where a container is in its lifecycle.
type State string

// Container states. RESERVED holds resources only; INITIALIZING creates the
// Garden container; CREATED runs setup and the action until the health
// checks pass; RUNNING is healthy; COMPLETED holds a RunResult until the
// container is deleted. INITIALIZING and CREATED may go straight to
// COMPLETED.
const (
	StateReserved     State = "reserved"
	StateInitializing State = "initializing"
	StateCreated      State = "created"
	StateRunning      State = "running"
	StateCompleted    State = "completed"
)

// Resource is what one container asks for.
type Resource struct {
	MemoryMB int
	DiskMB   int
	// MaxPids bounds the container's processes; 0 is unlimited. It is a
	// limit, not accounted capacity.
	MaxPids int
}

// Resources is capacity: of the cell (TotalResources) or what is left of it
// (RemainingResources).
type Resources struct {
	MemoryMB   int
	DiskMB     int
	Containers int
}

// Tags are labels on a container, chosen by the rep (lifecycle, domain,
// process guid...). ListContainers filters on them.
type Tags map[string]string

// RunResult is how a container completed.
type RunResult struct {
	Failed        bool
	FailureReason string
	// Stopped is set when StopContainer (or DeleteContainer) ended it.
	Stopped bool
	// Retryable marks a failure of the cell rather than of the work (the
	// container could not be created), so a task may be placed elsewhere.
	Retryable bool
}

// PortMapping is one exposed container port and the host port that reaches
// it.
type PortMapping struct {
	ContainerPort uint32
	HostPort      uint32
}

// RunInfo is what to run in a container.
type RunInfo struct {
	// RootFSPath is the Garden image URI; empty is the server's default.
	RootFSPath    string
	ImageUsername string
	ImagePassword string
	Privileged    bool
	// CPUWeight is 1..100 (0 leaves Garden's default).
	CPUWeight uint32
	// Env is given to every process of the container.
	Env []*models.EnvironmentVariable
	// Ports are container ports to expose on host ports.
	Ports []uint32
	// Setup runs first; Action runs while the container lives; both may
	// be nil.
	Setup  *models.Action
	Action *models.Action
	// CheckDefinition gates RUNNING (checks) and routability (readiness
	// checks).
	CheckDefinition *models.CheckDefinition
	// StartTimeout bounds the wait for the checks to pass; 0 takes
	// Config.DefaultStartTimeout.
	StartTimeout time.Duration
	// CheckUser runs exec checks ("" is root).
	CheckUser   string
	EgressRules []*models.SecurityGroupRule
	// LogSource names the output of actions that name none.
	LogSource string
}

// AllocationRequest reserves resources for a future container.
type AllocationRequest struct {
	Guid     string
	Resource Resource
	Tags     Tags
}

// AllocationFailure is a request AllocateContainers could not satisfy.
type AllocationFailure struct {
	AllocationRequest
	Err error
}

// RunRequest turns a reservation into a running container.
type RunRequest struct {
	Guid    string
	RunInfo RunInfo
	// Tags are added to the reservation's.
	Tags Tags
}

// Container is a snapshot of one container.
type Container struct {
	Guid        string
	State       State
	Resource    Resource
	Tags        Tags
	AllocatedAt time.Time
	RunInfo     RunInfo
	RunResult   RunResult
	// ExternalIP reaches the host ports; InternalIP is the container's
	// own address. Both are set from CREATED on.
	ExternalIP string
	InternalIP string
	Ports      []PortMapping
	// Routable is whether the readiness checks pass (always true once
	// RUNNING when there are none).
	Routable bool
}

// clone copies the container's maps and slices so that a snapshot can be
// handed out while the store keeps changing its own.
func (c Container) clone() Container {
	c.Tags = maps.Clone(c.Tags)
	c.Ports = slices.Clone(c.Ports)
	return c
}

// HasTags reports whether every filter entry is among the container's tags.
func (c Container) HasTags(filter Tags) bool {
	for k, v := range filter {
		if got, ok := c.Tags[k]; !ok || got != v {
			return false
		}
	}
	return true
}
