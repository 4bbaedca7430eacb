package models

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ErrorType names a class of domain error. It travels over gRPC in the
// ErrorInfo detail so a client can tell, say, a lost claim race from a
// missing record.
type ErrorType string

// The domain error types. They follow Diego's error envelope names.
const (
	TypeInvalidRecord            ErrorType = "InvalidRecord"
	TypeInvalidRequest           ErrorType = "InvalidRequest"
	TypeInvalidStateTransition   ErrorType = "InvalidStateTransition"
	TypeResourceConflict         ErrorType = "ResourceConflict"
	TypeResourceExists           ErrorType = "ResourceExists"
	TypeResourceNotFound         ErrorType = "ResourceNotFound"
	TypeActualLRPCannotBeClaimed ErrorType = "ActualLRPCannotBeClaimed"
	TypeActualLRPCannotBeStarted ErrorType = "ActualLRPCannotBeStarted"
	TypeActualLRPCannotBeCrashed ErrorType = "ActualLRPCannotBeCrashed"
	TypeActualLRPCannotBeFailed  ErrorType = "ActualLRPCannotBeFailed"
	TypeActualLRPCannotBeRemoved ErrorType = "ActualLRPCannotBeRemoved"
	TypeRunningOnDifferentCell   ErrorType = "RunningOnDifferentCell"
	TypeDeserialize              ErrorType = "Deserialize"
	TypeCompacted                ErrorType = "Compacted"
	TypeUnavailable              ErrorType = "Unavailable"
)

// Error is a domain error: a type a program can test for and a message a
// person can read. errors.Is matches on the type alone, so
// errors.Is(err, models.ErrResourceNotFound) holds for any not-found error.
type Error struct {
	Type    ErrorType
	Message string
}

func (e *Error) Error() string {
	if e.Message == "" {
		return string(e.Type)
	}
	return e.Message
}

// Is reports whether target is an *Error of the same type.
func (e *Error) Is(target error) bool {
	var t *Error
	if !errors.As(target, &t) {
		return false
	}
	return t.Type == e.Type
}

// Sentinel values for errors.Is.
var (
	ErrInvalidRecord            = &Error{Type: TypeInvalidRecord}
	ErrInvalidRequest           = &Error{Type: TypeInvalidRequest}
	ErrInvalidStateTransition   = &Error{Type: TypeInvalidStateTransition}
	ErrResourceConflict         = &Error{Type: TypeResourceConflict}
	ErrResourceExists           = &Error{Type: TypeResourceExists}
	ErrResourceNotFound         = &Error{Type: TypeResourceNotFound}
	ErrActualLRPCannotBeClaimed = &Error{Type: TypeActualLRPCannotBeClaimed}
	ErrActualLRPCannotBeStarted = &Error{Type: TypeActualLRPCannotBeStarted}
	ErrActualLRPCannotBeCrashed = &Error{Type: TypeActualLRPCannotBeCrashed}
	ErrActualLRPCannotBeFailed  = &Error{Type: TypeActualLRPCannotBeFailed}
	ErrActualLRPCannotBeRemoved = &Error{Type: TypeActualLRPCannotBeRemoved}
	ErrRunningOnDifferentCell   = &Error{Type: TypeRunningOnDifferentCell}
	ErrDeserialize              = &Error{Type: TypeDeserialize}
	ErrCompacted                = &Error{Type: TypeCompacted}
	ErrUnavailable              = &Error{Type: TypeUnavailable}
)

// NewError builds a domain error with a formatted message.
func NewError(t ErrorType, format string, args ...any) *Error {
	return &Error{Type: t, Message: fmt.Sprintf(format, args...)}
}

// errorDomain is the ErrorInfo domain that marks gavel's own errors.
const errorDomain = "gavel.models.v1"

// code is the one place a domain error type becomes a gRPC code.
func (t ErrorType) code() codes.Code {
	switch t {
	case TypeInvalidRecord, TypeInvalidRequest:
		return codes.InvalidArgument
	case TypeResourceNotFound:
		return codes.NotFound
	case TypeResourceExists:
		return codes.AlreadyExists
	case TypeResourceConflict:
		return codes.Aborted
	case TypeInvalidStateTransition,
		TypeActualLRPCannotBeClaimed, TypeActualLRPCannotBeStarted,
		TypeActualLRPCannotBeCrashed, TypeActualLRPCannotBeFailed,
		TypeActualLRPCannotBeRemoved, TypeRunningOnDifferentCell:
		return codes.FailedPrecondition
	case TypeCompacted:
		return codes.OutOfRange
	case TypeUnavailable:
		return codes.Unavailable
	default:
		return codes.Internal
	}
}

// ToStatus turns any error into a gRPC status. Domain errors keep their type
// in an ErrorInfo detail; validation errors list every bad field in a
// BadRequest detail; context errors keep their gRPC meaning; anything else is
// Internal.
func ToStatus(err error) *status.Status {
	if err == nil {
		return nil
	}
	if s, ok := status.FromError(err); ok {
		return s
	}
	var verrs ValidationErrors
	if errors.As(err, &verrs) {
		st := status.New(codes.InvalidArgument, err.Error())
		br := &errdetails.BadRequest{}
		for _, v := range verrs {
			br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{Field: v.Field, Description: v.Reason})
		}
		info := &errdetails.ErrorInfo{Reason: string(TypeInvalidRequest), Domain: errorDomain}
		if withDetails, derr := st.WithDetails(info, br); derr == nil {
			return withDetails
		}
		return st
	}
	var de *Error
	if errors.As(err, &de) {
		st := status.New(de.Type.code(), err.Error())
		info := &errdetails.ErrorInfo{Reason: string(de.Type), Domain: errorDomain}
		if withDetails, derr := st.WithDetails(info); derr == nil {
			return withDetails
		}
		return st
	}
	switch {
	case errors.Is(err, context.Canceled):
		return status.New(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.New(codes.DeadlineExceeded, err.Error())
	}
	return status.New(codes.Internal, err.Error())
}

// FromStatus turns an error returned by a gRPC call back into a domain error
// when the server sent one, so errors.Is works on the client side too. Other
// errors are returned unchanged.
func FromStatus(err error) error {
	st, ok := status.FromError(err)
	if !ok || st == nil {
		return err
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.Domain == errorDomain {
			return &Error{Type: ErrorType(info.Reason), Message: st.Message()}
		}
	}
	return err
}

// ValidationError names one bad field (by its JSON path, e.g.
// "action.run.path") and says what is wrong with it.
type ValidationError struct {
	Field  string
	Reason string
}

func (v ValidationError) Error() string { return "invalid " + v.Field + ": " + v.Reason }

// ValidationErrors is every problem found in one record; it is never empty
// when returned as an error.
type ValidationErrors []ValidationError

func (v ValidationErrors) Error() string {
	switch len(v) {
	case 0:
		return "invalid record"
	case 1:
		return v[0].Error()
	}
	msg := v[0].Error()
	for _, e := range v[1:] {
		msg += "; " + e.Error()
	}
	return msg
}

// Fields lists the bad fields in order.
func (v ValidationErrors) Fields() []string {
	out := make([]string, len(v))
	for i, e := range v {
		out[i] = e.Field
	}
	return out
}

// IsNotFound reports whether err is (or wraps) a not-found domain error.
func IsNotFound(err error) bool { return errors.Is(err, ErrResourceNotFound) }
