package steps

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gavel-scheduler/gavel/executor/garden"
	"github.com/gavel-scheduler/gavel/executor/logs"
)

func TestRunResults(t *testing.T) {
	tests := []struct {
		name    string
		spec    garden.ProcessSpec
		wantErr string
		wantOOM bool
	}{
		{"exit 0 succeeds", garden.ProcessSpec{Path: "exit", Args: []string{"0"}}, "", false},
		{"exit 1 is the failure reason", garden.ProcessSpec{Path: "exit", Args: []string{"1"}}, "exit status 1", false},
		{"oom is reported", garden.ProcessSpec{Path: "oom"}, "exit status 137 (out of memory)", true},
		{"missing executable", garden.ProcessSpec{Path: "missing"}, "run missing: executable file not found in $PATH", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newFakeContainer()
			err := Run{Container: c, Spec: tt.spec}.Run(context.Background())
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				return
			}
			if err == nil || err.Error() != tt.wantErr {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			var exit *ExitError
			if errors.As(err, &exit) && exit.OOM != tt.wantOOM {
				t.Fatalf("OOM = %v, want %v", exit.OOM, tt.wantOOM)
			}
		})
	}
}

func TestRunCapturesOutput(t *testing.T) {
	c := newFakeContainer()
	ring := logs.NewRing(100, 1<<20)
	r := Run{Container: c, Spec: garden.ProcessSpec{Path: "echo", Args: []string{"hello", "err:oops", "bye"}},
		Stdout: ring.Writer("APP", logs.Stdout), Stderr: ring.Writer("APP", logs.Stderr)}
	if err := r.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	lines, _ := ring.Read(0, 0)
	var got []string
	for _, l := range lines {
		got = append(got, fmt.Sprintf("%s/%s:%s", l.Source, l.Stream, l.Text))
	}
	if want := "APP/stdout:hello APP/stderr:oops APP/stdout:bye"; strings.Join(got, " ") != want {
		t.Fatalf("log = %q, want %q", strings.Join(got, " "), want)
	}
}

// runUntilStarted runs r in the background and waits for its process.
func runUntilStarted(t *testing.T, c *fakeContainer, r Run) (context.CancelFunc, <-chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for c.process(r.Spec.ID) == nil {
		if time.Now().After(deadline) {
			t.Fatal("process never started")
		}
		time.Sleep(time.Millisecond)
	}
	return cancel, done
}

func TestRunCancelSignals(t *testing.T) {
	tests := []struct {
		name  string
		path  string
		grace time.Duration
		want  []garden.Signal
	}{
		{"TERM is enough", "block", time.Hour, []garden.Signal{garden.SignalTerminate}},
		{"KILL after grace", "stubborn", 20 * time.Millisecond, []garden.Signal{garden.SignalTerminate, garden.SignalKill}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newFakeContainer()
			r := Run{Container: c, Spec: garden.ProcessSpec{ID: "p1", Path: tt.path}, GracefulShutdown: tt.grace}
			cancel, done := runUntilStarted(t, c, r)
			cancel()
			select {
			case err := <-done:
				if !errors.Is(err, ErrCancelled) {
					t.Fatalf("err = %v, want ErrCancelled", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("run did not stop")
			}
			if got := c.process("p1").gotSignals(); fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("signals = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestRunReattach(t *testing.T) {
	c := newFakeContainer()
	// A previous executor started p1; it is still running.
	cancelFirst, firstDone := runUntilStarted(t, c, Run{Container: c, Spec: garden.ProcessSpec{ID: "p1", Path: "block"}})
	defer func() { cancelFirst(); <-firstDone }()

	again := Run{Container: c, Spec: garden.ProcessSpec{ID: "p1", Path: "block"}, Reattach: true}
	done := make(chan error, 1)
	go func() { done <- again.Run(context.Background()) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.mu.Lock()
		n := len(c.attached)
		c.mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("never attached")
		}
		time.Sleep(time.Millisecond)
	}
	c.process("p1").exit(3)
	if err := <-done; err == nil || err.Error() != "exit status 3" {
		t.Fatalf("reattached run = %v, want exit status 3", err)
	}
	if n := len(c.startedSpecs()); n != 1 {
		t.Fatalf("%d processes started, want 1 (the reattach must not start another)", n)
	}

	// Unknown to Garden: the step starts it.
	fresh := Run{Container: c, Spec: garden.ProcessSpec{ID: "p2", Path: "exit", Args: []string{"0"}}, Reattach: true}
	if err := fresh.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(c.startedSpecs()); n != 2 {
		t.Fatalf("%d processes started, want 2", n)
	}
}

func TestRunDetachLeavesProcessRunning(t *testing.T) {
	c := newFakeContainer()
	r := Run{Container: c, Spec: garden.ProcessSpec{ID: "p1", Path: "block"}, Detachable: true}
	ctx, cancel := context.WithCancelCause(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for c.process("p1") == nil {
		if time.Now().After(deadline) {
			t.Fatal("process never started")
		}
		time.Sleep(time.Millisecond)
	}
	cancel(ErrDetached)
	if err := <-done; !errors.Is(err, ErrCancelled) {
		t.Fatalf("err = %v", err)
	}
	p := c.process("p1")
	if len(p.gotSignals()) != 0 || p.exited() {
		t.Fatalf("detached process was signalled: %v", p.gotSignals())
	}
	p.exit(0)
}

// TestWithStarted: the first process to start calls the function, once;
// a process that never starts does not.
func TestWithStarted(t *testing.T) {
	c := newFakeContainer()
	calls := 0
	ctx := WithStarted(context.Background(), func() { calls++ })
	if err := (Run{Container: c, Spec: garden.ProcessSpec{Path: "missing"}}).Run(ctx); err == nil {
		t.Fatal("missing executable ran")
	}
	if calls != 0 {
		t.Fatalf("a process that did not start counted: %d calls", calls)
	}
	two := Serial{
		Run{Container: c, Spec: garden.ProcessSpec{Path: "exit", Args: []string{"0"}}},
		Run{Container: c, Spec: garden.ProcessSpec{Path: "exit", Args: []string{"0"}}},
	}
	if err := two.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if calls != 1 {
		t.Fatalf("%d calls, want 1", calls)
	}
}
