// Package garden is gavel's Garden container API: the request and response
// types, a Client that speaks the Garden HTTP protocol over a unix socket or
// TCP, and a Server that serves that protocol over any Backend.
//
// The wire format follows upstream Garden exactly (route table, JSON keys,
// status codes, the Garden error object, the hijacked process streams), so
// upstream Garden clients work against gavel's server and this client works
// against upstream servers. The reference is
// shared/reference/garden-protocol.md; no upstream code is used.
//
// Shape of the API: a Client (or a Backend, which is the same interface
// seen from the server's side) creates, lists and destroys Containers; a
// Container runs Processes. Every call that blocks takes a context. A
// process's output is streamed to the io.Writers given in ProcessIO and
// Process.Wait returns only after all of it has been delivered.
//
// Grace time (destroying idle containers) is enforced by the Server, not by
// backends: a container's timer is paused while any request naming it is
// in flight, including a streaming Run or Attach.
package garden

import (
	"context"
	"io"
	"time"
)

// Client is a connection to a Garden server. It is safe for concurrent use.
type Client interface {
	// Ping reports whether the server is up.
	Ping(ctx context.Context) error
	// Capacity reports the server's resources.
	Capacity(ctx context.Context) (Capacity, error)
	// Create makes a container and returns once it is usable.
	Create(ctx context.Context, spec ContainerSpec) (Container, error)
	// Destroy kills every process of the container and removes it.
	// An unknown handle is a ContainerNotFoundError.
	Destroy(ctx context.Context, handle string) error
	// Containers lists the containers whose properties match every
	// filter entry. Unless the filter names PropertyState, only fully
	// created containers are listed.
	Containers(ctx context.Context, filter Properties) ([]Container, error)
	// BulkInfo returns an entry for every handle asked for; per-handle
	// failures are in the entry's Err.
	BulkInfo(ctx context.Context, handles []string) (map[string]ContainerInfoEntry, error)
	// BulkMetrics is BulkInfo for Metrics.
	BulkMetrics(ctx context.Context, handles []string) (map[string]ContainerMetricsEntry, error)
	// Lookup returns the container with the handle, or a
	// ContainerNotFoundError.
	Lookup(ctx context.Context, handle string) (Container, error)
}

// Container is one container, seen through a Client or a Backend.
type Container interface {
	// Handle is the container's name.
	Handle() string
	// Stop signals every process but the container's init: SIGKILL when
	// kill is set, otherwise SIGTERM and SIGKILL after about 10 s. The
	// container stays (state "stopped") until destroyed.
	Stop(ctx context.Context, kill bool) error
	// Info describes the container.
	Info(ctx context.Context) (ContainerInfo, error)
	// StreamIn extracts a tar stream into the container.
	StreamIn(ctx context.Context, spec StreamInSpec) error
	// StreamOut returns a tar stream of a path in the container; the
	// caller closes it.
	StreamOut(ctx context.Context, spec StreamOutSpec) (io.ReadCloser, error)
	CurrentBandwidthLimits(ctx context.Context) (BandwidthLimits, error)
	CurrentCPULimits(ctx context.Context) (CPULimits, error)
	CurrentDiskLimits(ctx context.Context) (DiskLimits, error)
	CurrentMemoryLimits(ctx context.Context) (MemoryLimits, error)
	// NetIn forwards hostPort on the server's external address to
	// containerPort. A zero hostPort takes one from the server's pool, a
	// zero containerPort means the same as the host port; the actual pair
	// is returned.
	NetIn(ctx context.Context, hostPort, containerPort uint32) (uint32, uint32, error)
	// NetOut allows outbound traffic matching rule.
	NetOut(ctx context.Context, rule NetOutRule) error
	// BulkNetOut applies several NetOut rules at once.
	BulkNetOut(ctx context.Context, rules []NetOutRule) error
	// Run starts a process. ctx bounds starting it, not its life: the
	// process runs until it exits or is signalled, and its output goes to
	// pio until then.
	Run(ctx context.Context, spec ProcessSpec, pio ProcessIO) (Process, error)
	// Attach connects to a running process (or one that has exited but
	// whose exit status is still known). Every attacher receives all
	// output produced after it attached. An unknown ID is a
	// ProcessNotFoundError.
	Attach(ctx context.Context, processID string, pio ProcessIO) (Process, error)
	// Metrics reports resource usage.
	Metrics(ctx context.Context) (Metrics, error)
	// SetGraceTime changes the idle time after which the server destroys
	// the container; 0 disables it.
	SetGraceTime(ctx context.Context, graceTime time.Duration) error
	Properties(ctx context.Context) (Properties, error)
	// Property returns one property; a missing key is an error.
	Property(ctx context.Context, name string) (string, error)
	SetProperty(ctx context.Context, name, value string) error
	// RemoveProperty deletes a property; a missing key is no error.
	RemoveProperty(ctx context.Context, name string) error
}

// Process is a process running in a container.
type Process interface {
	// ID names the process for Attach.
	ID() string
	// Wait blocks until the process has exited and all its output has been
	// delivered, and returns its exit status (128+n for death by signal n).
	Wait() (int, error)
	// SetTTY resizes the process's terminal.
	SetTTY(spec TTYSpec) error
	// Signal sends SIGTERM or SIGKILL to the process.
	Signal(sig Signal) error
}

// Backend is what a Server serves: the Client interface implemented by a
// container runtime, plus its lifecycle and the grace time of each
// container.
//
// Backend contract beyond Client: Containers filters exactly by the given
// properties (the Server adds the implicit PropertyState filter); a
// container's properties include PropertyState=StateCreated once Create has
// completed; Process.Wait returns only after every output byte has been
// written to the ProcessIO writers of every Run and Attach; the writers
// given to Run and Attach must be written without blocking for long (the
// Server's are buffered).
type Backend interface {
	Client
	// Start prepares the backend (restoring existing containers) before
	// the Server accepts requests.
	Start(ctx context.Context) error
	// Stop releases the backend's resources; containers keep running.
	Stop(ctx context.Context) error
	// GraceTime is the container's current grace time.
	GraceTime(c Container) time.Duration
}
