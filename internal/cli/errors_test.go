package cli

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/gavel-scheduler/gavel/proto/models"
)

func TestExplain(t *testing.T) {
	tgt := target{addr: "127.0.0.1:8889", configPath: "/home/op/.gavel/dev/client.json", timeout: 30 * time.Second}
	plain := errors.New("plain failure")
	tests := []struct {
		name string
		err  error
		want string
		is   error // optional errors.Is target on the result
	}{
		{name: "nil", err: nil, want: ""},
		{name: "plain errors pass through", err: plain, want: "plain failure", is: plain},
		{
			name: "one bad spec field",
			err:  &specError{err: models.ValidationErrors{{Field: "process_guid", Reason: "must match [a-zA-Z0-9_-]+"}}},
			want: "invalid spec: invalid process_guid: must match [a-zA-Z0-9_-]+",
		},
		{
			name: "every bad spec field",
			err: &specError{err: models.ValidationErrors{
				{Field: "process_guid", Reason: "must match [a-zA-Z0-9_-]+"},
				{Field: "memory_mb", Reason: "must be 0 or more"},
			}},
			want: "invalid spec (2 problems):\n  invalid process_guid: must match [a-zA-Z0-9_-]+\n  invalid memory_mb: must be 0 or more",
		},
		{
			name: "whole-spec problem does not stutter",
			err:  &specError{err: models.ValidationErrors{{Field: "spec", Reason: "syntax error at line 1:2: unexpected token"}}},
			want: "invalid spec: syntax error at line 1:2: unexpected token",
		},
		{
			name: "server field violations are listed",
			err: models.ToStatus(models.ValidationErrors{
				{Field: "desired_lrp.instances", Reason: "must be 0 or more"},
				{Field: "desired_lrp.domain", Reason: "must not be empty"},
			}).Err(),
			want: "the BBS refused the request (2 problems):\n  invalid desired_lrp.instances: must be 0 or more\n  invalid desired_lrp.domain: must not be empty",
			is:   models.ErrInvalidRequest,
		},
		{
			name: "invalid argument without details uses the message",
			err:  status.Error(codes.InvalidArgument, "bad request"),
			want: "the BBS refused the request: bad request",
		},
		{
			name: "not found keeps the server's words",
			err:  models.ToStatus(models.NewError(models.TypeResourceNotFound, "desired LRP %q not found", "web")).Err(),
			want: `desired LRP "web" not found`,
			is:   models.ErrResourceNotFound,
		},
		{
			name: "unavailable names the address and a hint",
			err:  status.Error(codes.Unavailable, "connection error: dial tcp 127.0.0.1:8889: connect: connection refused"),
			want: "cannot reach the BBS at 127.0.0.1:8889: connection error: dial tcp 127.0.0.1:8889: connect: connection refused\n" +
				"hint: is the BBS running (`gavel dev` starts one)? The address comes from /home/op/.gavel/dev/client.json",
		},
		{
			name: "tls failure points at the certificates",
			err:  status.Error(codes.Unavailable, "connection error: desc = \"transport: authentication handshake failed: tls: bad certificate\""),
			want: "cannot reach the BBS at 127.0.0.1:8889: connection error: desc = \"transport: authentication handshake failed: tls: bad certificate\"\n" +
				"hint: the TLS handshake failed; check ca_cert, client_cert, client_key and server_name in /home/op/.gavel/dev/client.json",
		},
		{
			name: "deadline names the timeout",
			err:  status.Error(codes.DeadlineExceeded, "context deadline exceeded"),
			want: "no answer from the BBS at 127.0.0.1:8889 within 30s: context deadline exceeded\nhint: raise --timeout, or check the BBS and etcd are healthy",
		},
		{
			name: "transition refused",
			err:  models.ToStatus(models.NewError(models.TypeInvalidStateTransition, "task %q cannot go from PENDING to RESOLVING", "t1")).Err(),
			want: `task "t1" cannot go from PENDING to RESOLVING`,
			is:   models.ErrInvalidStateTransition,
		},
		{
			name: "other codes show the code",
			err:  status.Error(codes.Internal, "etcd: no leader"),
			want: "BBS error (Internal): etcd: no leader",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := explain(tt.err, tgt)
			if tt.want == "" {
				if got != nil {
					t.Fatalf("explain() = %v, want nil", got)
				}
				return
			}
			if got == nil || got.Error() != tt.want {
				t.Fatalf("explain() =\n%v\nwant\n%s", got, tt.want)
			}
			if tt.is != nil && !errors.Is(got, tt.is) {
				t.Errorf("errors.Is(explain(), %v) = false", tt.is)
			}
		})
	}
}

func TestExplainKeepsWrappedSpecCause(t *testing.T) {
	verrs := models.ValidationErrors{{Field: "task_guid", Reason: "must not be empty"}}
	got := explain(&specError{err: fmt.Errorf("decode: %w", verrs)}, target{})
	if got.Error() != "invalid spec: invalid task_guid: must not be empty" {
		t.Errorf("explain() = %q", got)
	}
	var back models.ValidationErrors
	if !errors.As(got, &back) {
		t.Error("the validation errors are no longer reachable with errors.As")
	}
}
