// Package testrootfs assembles a small busybox root filesystem for tests and
// `gavel dev`, built on the spot from Debian's busybox-static package
// (/bin/busybox): nothing binary is committed and nothing is downloaded.
//
// Build lays out a directory with /bin/busybox, a link for every applet
// busybox reports (`busybox --list-full`), /etc/passwd and /etc/group with
// root, a "vcap" user (uid 1000) and nobody, and the usual empty
// directories. OCILayout packs such a directory as a one-layer OCI image
// layout, for the image code paths that unpack layers.
package testrootfs

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// DefaultBusybox is where busybox-static installs the binary.
const DefaultBusybox = "/bin/busybox"

// ErrNoBusybox is returned when the busybox binary is missing; install
// the busybox-static package (hack/deps.sh test).
var ErrNoBusybox = errors.New("busybox not found: install busybox-static (hack/deps.sh test)")

// Build creates a busybox rootfs in dir (which must not exist or be empty)
// from the busybox binary at busybox ("" means DefaultBusybox).
func Build(dir, busybox string) error {
	if busybox == "" {
		busybox = DefaultBusybox
	}
	if _, err := os.Stat(busybox); err != nil {
		return fmt.Errorf("%w: %v", ErrNoBusybox, err)
	}
	out, err := exec.Command(busybox, "--list-full").Output()
	if err != nil {
		return fmt.Errorf("busybox --list-full: %w", err)
	}
	for _, d := range []string{"bin", "sbin", "usr/bin", "usr/sbin", "etc", "tmp", "root", "home/vcap", "proc", "sys", "dev", "var/tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	for _, d := range []string{"tmp", "var/tmp"} {
		if err := os.Chmod(filepath.Join(dir, d), 0o1777); err != nil {
			return err
		}
	}
	if err := os.Chown(filepath.Join(dir, "home/vcap"), 1000, 1000); err != nil {
		return err
	}
	if err := copyFile(busybox, filepath.Join(dir, "bin/busybox")); err != nil {
		return err
	}
	for _, applet := range strings.Fields(string(out)) {
		if applet == "bin/busybox" {
			continue
		}
		target, err := filepath.Rel(filepath.Dir(applet), "bin/busybox")
		if err != nil {
			return err
		}
		if err := os.Symlink(target, filepath.Join(dir, applet)); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("link applet %s: %w", applet, err)
		}
	}
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\nvcap:x:1000:1000:vcap:/home/vcap:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
		"etc/group":  "root:x:0:\nvcap:x:1000:\nnogroup:x:65534:\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// OCILayout writes rootfs (a directory) as a one-layer image into an OCI
// image layout at dir, with env as the image's environment, and returns the
// image.
func OCILayout(rootfs, dir string, env []string) (v1.Image, error) {
	var buf bytes.Buffer
	if err := tarDir(rootfs, &buf); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	})
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.Config.Env = env
	cfg.OS, cfg.Architecture = "linux", "amd64"
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		return nil, err
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return nil, err
	}
	if err := p.AppendImage(img); err != nil {
		return nil, err
	}
	return img, nil
}

// tarDir writes dir's tree as a tar stream with relative names.
func tarDir(dir string, w io.Writer) error {
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil || rel == "." {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		if d.Type()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(path); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(rel)
		if d.IsDir() {
			hdr.Name += "/"
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if d.Type().IsRegular() {
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			defer f.Close()
			if _, err := io.Copy(tw, f); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return tw.Close()
}
