package cli

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

	"github.com/gavel-scheduler/gavel/proto/models"
)

// syncBuffer is a bytes.Buffer safe to read while a command writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// invocation describes one in-process run of the CLI.
type invocation struct {
	config   string // --config value; "" passes none
	terminal bool
	stdin    string
	args     []string
}

type result struct {
	stdout, stderr string
	err            error
}

// newRoot builds a root command wired to the given streams, as Register
// does for the real binary.
func newRoot(stdout, stderr *syncBuffer, inv invocation) *cobra.Command {
	root := &cobra.Command{Use: "gavel", SilenceUsage: true, SilenceErrors: true}
	a := &app{
		stdout:       stdout,
		stderr:       stderr,
		stdin:        strings.NewReader(inv.stdin),
		isTerminal:   inv.terminal,
		now:          func() time.Time { return testNow },
		reconnectMin: 10 * time.Millisecond,
		reconnectMax: 50 * time.Millisecond,
	}
	a.register(root)
	root.SetOut(stderr) // cobra's usage and help text
	root.SetErr(stderr)
	args := inv.args
	if inv.config != "" {
		args = append([]string{"--config", inv.config}, args...)
	}
	root.SetArgs(args)
	return root
}

func execute(t *testing.T, inv invocation) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var stdout, stderr syncBuffer
	err := newRoot(&stdout, &stderr, inv).ExecuteContext(ctx)
	return result{stdout: stdout.String(), stderr: stderr.String(), err: err}
}

func ptr[T any](v T) *T { return &v }

const validLRP = `{"process_guid":"web","domain":"apps","rootfs":"preloaded:cflinuxfs4","instances":2,
 "memory_mb":128,"action":{"run":{"path":"/bin/sh","user":"vcap"}}}`

func TestCreateDesiredLRPBadSpecSendsNothing(t *testing.T) {
	f := &fakeBBS{}
	addr, _ := serve(t, f, "")
	cfg := writeConfig(t, addr)
	bad := `{"process_guid":"web!","domain":"apps","instances":-1}`
	tests := []struct {
		name string
		inv  invocation
	}{
		{name: "inline", inv: invocation{config: cfg, args: []string{"create-desired-lrp", bad}}},
		{name: "stdin", inv: invocation{config: cfg, stdin: bad, args: []string{"create-desired-lrp", "-"}}},
		// The spec is judged before the config is even read.
		{name: "no config needed", inv: invocation{config: filepath.Join(t.TempDir(), "missing.json"), args: []string{"create-desired-lrp", bad}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := execute(t, tt.inv)
			if r.err == nil {
				t.Fatal("bad spec accepted")
			}
			msg := r.err.Error()
			for _, want := range []string{"invalid spec", "invalid process_guid: must match [a-zA-Z0-9_-]+", "invalid instances:", "invalid rootfs:", "invalid action:"} {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not contain %q", msg, want)
				}
			}
			if r.stdout != "" {
				t.Errorf("stdout = %q, want nothing", r.stdout)
			}
		})
	}
	if calls := f.Calls(); len(calls) != 0 {
		t.Errorf("the BBS received %v, want nothing", calls)
	}
}

