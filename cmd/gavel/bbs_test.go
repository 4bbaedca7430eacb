package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gavel-scheduler/gavel/internal/clientconfig"
	"github.com/gavel-scheduler/gavel/internal/etcdembed"
)

// Two `gavel bbs` processes serve one etcd; a config file is read and the
// flags given override it; what one writes the other serves.
func TestTwoBBSProcessesShareOneEtcd(t *testing.T) {
	etcd, _ := etcdembed.StartForTestOpts(t, etcdembed.Options{NoFsync: true})
	dir := t.TempDir()
	certsOut, err := exec.Command(gavelBin, "certs", "--dir", filepath.Join(dir, "certs")).CombinedOutput()
	if err != nil {
		t.Fatalf("gavel certs: %v %s", err, certsOut)
	}
	certs := filepath.Join(dir, "certs")
	cfgPath := filepath.Join(dir, "bbs.yaml")
	cfg := fmt.Sprintf("listen_address: 127.0.0.1:1\netcd_endpoints: [%s]\nca_cert: %s\nserver_cert: %s\nserver_key: %s\nshutdown_timeout: 5s\nlog_level: warn\n",
		etcd.Endpoints()[0], filepath.Join(certs, "ca.crt"), filepath.Join(certs, "bbs.crt"), filepath.Join(certs, "bbs.key"))
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var addrs []string
	for range 2 {
		addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		cmd := exec.Command(gavelBin, "bbs", "--config", cfgPath, "--listen-address", addr,
			"--debug-address", fmt.Sprintf("127.0.0.1:%d", freePort(t)))
		var log strings.Builder
		cmd.Stdout, cmd.Stderr = &log, &log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			if err := cmd.Wait(); err != nil {
				t.Errorf("gavel bbs exit: %v\n%s", err, log.String())
			}
		})
		addrs = append(addrs, addr)
	}
	clientCfg := func(addr string) string {
		path := filepath.Join(dir, strings.ReplaceAll(addr, ":", "_")+".json")
		if err := clientconfig.Write(path, &clientconfig.Config{BBSAddress: addr, CACert: filepath.Join(certs, "ca.crt"),
			ClientCert: filepath.Join(certs, "client.crt"), ClientKey: filepath.Join(certs, "client.key")}); err != nil {
			t.Fatal(err)
		}
		return path
	}
	cli := func(addr string, args ...string) (string, error) {
		out, err := exec.Command(gavelBin, append([]string{"--config", clientCfg(addr)}, args...)...).CombinedOutput()
		return string(out), err
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, a := range addrs {
		for {
			if _, err := cli(a, "domains"); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("bbs at %s never answered", a)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	spec := `{"process_guid":"shared","domain":"apps","instances":2,"rootfs":"preloaded:busybox","action":{"run":{"path":"/bin/true"}}}`
	if out, err := cli(addrs[0], "create-desired-lrp", spec); err != nil {
		t.Fatalf("create via first BBS: %v %s", err, out)
	}
	out, err := cli(addrs[1], "desired-lrp", "shared", "-o", "json")
	if err != nil {
		t.Fatalf("read via second BBS: %v %s", err, out)
	}
	var got struct {
		Instances int `json:"instances"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil || got.Instances != 2 {
		t.Fatalf("second BBS served %q (%v)", out, err)
	}
}
