package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

var gavelBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gavel-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	gavelBin = filepath.Join(dir, "gavel")
	build := exec.Command("go", "build", "-race", "-o", gavelBin, ".")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build gavel:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// devProcess is one running `gavel dev`.
type devProcess struct {
	cmd *exec.Cmd
	log *lockedBuffer
}

func startDev(t testing.TB, home string, args []string) *devProcess {
	t.Helper()
	cmd := exec.Command(gavelBin, append([]string{"dev"}, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+home, "GAVEL_CONFIG=")
	log := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &devProcess{cmd: cmd, log: log}
	t.Cleanup(func() { p.stop(t) })
	return p
}

func (p *devProcess) stop(t testing.TB) {
	if p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("gavel dev exited with %v\n%s", err, p.log.String())
		}
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
		t.Errorf("gavel dev did not stop on SIGTERM\n%s", p.log.String())
	}
}

// gavel runs the CLI as a user would: no flags, config found under HOME.
func gavel(t testing.TB, home string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(gavelBin, args...)
	cmd.Env = append(os.Environ(), "HOME="+home, "GAVEL_CONFIG=")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func waitForCLI(t testing.TB, home string, p *devProcess) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, err := gavel(t, home, "domains")
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("gavel dev never answered: %v %s\n%s", err, out, p.log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// gavel dev restarted keeps every desired LRP and task, and the CLI works
// with no flags against it.
func TestDevRestartKeepsStateAndCLIWorksWithoutFlags(t *testing.T) {
	home := t.TempDir()
	debug := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	args := []string{
		"--bbs-address", fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		"--auctioneer-address", fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		"--route-emitter-address", fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		"--gossip-address", fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		"--etcd-client-url", fmt.Sprintf("http://127.0.0.1:%d", freePort(t)),
		"--etcd-peer-url", fmt.Sprintf("http://127.0.0.1:%d", freePort(t)),
		"--debug-address", debug,
		"--cells", "0",
	}
	p := startDev(t, home, args)
	waitForCLI(t, home, p)
	if _, err := os.Stat(filepath.Join(home, ".gavel", "dev", "client.json")); err != nil {
		t.Fatalf("client.json not written in the default data dir: %v", err)
	}

	lrp := `{"process_guid":"web","domain":"apps","instances":3,"rootfs":"preloaded:busybox","memory_mb":64,
	  "action":{"run":{"path":"/bin/httpd","args":["-f","-p","8080"],"user":"root"}}}`
	if out, err := gavel(t, home, "create-desired-lrp", lrp); err != nil {
		t.Fatalf("create-desired-lrp: %v %s", err, out)
	}
	// The auctioneer runs, and with no cell yet it says so on each instance.
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := gavel(t, home, "actual-lrps", "-p", "web")
		if err == nil && strings.Count(out, `"placement_error":"no cells available"`) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no placement error from the auctioneer: %v %s\n%s", err, out, p.log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	task := `{"task_guid":"job-1","domain":"jobs","task_definition":{"rootfs":"preloaded:busybox","action":{"run":{"path":"/bin/true"}}}}`
	if out, err := gavel(t, home, "create-task", task); err != nil {
		t.Fatalf("create-task: %v %s", err, out)
	}
	out, err := gavel(t, home, "create-desired-lrp", `{"process_guid":"bad guid","domain":"apps"}`)
	if err == nil || !strings.Contains(out, "process_guid") {
		t.Fatalf("bad spec accepted or field not named: %v %s", err, out)
	}
	resp, err := http.Get("http://" + debug + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %s", resp.Status)
	}
	if resp, err = http.Get("http://" + debug + "/healthz"); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz: %v %v", resp, err)
	}
	resp.Body.Close()

	p.stop(t)
	p = startDev(t, home, args)
	waitForCLI(t, home, p)

	out, err = gavel(t, home, "desired-lrps")
	if err != nil || !strings.Contains(out, `"process_guid":"web"`) || !strings.Contains(out, `"instances":3`) {
		t.Fatalf("desired-lrps after restart: %v %s", err, out)
	}
	out, err = gavel(t, home, "actual-lrps", "-p", "web")
	if err != nil || strings.Count(out, `"state":"UNCLAIMED"`) != 3 {
		t.Fatalf("actual-lrps after restart: %v %s", err, out)
	}
	out, err = gavel(t, home, "tasks")
	if err != nil || !strings.Contains(out, `"task_guid":"job-1"`) {
		t.Fatalf("tasks after restart: %v %s", err, out)
	}
	if strings.Contains(out, "bad guid") {
		t.Fatalf("refused spec was stored: %s", out)
	}
}
