package steps

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gavel-scheduler/gavel/executor/logs"
)

// recorder builds steps that record their runs.
type recorder struct {
	mu   sync.Mutex
	runs []string
}

func (r *recorder) add(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.runs = append(r.runs, s)
}

func (r *recorder) got() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.runs, ",")
}

// ok succeeds, fail fails with its name, block waits for cancellation.
func (r *recorder) ok(name string) Step {
	return Func(func(ctx context.Context) error { r.add(name); return nil })
}

func (r *recorder) fail(name string) Step {
	return Func(func(ctx context.Context) error { r.add(name); return errors.New(name + " failed") })
}

func (r *recorder) block(name string) Step {
	return Func(func(ctx context.Context) error {
		<-ctx.Done()
		r.add(name + " cancelled")
		return ErrCancelled
	})
}

func TestComposites(t *testing.T) {
	tests := []struct {
		name    string
		step    func(r *recorder) Step
		wantErr string // "" for success
		want    string // recorded runs, sorted for concurrent steps
		sorted  bool
	}{
		{"serial runs in order", func(r *recorder) Step { return Serial{r.ok("a"), r.ok("b"), r.ok("c")} }, "", "a,b,c", false},
		{"serial stops at first failure", func(r *recorder) Step { return Serial{r.ok("a"), r.fail("b"), r.ok("c")} }, "b failed", "a,b", false},
		{"parallel runs all and joins failures", func(r *recorder) Step { return Parallel{r.fail("a"), r.ok("b"), r.fail("c")} }, "a failed; c failed", "a,b,c", true},
		{"parallel success", func(r *recorder) Step { return Parallel{r.ok("a"), r.ok("b")} }, "", "a,b", true},
		{"codependent failure cancels the rest", func(r *recorder) Step { return Codependent{r.block("a"), r.fail("b"), r.block("c")} },
			"b failed", "a cancelled,b,c cancelled", true},
		{"codependent success waits for all", func(r *recorder) Step { return Codependent{r.ok("a"), r.ok("b")} }, "", "a,b", true},
		{"try swallows failure", func(r *recorder) Step { return Serial{Try{Step: r.fail("a")}, r.ok("b")} }, "", "a,b", false},
		{"timeout passes a quick step", func(r *recorder) Step { return Timeout{Step: r.ok("a"), After: time.Minute} }, "", "a", false},
		{"timeout fails a slow step", func(r *recorder) Step { return Timeout{Step: r.block("a"), After: 20 * time.Millisecond} },
			"exceeded 20ms timeout", "a cancelled", false},
		{"timeout keeps the step's own failure", func(r *recorder) Step { return Timeout{Step: r.fail("a"), After: time.Minute} }, "a failed", "a", false},
		{"nested: serial of parallel and try", func(r *recorder) Step {
			return Serial{Parallel{r.ok("p1"), r.ok("p2")}, Try{Step: Timeout{Step: r.block("t"), After: 10 * time.Millisecond}}, r.ok("z")}
		}, "", "p1,p2,t cancelled,z", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &recorder{}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := tt.step(r).Run(ctx)
			if gotErr := fmt.Sprint(err); (tt.wantErr == "" && err != nil) || (tt.wantErr != "" && gotErr != tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			got := r.got()
			if tt.sorted {
				parts := strings.Split(got, ",")
				sortStrings(parts)
				got = strings.Join(parts, ",")
			}
			if got != tt.want {
				t.Fatalf("runs = %s, want %s", got, tt.want)
			}
		})
	}
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// TestCancellationReachesEveryKind cancels each composite while its child
// blocks and expects ErrCancelled back promptly.
func TestCancellationReachesEveryKind(t *testing.T) {
	r := &recorder{}
	kinds := map[string]Step{
		"serial":        Serial{r.block("x")},
		"parallel":      Parallel{r.block("x"), r.ok("y")},
		"codependent":   Codependent{r.block("x"), r.block("y")},
		"try":           Try{Step: r.block("x")},
		"timeout":       Timeout{Step: r.block("x"), After: time.Hour},
		"emit-progress": EmitProgress{Step: r.block("x"), FailurePrefix: "oops"},
	}
	for name, st := range kinds {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- st.Run(ctx) }()
			cancel()
			select {
			case err := <-done:
				if !errors.Is(err, ErrCancelled) {
					t.Fatalf("err = %v, want ErrCancelled", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("step did not stop after cancel")
			}
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := (Serial{r.ok("never")}).Run(ctx); !errors.Is(err, ErrCancelled) {
		t.Fatalf("serial on a cancelled ctx = %v", err)
	}
	if strings.Contains(r.got(), "never") {
		t.Fatal("serial ran a step after cancellation")
	}
}

func TestEmitProgressAndTryLog(t *testing.T) {
	r := &recorder{}
	ring := logs.NewRing(100, 1<<20)
	ok := EmitProgress{Step: r.ok("a"), Logs: ring, Source: "STG", StartMessage: "Starting", SuccessMessage: "Done", FailurePrefix: "Failed"}
	bad := EmitProgress{Step: r.fail("b"), Logs: ring, Source: "STG", StartMessage: "Again", FailurePrefix: "Failed"}
	if err := ok.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := bad.Run(context.Background()); err == nil || err.Error() != "b failed" {
		t.Fatalf("emit-progress changed the failure: %v", err)
	}
	if err := (Try{Step: r.fail("c"), Logs: ring, Source: "TRY"}).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	lines, _ := ring.Read(0, 0)
	var got []string
	for _, l := range lines {
		got = append(got, l.Source+":"+l.Text)
	}
	want := "STG:Starting|STG:Done|STG:Again|STG:Failed: b failed|TRY:Failed (ignored): c failed"
	if strings.Join(got, "|") != want {
		t.Fatalf("log = %s\nwant %s", strings.Join(got, "|"), want)
	}
}
