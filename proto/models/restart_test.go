package models

import (
	"fmt"
	"math"
	"testing"
	"time"
)

func TestRestartConstants(t *testing.T) {
	// diego-facts §3; these numbers are the policy, so pin them.
	if DefaultImmediateRestarts != 3 || CrashBackoffMinDuration != 30*time.Second ||
		DefaultMaxBackoffDuration != 16*time.Minute || DefaultMaxRestarts != 200 ||
		CrashResetTimeout != 5*time.Minute || StaleUnclaimedActualLRPDuration != 30*time.Second {
		t.Fatal("restart policy constants changed")
	}
	c := NewDefaultRestartCalculator()
	if c != (RestartCalculator{ImmediateRestarts: 3, MaxBackoffDuration: 16 * time.Minute, MaxRestarts: 200}) {
		t.Fatalf("default calculator = %+v", c)
	}
	if got := c.maxBackoffCount(); got != 5 {
		t.Fatalf("maxBackoffCount = %d, want 5", got)
	}
}

// expectedWait is the schedule of diego-facts §3: -1 means never restarted.
func expectedWait(count int32) time.Duration {
	switch {
	case count <= 2:
		return 0
	case count == 3:
		return 30 * time.Second
	case count == 4:
		return time.Minute
	case count == 5:
		return 2 * time.Minute
	case count == 6:
		return 4 * time.Minute
	case count == 7:
		return 8 * time.Minute
	case count < 200:
		return 16 * time.Minute
	default:
		return -1
	}
}

func TestShouldRestartEveryCount(t *testing.T) {
	c := NewDefaultRestartCalculator()
	crashedAt := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano()
	for count := int32(0); count <= 201; count++ {
		t.Run(fmt.Sprint(count), func(t *testing.T) {
			wait := expectedWait(count)
			switch {
			case wait < 0:
				for _, after := range []time.Duration{0, 16 * time.Minute, 24 * time.Hour * 365} {
					if c.ShouldRestart(crashedAt+int64(after), crashedAt, count) {
						t.Errorf("restarted %v after crash", after)
					}
				}
			case wait == 0:
				if !c.ShouldRestart(crashedAt, crashedAt, count) || !c.ShouldRestart(0, 0, count) {
					t.Error("not restarted immediately")
				}
				if c.Backoff(count) != 0 {
					t.Errorf("Backoff = %v, want 0", c.Backoff(count))
				}
			default:
				if got := c.Backoff(count); got != wait {
					t.Errorf("Backoff = %v, want %v", got, wait)
				}
				if c.ShouldRestart(crashedAt+int64(wait)-1, crashedAt, count) {
					t.Errorf("restarted 1ns before %v", wait)
				}
				if c.ShouldRestart(crashedAt, crashedAt, count) {
					t.Error("restarted at the crash instant")
				}
				if !c.ShouldRestart(crashedAt+int64(wait), crashedAt, count) {
					t.Errorf("not restarted at %v", wait)
				}
				if !c.ShouldRestart(crashedAt+int64(wait)+int64(time.Hour), crashedAt, count) {
					t.Errorf("not restarted an hour after %v", wait)
				}
			}

			a := &ActualLRP{State: ActualLRP_CRASHED, CrashCount: count, Since: crashedAt}
			if got := a.ShouldRestartImmediately(c); got != (wait == 0) {
				t.Errorf("ShouldRestartImmediately = %v", got)
			}
			if wait > 0 {
				if a.ShouldRestartCrash(crashedAt+int64(wait)-1, c) || !a.ShouldRestartCrash(crashedAt+int64(wait), c) {
					t.Errorf("ShouldRestartCrash does not switch at %v", wait)
				}
			}
			if wait < 0 && a.ShouldRestartCrash(crashedAt+int64(time.Hour), c) {
				t.Error("ShouldRestartCrash restarted a given-up instance")
			}
		})
	}
}

func TestShouldRestartCrashOnlyForCrashedRows(t *testing.T) {
	c := NewDefaultRestartCalculator()
	now := int64(time.Hour)
	for _, s := range []ActualLRP_State{ActualLRP_STATE_UNSPECIFIED, ActualLRP_UNCLAIMED, ActualLRP_CLAIMED, ActualLRP_RUNNING, ActualLRP_CRASHED} {
		a := &ActualLRP{State: s, CrashCount: 4, Since: 0}
		if got, want := a.ShouldRestartCrash(now, c), s == ActualLRP_CRASHED; got != want {
			t.Errorf("%s: ShouldRestartCrash = %v, want %v", s, got, want)
		}
	}
	var nilLRP *ActualLRP
	if nilLRP.ShouldRestartCrash(now, c) {
		t.Error("nil row restarted")
	}
	if !nilLRP.ShouldRestartImmediately(c) {
		t.Error("nil row (count 0) not restarted immediately")
	}
}