func TestCreateDesiredLRP(t *testing.T) {
	f := &fakeBBS{}
	addr, _ := serve(t, f, "")
	cfg := writeConfig(t, addr)
	specFile := filepath.Join(t.TempDir(), "web.json")
	if err := os.WriteFile(specFile, []byte(validLRP), 0o600); err != nil {
		t.Fatal(err)
	}
	want, err := models.DecodeDesiredLRP([]byte(validLRP))
	if err != nil {
		t.Fatalf("test spec is invalid: %v", err)
	}
	tests := []struct {
		name       string
		inv        invocation
		wantStdout string
	}{
		{name: "inline, piped: silent", inv: invocation{args: []string{"create-desired-lrp", validLRP}}},
		{name: "file", inv: invocation{args: []string{"create-desired-lrp", "@" + specFile}}},
		{name: "stdin", inv: invocation{stdin: validLRP, args: []string{"create-desired-lrp", "-"}}},
		{
			name:       "terminal: confirms",
			inv:        invocation{terminal: true, args: []string{"create-desired-lrp", validLRP}},
			wantStdout: "desired LRP \"web\" created (2 instances)\n",
		},
		{name: "terminal with -o json: silent", inv: invocation{terminal: true, args: []string{"-o", "json", "create-desired-lrp", validLRP}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.inv.config = cfg
			r := execute(t, tt.inv)
			if r.err != nil {
				t.Fatal(r.err)
			}
			if r.stdout != tt.wantStdout {
				t.Errorf("stdout = %q, want %q", r.stdout, tt.wantStdout)
			}
			got, _ := f.Last("DesireLRP").(*models.DesireLRPRequest)
			if !proto.Equal(got.GetDesiredLrp(), want) {
				t.Errorf("DesireLRP got %v, want %v", got, want)
			}
		})
	}
}

func TestDesiredLRPsOutput(t *testing.T) {
	f := &fakeBBS{desired: []*models.DesiredLRP{
		{ProcessGuid: "web", Domain: "apps", Instances: 2, MemoryMb: 128, Rootfs: "preloaded:cflinuxfs4"},
		{ProcessGuid: "batch", Domain: "jobs", Instances: 1, Rootfs: "docker:///busybox"},
	}}
	addr, _ := serve(t, f, "")
	cfg := writeConfig(t, addr)
	jsonLines := `{"process_guid":"web","domain":"apps","instances":2,"rootfs":"preloaded:cflinuxfs4","memory_mb":128}
{"process_guid":"batch","domain":"jobs","instances":1,"rootfs":"docker:///busybox"}
`
	tests := []struct {
		name string
		inv  invocation
		want string
	}{
		{name: "piped: json lines", inv: invocation{args: []string{"desired-lrps"}}, want: jsonLines},
		{name: "terminal -o json", inv: invocation{terminal: true, args: []string{"desired-lrps", "-o", "json"}}, want: jsonLines},
		{
			name: "terminal: table",
			inv:  invocation{terminal: true, args: []string{"desired-lrps"}},
			want: "PROCESS_GUID  DOMAIN  INSTANCES  MEMORY  DISK  ROOTFS\n" +
				"web           apps    2          128MB   0     preloaded:cflinuxfs4\n" +
				"batch         jobs    1          0       0     docker:///busybox\n",
		},
		{
			name: "piped -o table, filtered by domain",
			inv:  invocation{args: []string{"desired-lrps", "--output=table", "-d", "jobs"}},
			want: "PROCESS_GUID  DOMAIN  INSTANCES  MEMORY  DISK  ROOTFS\n" +
				"batch         jobs    1          0       0     docker:///busybox\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.inv.config = cfg
			r := execute(t, tt.inv)
			if r.err != nil {
				t.Fatal(r.err)
			}
			if r.stdout != tt.want {
				t.Errorf("stdout =\n%s\nwant\n%s", r.stdout, tt.want)
			}
		})
	}
}

