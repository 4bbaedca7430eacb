package testrootfs

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/layout"
)

func TestBuildAndLayout(t *testing.T) {
	if _, err := os.Stat(DefaultBusybox); err != nil {
		if os.Getenv("GAVEL_REQUIRE_ROOT") == "1" {
			t.Fatalf("%v", ErrNoBusybox)
		}
		t.Skip(ErrNoBusybox)
	}
	dir := filepath.Join(t.TempDir(), "rootfs")
	if err := Build(dir, ""); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(filepath.Join(dir, "bin/sh"), "-c", "echo ok").Output()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("rootfs sh: %q %v", out, err)
	}
	if target, err := os.Readlink(filepath.Join(dir, "usr/bin/env")); err != nil || target != "../../bin/busybox" {
		t.Fatalf("usr/bin/env link = %q, %v", target, err)
	}
	passwd, _ := os.ReadFile(filepath.Join(dir, "etc/passwd"))
	if !strings.Contains(string(passwd), "vcap:x:1000:1000") {
		t.Fatalf("passwd %q", passwd)
	}

	lay := filepath.Join(t.TempDir(), "layout")
	if _, err := OCILayout(dir, lay, []string{"A=1"}); err != nil {
		t.Fatal(err)
	}
	p, err := layout.FromPath(lay)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	m, err := idx.IndexManifest()
	if err != nil || len(m.Manifests) != 1 {
		t.Fatalf("layout manifests = %v, %v", m, err)
	}
}