func TestNextCrashCount(t *testing.T) {
	now := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC).UnixNano()
	ago := func(d time.Duration) int64 { return now - int64(d) }
	tests := []struct {
		name  string
		state ActualLRP_State
		since int64
		count int32
		want  int32
	}{
		{"first crash", ActualLRP_RUNNING, ago(time.Minute), 0, 1},
		{"running 4m59s", ActualLRP_RUNNING, ago(4*time.Minute + 59*time.Second), 6, 7},
		{"running exactly 5m", ActualLRP_RUNNING, ago(5 * time.Minute), 6, 7},
		{"running 5m01s", ActualLRP_RUNNING, ago(5*time.Minute + time.Second), 6, 1},
		{"running 5m + 1ns", ActualLRP_RUNNING, ago(5*time.Minute + 1), 199, 1},
		{"running a day", ActualLRP_RUNNING, ago(24 * time.Hour), 250, 1},
		{"claimed long ago never resets", ActualLRP_CLAIMED, ago(time.Hour), 6, 7},
		{"crashed long ago never resets", ActualLRP_CRASHED, ago(time.Hour), 6, 7},
		{"unclaimed long ago never resets", ActualLRP_UNCLAIMED, ago(time.Hour), 2, 3},
		{"past the give-up count", ActualLRP_RUNNING, ago(time.Second), 200, 201},
		{"saturates", ActualLRP_RUNNING, ago(time.Second), math.MaxInt32, math.MaxInt32},
	}
	for _, tc := range tests {
		a := &ActualLRP{State: tc.state, Since: tc.since, CrashCount: tc.count}
		if got := NextCrashCount(a, now); got != tc.want {
			t.Errorf("%s: NextCrashCount = %d, want %d", tc.name, got, tc.want)
		}
	}
	if got := NextCrashCount(nil, now); got != 1 {
		t.Errorf("NextCrashCount(nil) = %d, want 1", got)
	}
}

func TestCrashSequence(t *testing.T) {
	// Replays quick crashes the way the BBS applies the policy: increment,
	// then restart at once or write CRASHED and wait for convergence.
	c := NewDefaultRestartCalculator()
	a := &ActualLRP{State: ActualLRP_RUNNING}
	now := int64(0)
	var immediate []int32
	for i := 0; i < 10; i++ {
		a.CrashCount = NextCrashCount(a, now)
		a.State = ActualLRP_CRASHED
		a.Since = now
		if a.ShouldRestartImmediately(c) {
			immediate = append(immediate, a.CrashCount)
		} else {
			for !a.ShouldRestartCrash(now, c) {
				now += int64(30 * time.Second) // convergence ticks
			}
		}
		a.State, a.Since = ActualLRP_RUNNING, now
		now += int64(time.Second)
	}
	// Counts are checked after the increment, so only crashes 1 and 2
	// restart at once.
	if fmt.Sprint(immediate) != "[1 2]" {
		t.Errorf("immediate restarts at counts %v, want [1 2]", immediate)
	}
}

func TestCustomRestartCalculator(t *testing.T) {
	c := RestartCalculator{ImmediateRestarts: 1, MaxBackoffDuration: 2 * time.Minute, MaxRestarts: 5}
	wants := []time.Duration{0, 30 * time.Second, time.Minute, 2 * time.Minute, 2 * time.Minute}
	for count, want := range wants {
		if got := c.Backoff(int32(count)); got != want {
			t.Errorf("Backoff(%d) = %v, want %v", count, got, want)
		}
	}
	if c.ShouldRestart(1<<62, 0, 5) {
		t.Error("restarted at MaxRestarts")
	}
	// A cap that is not a power-of-two multiple of 30 s still caps.
	c = RestartCalculator{ImmediateRestarts: 0, MaxBackoffDuration: 100 * time.Second, MaxRestarts: 100}
	if got := c.Backoff(3); got != 100*time.Second {
		t.Errorf("Backoff(3) = %v, want 100s", got)
	}
	// The zero value restarts nothing it does not have to, and never panics.
	var zero RestartCalculator
	if zero.ShouldRestart(1<<62, 0, 0) {
		t.Error("zero calculator restarted")
	}
	_ = zero.Backoff(math.MaxInt32)
	huge := RestartCalculator{ImmediateRestarts: math.MinInt32, MaxBackoffDuration: math.MaxInt64, MaxRestarts: math.MaxInt32}
	if d := huge.Backoff(math.MaxInt32); d <= 0 {
		t.Errorf("Backoff overflowed: %v", d)
	}
}