func TestFlagsReachTheRequest(t *testing.T) {
	f := &fakeBBS{actual: []*models.ActualLRP{
		{ActualLrpKey: &models.ActualLRPKey{ProcessGuid: "web", Index: 1, Domain: "apps"}, State: models.ActualLRP_RUNNING},
		{ActualLrpKey: &models.ActualLRPKey{ProcessGuid: "web", Index: 2, Domain: "apps"}, State: models.ActualLRP_RUNNING},
	}}
	addr, _ := serve(t, f, "")
	cfg := writeConfig(t, addr)
	tests := []struct {
		args   []string
		method string
		want   proto.Message
	}{
		{[]string{"actual-lrps"}, "ListActualLRPs", &models.ListActualLRPsRequest{}},
		{[]string{"actual-lrps", "-d", "apps", "-c", "cell-1", "-p", "web", "-i", "0"}, "ListActualLRPs",
			&models.ListActualLRPsRequest{Domain: "apps", CellId: "cell-1", ProcessGuid: "web", Index: ptr(int32(0))}},
		{[]string{"actual-lrps", "--process-guid=web", "--index=3", "--cell-id", "c2", "--domain", "d"}, "ListActualLRPs",
			&models.ListActualLRPsRequest{Domain: "d", CellId: "c2", ProcessGuid: "web", Index: ptr(int32(3))}},
		{[]string{"desired-lrps", "-d", "apps"}, "ListDesiredLRPs", &models.ListDesiredLRPsRequest{Domain: "apps"}},
		{[]string{"desired-lrp-scheduling-infos", "--domain", "apps"}, "ListDesiredLRPSchedulingInfos", &models.ListDesiredLRPsRequest{Domain: "apps"}},
		{[]string{"tasks", "-d", "jobs", "-c", "cell-2"}, "ListTasks", &models.ListTasksRequest{Domain: "jobs", CellId: "cell-2"}},
		{[]string{"set-domain", "apps"}, "UpsertDomain", &models.UpsertDomainRequest{Domain: "apps"}},
		{[]string{"set-domain", "apps", "-t", "120"}, "UpsertDomain", &models.UpsertDomainRequest{Domain: "apps", Ttl: 120}},
		{[]string{"cancel-task", "t1"}, "CancelTask", &models.TaskGuidRequest{TaskGuid: "t1"}},
		// retire-actual-lrp completes the key with the domain it looks up.
		{[]string{"retire-actual-lrp", "web", "2"}, "RetireActualLRP",
			&models.RetireActualLRPRequest{ActualLrpKey: &models.ActualLRPKey{ProcessGuid: "web", Index: 2, Domain: "apps"}}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			r := execute(t, invocation{config: cfg, args: tt.args})
			if r.err != nil {
				t.Fatal(r.err)
			}
			if got := f.Last(tt.method); !proto.Equal(got, tt.want) {
				t.Errorf("%s got %v, want %v", tt.method, got, tt.want)
			}
		})
	}
}

func TestBadFlagsSendNothing(t *testing.T) {
	f := &fakeBBS{}
	addr, _ := serve(t, f, "")
	cfg := writeConfig(t, addr)
	tests := []struct {
		args    []string
		wantErr string
	}{
		{[]string{"-o", "yaml", "desired-lrps"}, `--output "yaml": must be table or json`},
		{[]string{"--timeout", "0s", "cells"}, "--timeout 0s: must be positive"},
		{[]string{"actual-lrps", "-i", "-1"}, "--index -1: must be 0 or more"},
		{[]string{"actual-lrps", "-i", "x"}, `invalid argument "x"`},
		{[]string{"retire-actual-lrp", "web", "one"}, `INDEX "one": must be a number`},
		{[]string{"set-domain", "apps", "-t", "-5"}, "--ttl -5: must be 0"},
		{[]string{"lrp-events", "--after", "12:x"}, `--after "12:x"`},
		{[]string{"desired-lrp"}, "accepts 1 arg(s), received 0"},
		{[]string{"domains", "extra"}, "unknown command"},
		{[]string{"update-desired-lrp", "web", `{"instances":-2}`}, "invalid spec: invalid instances"},
		{[]string{"create-task", `{"task_guid":"t1"}`}, "invalid spec"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			r := execute(t, invocation{config: cfg, args: tt.args})
			if r.err == nil || !strings.Contains(r.err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", r.err, tt.wantErr)
			}
		})
	}
	if calls := f.Calls(); len(calls) != 0 {
		t.Errorf("the BBS received %v, want nothing", calls)
	}
}

