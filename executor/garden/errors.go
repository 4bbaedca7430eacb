package garden

import (
	"encoding/json"
	"errors"
	"fmt"
)

// ContainerNotFoundError is returned for an unknown handle; the server
// answers it with 404.
type ContainerNotFoundError struct{ Handle string }

func (e ContainerNotFoundError) Error() string { return "unknown handle: " + e.Handle }

// ProcessNotFoundError is returned for an unknown process ID; the server
// answers it with 404.
type ProcessNotFoundError struct{ ProcessID string }

func (e ProcessNotFoundError) Error() string { return "unknown process: " + e.ProcessID }

// ExecutableNotFoundError is returned by Run when the executable does not
// exist in the container.
type ExecutableNotFoundError struct{ Message string }

func (e ExecutableNotFoundError) Error() string { return e.Message }

// ServiceUnavailableError says the server cannot serve the request now.
type ServiceUnavailableError struct{ Cause string }

func (e ServiceUnavailableError) Error() string { return e.Cause }

// UnrecoverableError says the server is broken beyond retrying.
type UnrecoverableError struct{ Symptom string }

func (e UnrecoverableError) Error() string { return e.Symptom }

// Wire names of the typed errors.
const (
	errTypeContainerNotFound  = "ContainerNotFoundError"
	errTypeProcessNotFound    = "ProcessNotFoundError"
	errTypeExecutableNotFound = "ExecutableNotFoundError"
	errTypeServiceUnavailable = "ServiceUnavailableError"
	errTypeUnrecoverable      = "UnrecoverableError"
)

// Error carries an error across the wire in Garden's error JSON:
// {"Type","Message","Handle","ProcessID","Binary"}. Typed errors survive
// the round trip; anything else comes back as a plain error with the same
// message.
type Error struct{ Err error }

// NewError wraps err for the wire; nil stays nil.
func NewError(err error) *Error {
	if err == nil {
		return nil
	}
	return &Error{Err: err}
}

func (e *Error) Error() string { return e.Err.Error() }

// Unwrap returns the carried error.
func (e *Error) Unwrap() error { return e.Err }

type wireError struct {
	Type      string `json:"Type"`
	Message   string `json:"Message"`
	Handle    string `json:"Handle"`
	ProcessID string `json:"ProcessID"`
	Binary    string `json:"Binary"`
}

func toWire(err error) wireError {
	w := wireError{Message: err.Error()}
	var (
		cnf ContainerNotFoundError
		pnf ProcessNotFoundError
		enf ExecutableNotFoundError
		su  ServiceUnavailableError
		ue  UnrecoverableError
	)
	switch {
	case errors.As(err, &cnf):
		w.Type, w.Handle = errTypeContainerNotFound, cnf.Handle
	case errors.As(err, &pnf):
		w.Type, w.ProcessID = errTypeProcessNotFound, pnf.ProcessID
	case errors.As(err, &enf):
		w.Type = errTypeExecutableNotFound
	case errors.As(err, &su):
		w.Type = errTypeServiceUnavailable
	case errors.As(err, &ue):
		w.Type = errTypeUnrecoverable
	}
	return w
}

func (w wireError) toError() error {
	switch w.Type {
	case errTypeContainerNotFound:
		return ContainerNotFoundError{Handle: w.Handle}
	case errTypeProcessNotFound:
		return ProcessNotFoundError{ProcessID: w.ProcessID}
	case errTypeExecutableNotFound:
		return ExecutableNotFoundError{Message: w.Message}
	case errTypeServiceUnavailable:
		return ServiceUnavailableError{Cause: w.Message}
	case errTypeUnrecoverable:
		return UnrecoverableError{Symptom: w.Message}
	}
	return errors.New(w.Message)
}

// MarshalJSON writes the Garden error object.
func (e *Error) MarshalJSON() ([]byte, error) {
	if e == nil || e.Err == nil {
		return []byte("null"), nil
	}
	return json.Marshal(toWire(e.Err))
}

// UnmarshalJSON reads the Garden error object.
func (e *Error) UnmarshalJSON(b []byte) error {
	var w wireError
	if err := json.Unmarshal(b, &w); err != nil {
		return fmt.Errorf("garden error: %w", err)
	}
	e.Err = w.toError()
	return nil
}

// isNotFound reports whether err is answered with 404.
func isNotFound(err error) bool {
	var (
		cnf ContainerNotFoundError
		pnf ProcessNotFoundError
	)
	return errors.As(err, &cnf) || errors.As(err, &pnf)
}
