package executor

import "errors"

// Domain errors; every error the API returns wraps one of these or comes
// from Garden.
var (
	// ErrContainerNotFound: no container has the guid.
	ErrContainerNotFound = errors.New("container not found")
	// ErrGuidNotAvailable: a container with the guid already exists.
	ErrGuidNotAvailable = errors.New("container guid not available")
	// ErrInsufficientResources: the cell lacks memory, disk or a
	// container slot.
	ErrInsufficientResources = errors.New("insufficient resources available")
	// ErrInvalidRequest: a request is malformed (empty guid, negative
	// resources...).
	ErrInvalidRequest = errors.New("invalid request")
	// ErrInvalidTransition: the container is not in a state that allows
	// the call (running a container that is not reserved...).
	ErrInvalidTransition = errors.New("invalid state transition")
	// ErrFileTooLarge: a file read with ReadFile exceeds its limit.
	ErrFileTooLarge = errors.New("file too large")
	// ErrClosed: the executor has been closed.
	ErrClosed = errors.New("executor closed")
)