func TestDeleteTask(t *testing.T) {
	f := &fakeBBS{tasks: map[string]*models.Task{
		"done":      {TaskGuid: "done", State: models.Task_COMPLETED},
		"resolving": {TaskGuid: "resolving", State: models.Task_RESOLVING},
		"running":   {TaskGuid: "running", State: models.Task_RUNNING},
	}}
	addr, _ := serve(t, f, "")
	cfg := writeConfig(t, addr)
	tests := []struct {
		guid      string
		wantCalls []string
		wantErr   string
	}{
		{guid: "done", wantCalls: []string{"GetTask", "ResolvingTask", "DeleteTask"}},
		{guid: "resolving", wantCalls: []string{"GetTask", "DeleteTask"}},
		{guid: "running", wantCalls: []string{"GetTask"}, wantErr: `task "running" is RUNNING: only COMPLETED tasks can be deleted`},
		{guid: "nope", wantCalls: []string{"GetTask"}, wantErr: `task "nope" not found`},
	}
	for _, tt := range tests {
		t.Run(tt.guid, func(t *testing.T) {
			before := len(f.Calls())
			r := execute(t, invocation{config: cfg, args: []string{"delete-task", tt.guid}})
			if tt.wantErr == "" && r.err != nil {
				t.Fatal(r.err)
			}
			if tt.wantErr != "" && (r.err == nil || !strings.Contains(r.err.Error(), tt.wantErr)) {
				t.Fatalf("err = %v, want %q", r.err, tt.wantErr)
			}
			if got := f.Calls()[before:]; !slices.Equal(got, tt.wantCalls) {
				t.Errorf("calls = %v, want %v", got, tt.wantCalls)
			}
		})
	}
}

func TestServerErrors(t *testing.T) {
	f := &fakeBBS{}
	addr, _ := serve(t, f, "")
	cfg := writeConfig(t, addr)

	// A port nothing listens on: bind one, then close it.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := lis.Addr().String()
	lis.Close()
	deadCfg := writeConfig(t, deadAddr)

	tests := []struct {
		name    string
		inv     invocation
		wantErr []string
	}{
		{name: "not found", inv: invocation{config: cfg, args: []string{"desired-lrp", "nope"}}, wantErr: []string{`desired LRP "nope" not found`}},
		{name: "retire unknown instance", inv: invocation{config: cfg, args: []string{"retire-actual-lrp", "web", "9"}}, wantErr: []string{"actual LRP web/9 not found"}},
		{name: "unreachable", inv: invocation{config: deadCfg, args: []string{"cells"}}, wantErr: []string{"cannot reach the BBS at " + deadAddr, "hint:", deadCfg}},
		{name: "stream unreachable fails at once", inv: invocation{config: deadCfg, args: []string{"task-events"}}, wantErr: []string{"cannot reach the BBS at " + deadAddr}},
		{name: "unimplemented", inv: invocation{config: cfg, args: []string{"domains"}}, wantErr: []string{"does not support this call"}},
		{name: "missing config", inv: invocation{config: filepath.Join(t.TempDir(), "x.json"), args: []string{"cells"}}, wantErr: []string{"no client config at", "(from --config)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := execute(t, tt.inv)
			if r.err == nil {
				t.Fatal("command succeeded, want an error")
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(r.err.Error(), want) {
					t.Errorf("err = %q, want it to contain %q", r.err, want)
				}
			}
		})
	}
}

func TestShowCommands(t *testing.T) {
	f := &fakeBBS{
		desired: []*models.DesiredLRP{{ProcessGuid: "web", Domain: "apps", Instances: 1}},
		tasks:   map[string]*models.Task{"t1": {TaskGuid: "t1", Domain: "jobs", State: models.Task_PENDING}},
	}
	addr, _ := serve(t, f, "")
	cfg := writeConfig(t, addr)
	tests := []struct {
		inv  invocation
		want string
	}{
		{invocation{args: []string{"desired-lrp", "web"}}, `{"process_guid":"web","domain":"apps","instances":1}` + "\n"},
		{invocation{terminal: true, args: []string{"task", "t1"}}, "{\n  \"task_guid\": \"t1\",\n  \"domain\": \"jobs\",\n  \"state\": \"PENDING\"\n}\n"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.inv.args, " "), func(t *testing.T) {
			tt.inv.config = cfg
			r := execute(t, tt.inv)
			if r.err != nil {
				t.Fatal(r.err)
			}
			if r.stdout != tt.want {
				t.Errorf("stdout = %q, want %q", r.stdout, tt.want)
			}
		})
	}
}

