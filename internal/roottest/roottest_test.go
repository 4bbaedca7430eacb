package roottest

import "testing"

func TestCheckNamesMissingBinary(t *testing.T) {
	if Check() != "" && Check() != "needs root" {
		t.Fatalf("Check() = %q", Check())
	}
	if why := Check("/nonexistent/gavel-no-such-tool"); why == "" {
		t.Fatal("missing binary not reported")
	}
}
