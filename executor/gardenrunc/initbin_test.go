package gardenrunc

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestInitBinaryReapsAndPauses runs garden-init on the host: it must stay
// up (pause) until killed, and be named garden-init.
func TestInitBinaryReapsAndPauses(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("built-in init is amd64 only")
	}
	path, err := installInit(t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(path)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		comm, _ := os.ReadFile(filepath.Join("/proc", itoa(cmd.Process.Pid), "comm"))
		status, _ := os.ReadFile(filepath.Join("/proc", itoa(cmd.Process.Pid), "status"))
		// Sleeping with SIGCHLD ignored: it has set up and paused. (It
		// can be seen sleeping an instant before its sigaction, so keep
		// looking until the deadline rather than judge the first sight.)
		if strings.TrimSpace(string(comm)) == "garden-init" && strings.Contains(string(status), "State:\tS") &&
			ignoresSIGCHLD(string(status)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("garden-init not paused with SIGCHLD ignored: comm %q\n%s", comm, status)
		}
		select {
		case err := <-done:
			t.Fatalf("garden-init exited: %v", err)
		case <-time.After(5 * time.Millisecond):
		}
	}
	cmd.Process.Signal(syscall.SIGKILL)
	<-done
}

// ignoresSIGCHLD reads the SigIgn mask of a /proc status: SIGCHLD (17) is
// bit 16. Other bits may be set too: ignored signals are inherited across
// exec from whatever started the test.
func ignoresSIGCHLD(status string) bool {
	for _, line := range strings.Split(status, "\n") {
		if hex, ok := strings.CutPrefix(line, "SigIgn:\t"); ok {
			mask, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
			return err == nil && mask&(1<<(17-1)) != 0
		}
	}
	return false
}
