package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/gavel-scheduler/gavel/proto/models"
)

// target describes the BBS a command talked to, for error messages.
type target struct {
	addr       string
	configPath string
	timeout    time.Duration
}

// cliError is an error rewritten for a person. It keeps the original for
// errors.Is/As, so callers and tests can still test the cause.
type cliError struct {
	msg string
	err error
}

func (e *cliError) Error() string { return e.msg }
func (e *cliError) Unwrap() error { return e.err }

// explain is the one place an error becomes the text an operator reads:
// local spec problems, field violations the BBS sent back, missing records,
// an unreachable BBS. Errors it has nothing to add to pass through unchanged.
func explain(err error, t target) error {
	if err == nil {
		return nil
	}
	var se *specError
	if errors.As(err, &se) {
		var verrs models.ValidationErrors
		if errors.As(se.err, &verrs) {
			return &cliError{msg: listProblems("invalid spec", verrs.Error(), violationsOf(verrs)), err: err}
		}
		return &cliError{msg: se.Error(), err: err}
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	msg := st.Message()
	wrap := func(format string, args ...any) error {
		return &cliError{msg: fmt.Sprintf(format, args...), err: models.FromStatus(err)}
	}
	switch st.Code() {
	case codes.InvalidArgument:
		return wrap("%s", listProblems("the BBS refused the request", msg, badRequestViolations(st)))
	case codes.NotFound, codes.AlreadyExists, codes.FailedPrecondition:
		// The BBS words these for people already ("desired LRP "web" not found").
		return wrap("%s", msg)
	case codes.Aborted:
		return wrap("%s (another change won a race; try again)", msg)
	case codes.Unavailable:
		return wrap("cannot reach the BBS at %s: %s\n%s", t.addr, msg, unavailableHint(msg, t))
	case codes.DeadlineExceeded:
		if t.timeout > 0 {
			return wrap("no answer from the BBS at %s within %s: %s\nhint: raise --timeout, or check the BBS and etcd are healthy", t.addr, t.timeout, msg)
		}
		return wrap("no answer from the BBS at %s: %s", t.addr, msg)
	case codes.Unauthenticated, codes.PermissionDenied:
		return wrap("the BBS at %s refused our credentials: %s\nhint: check client_cert and client_key in %s", t.addr, msg, t.configPath)
	case codes.OutOfRange:
		return wrap("%s\nhint: the requested event position is gone; start without --after (or list and resume after the list)", msg)
	case codes.Unimplemented:
		return wrap("the BBS at %s does not support this call (is it an older version?): %s", t.addr, msg)
	case codes.Canceled:
		return wrap("cancelled: %s", msg)
	default:
		return wrap("BBS error (%s): %s", st.Code(), msg)
	}
}

// violation is one bad field and why.
type violation struct{ field, reason string }

// wholeSpec is the field the models decoders report for problems with the
// spec as a whole (malformed JSON, empty); "invalid spec: invalid spec: ..."
// would stutter, so such problems print as the reason alone.
const wholeSpec = "spec"

func (v violation) String() string {
	if v.field == wholeSpec || v.field == "" {
		return v.reason
	}
	return "invalid " + v.field + ": " + v.reason
}

func violationsOf(verrs models.ValidationErrors) []violation {
	out := make([]violation, len(verrs))
	for i, v := range verrs {
		out[i] = violation{field: v.Field, reason: v.Reason}
	}
	return out
}

// badRequestViolations pulls the field violations out of a BadRequest
// detail, which the BBS attaches to every InvalidArgument it returns.
func badRequestViolations(st *status.Status) []violation {
	var out []violation
	for _, d := range st.Details() {
		br, ok := d.(*errdetails.BadRequest)
		if !ok {
			continue
		}
		for _, fv := range br.GetFieldViolations() {
			out = append(out, violation{field: fv.GetField(), reason: fv.GetDescription()})
		}
	}
	return out
}

// listProblems renders "HEAD: invalid FIELD: REASON" for one problem and an
// indented list for several, so every bad field is named and each is easy to
// find. With no structured violations it falls back to the plain message.
func listProblems(head, fallback string, vs []violation) string {
	switch len(vs) {
	case 0:
		return head + ": " + fallback
	case 1:
		return head + ": " + vs[0].String()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%d problems):", head, len(vs))
	for _, v := range vs {
		fmt.Fprintf(&b, "\n  %s", v)
	}
	return b.String()
}

// unavailableHint guesses the likely fix from gRPC's transport message: a
// TLS failure needs different certs, anything else a running BBS.
func unavailableHint(msg string, t target) string {
	lower := strings.ToLower(msg)
	if strings.Contains(lower, "certificate") || strings.Contains(lower, "handshake") || strings.Contains(lower, "tls") {
		return fmt.Sprintf("hint: the TLS handshake failed; check ca_cert, client_cert, client_key and server_name in %s", t.configPath)
	}
	return fmt.Sprintf("hint: is the BBS running (`gavel dev` starts one)? The address comes from %s", t.configPath)
}

// interrupted reports whether err is only the user stopping the command, which
// for a stream is a normal way to finish.
func interrupted(ctx context.Context, err error) bool {
	if ctx.Err() == nil {
		return false
	}
	return errors.Is(err, context.Canceled) || status.Code(err) == codes.Canceled
}
