// Package roottest gates tests that need root and host tools (runc,
// iptables, busybox): they skip where those are missing, unless
// GAVEL_REQUIRE_ROOT=1 (as in CI), where a missing requirement fails the
// test instead, so a green CI run cannot hide skipped container tests.
package roottest

import (
	"os"
	"os/exec"
	"testing"
)

// Required reports whether missing requirements must fail tests.
func Required() bool { return os.Getenv("GAVEL_REQUIRE_ROOT") == "1" }

// Check returns why the requirements are not met: not root, or a binary
// missing from PATH (or from an absolute path). "" means all is there.
func Check(binaries ...string) string {
	if os.Geteuid() != 0 {
		return "needs root"
	}
	for _, b := range binaries {
		if _, err := exec.LookPath(b); err != nil {
			return "needs " + b + " (hack/deps.sh test)"
		}
	}
	return ""
}

// Require skips (or, when Required, fails) t unless it runs as root with
// every binary available.
func Require(t testing.TB, binaries ...string) {
	t.Helper()
	if why := Check(binaries...); why != "" {
		if Required() {
			t.Fatalf("GAVEL_REQUIRE_ROOT=1: %s", why)
		}
		t.Skip(why)
	}
}