func taskEvent(rev int64, seq uint32, guid string) *models.TaskEvent {
	return &models.TaskEvent{
		Position: &models.EventPosition{Revision: rev, Seq: seq},
		Event:    &models.TaskEvent_TaskCreated{TaskCreated: &models.TaskCreatedEvent{Task: &models.Task{TaskGuid: guid, State: models.Task_PENDING}}},
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestTaskEventsResumeAfterRestart(t *testing.T) {
	events := []*models.TaskEvent{taskEvent(10, 0, "a"), taskEvent(10, 1, "b")}
	first := &fakeBBS{taskEvents: events}
	addr, stopFirst := serve(t, first, "")
	cfg := writeConfig(t, addr)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	root := newRoot(&stdout, &stderr, invocation{config: cfg, args: []string{"task-events", "--after", "9"}})
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()

	lines := func() int { return strings.Count(stdout.String(), "\n") }
	waitFor(t, "the first two events", func() bool { return lines() == 2 })

	// The BBS goes away; a new one comes up on the same address with one
	// more event.
	stopFirst()
	second := &fakeBBS{taskEvents: append(slices.Clone(events), taskEvent(11, 0, "c"))}
	serve(t, second, addr)
	waitFor(t, "the event after the restart", func() bool { return lines() == 3 })

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("interrupted stream returned %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("stream did not stop when cancelled")
	}

	if got := first.Last("SubscribeTaskEvents").(*models.SubscribeTaskEventsRequest); got.GetAfter().GetRevision() != 9 {
		t.Errorf("first subscribe after = %v, want revision 9", got.GetAfter())
	}
	resumed := second.Last("SubscribeTaskEvents").(*models.SubscribeTaskEventsRequest)
	if p := resumed.GetAfter(); p.GetRevision() != 10 || p.GetSeq() != 1 {
		t.Errorf("resumed after = %v, want 10:1", p)
	}
	var want strings.Builder
	for _, ev := range append(slices.Clone(events), taskEvent(11, 0, "c")) {
		b, err := models.MarshalJSON(ev)
		if err != nil {
			t.Fatal(err)
		}
		want.Write(b)
		want.WriteByte('\n')
	}
	if stdout.String() != want.String() {
		t.Errorf("stdout =\n%s\nwant (each event once)\n%s", stdout.String(), want.String())
	}
	if !strings.Contains(stderr.String(), "resuming after 10:1") {
		t.Errorf("stderr = %q, want a note about resuming", stderr.String())
	}
}

func TestRegisterAddsCommandsAndFlags(t *testing.T) {
	root := &cobra.Command{Use: "gavel"}
	Register(root)
	for _, name := range []string{
		"create-desired-lrp", "update-desired-lrp", "delete-desired-lrp", "desired-lrps", "desired-lrp",
		"desired-lrp-scheduling-infos", "actual-lrps", "retire-actual-lrp", "create-task", "tasks", "task",
		"cancel-task", "delete-task", "domains", "set-domain", "cells", "cell", "cell-states", "cell-state", "lrp-events", "task-events",
	} {
		if c, _, err := root.Find([]string{name}); err != nil || c.Name() != name {
			t.Errorf("command %s not registered", name)
		}
	}
	for _, flag := range []string{"config", "output", "timeout"} {
		if root.PersistentFlags().Lookup(flag) == nil {
			t.Errorf("persistent flag --%s missing", flag)
		}
	}
	if got := root.PersistentFlags().Lookup("timeout").DefValue; got != "30s" {
		t.Errorf("--timeout default = %s, want 30s", got)
	}
}
