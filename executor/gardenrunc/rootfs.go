package gardenrunc

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"golang.org/x/sys/unix"

	"github.com/gavel-scheduler/gavel/executor/garden"
)

// image is a resolved rootfs: the read-only lower directory of the
// container's overlay and the environment the image declares.
type image struct {
	Dir string   `json:"dir"`
	Env []string `json:"env,omitempty"`
}

// imageSource says where a URI points, before anything is read.
type imageSource struct {
	kind string // "dir", "oci-layout", "oci-tarball"
	path string
	tag  string
}

// parseImageURI maps a rootfs URI to its source:
//
//	""                       the default rootfs directory
//	raw:///abs/dir           that directory
//	preloaded:NAME           Config.Preloaded[NAME]
//	oci:///abs/path[#tag]    an OCI image layout directory, or an image tarball
//	docker:///name[:tag]     the layout <ImageStore>/<name>/<tag>
func parseImageURI(uri, defaultRootFS string, preloaded map[string]string, store string) (imageSource, error) {
	if uri == "" {
		if defaultRootFS == "" {
			return imageSource{}, errors.New("no rootfs given and no default rootfs configured")
		}
		return imageSource{kind: "dir", path: defaultRootFS}, nil
	}
	if name, ok := strings.CutPrefix(uri, "preloaded:"); ok {
		dir, ok := preloaded[name]
		if !ok {
			return imageSource{}, fmt.Errorf("rootfs %q: no preloaded rootfs named %q", uri, name)
		}
		return imageSource{kind: "dir", path: dir}, nil
	}
	u, err := url.Parse(uri)
	if err != nil {
		return imageSource{}, fmt.Errorf("rootfs %q: %w", uri, err)
	}
	if u.Host != "" {
		return imageSource{}, fmt.Errorf("rootfs %q: remote registries are not supported (use scheme:///path)", uri)
	}
	if u.Path == "" || !filepath.IsAbs(u.Path) || filepath.Clean(u.Path) != u.Path {
		if u.Scheme != "docker" || u.Path == "" {
			return imageSource{}, fmt.Errorf("rootfs %q: path must be absolute and clean", uri)
		}
	}
	switch u.Scheme {
	case "raw":
		return imageSource{kind: "dir", path: u.Path}, nil
	case "oci":
		if strings.HasSuffix(u.Path, ".tar") {
			return imageSource{kind: "oci-tarball", path: u.Path, tag: u.Fragment}, nil
		}
		return imageSource{kind: "oci-layout", path: u.Path, tag: u.Fragment}, nil
	case "docker":
		if store == "" {
			return imageSource{}, fmt.Errorf("rootfs %q: no image store configured", uri)
		}
		name, tag := strings.TrimPrefix(u.Path, "/"), u.Fragment
		if i := strings.LastIndexByte(name, ':'); i > strings.LastIndexByte(name, '/') {
			name, tag = name[:i], name[i+1:]
		}
		if tag == "" {
			tag = "latest"
		}
		if name == "" || strings.Contains(name, "..") || strings.Contains(tag, "/") || strings.Contains(tag, "..") {
			return imageSource{}, fmt.Errorf("rootfs %q: bad image name", uri)
		}
		return imageSource{kind: "oci-layout", path: filepath.Join(store, name, tag)}, nil
	}
	return imageSource{}, fmt.Errorf("rootfs %q: unsupported scheme %q", uri, u.Scheme)
}

// imageCache unpacks OCI images once, by digest, under dir.
type imageCache struct {
	dir string
	mu  sync.Mutex // serialises unpacking

	sizesMu sync.Mutex
	sizes   map[string]usage
}

func (c *imageCache) resolve(src imageSource) (image, error) {
	if src.kind == "dir" {
		fi, err := os.Stat(src.path)
		if err != nil {
			return image{}, fmt.Errorf("rootfs %s: %w", src.path, err)
		}
		if !fi.IsDir() {
			return image{}, fmt.Errorf("rootfs %s: not a directory", src.path)
		}
		return image{Dir: src.path}, nil
	}
	img, err := loadImage(src)
	if err != nil {
		return image{}, err
	}
	digest, err := img.Digest()
	if err != nil {
		return image{}, fmt.Errorf("image digest: %w", err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return image{}, fmt.Errorf("image config: %w", err)
	}
	dir := filepath.Join(c.dir, digest.Hex)
	out := image{Dir: filepath.Join(dir, "rootfs"), Env: cfg.Config.Env}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := os.Stat(out.Dir); err == nil {
		return out, nil
	}
	tmp := dir + ".unpacking"
	_ = os.RemoveAll(tmp)
	if err := os.MkdirAll(filepath.Join(tmp, "rootfs"), 0o755); err != nil {
		return image{}, err
	}
	rc := mutate.Extract(img)
	defer rc.Close()
	if err := extractTar(filepath.Join(tmp, "rootfs"), rc, owner{preserve: true}); err != nil {
		_ = os.RemoveAll(tmp)
		return image{}, fmt.Errorf("unpack image %s: %w", digest, err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return image{}, err
	}
	return out, nil
}

func loadImage(src imageSource) (v1.Image, error) {
	if src.kind == "oci-tarball" {
		var tag *name.Tag
		if src.tag != "" {
			t, err := name.NewTag(src.tag)
			if err != nil {
				return nil, fmt.Errorf("image tarball tag %q: %w", src.tag, err)
			}
			tag = &t
		}
		img, err := tarball.ImageFromPath(src.path, tag)
		if err != nil {
			return nil, fmt.Errorf("image tarball %s: %w", src.path, err)
		}
		return img, nil
	}
	p, err := layout.FromPath(src.path)
	if err != nil {
		return nil, fmt.Errorf("image layout %s: %w", src.path, err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return nil, fmt.Errorf("image layout %s: %w", src.path, err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("image layout %s: %w", src.path, err)
	}
	for _, d := range m.Manifests {
		if src.tag != "" && d.Annotations["org.opencontainers.image.ref.name"] != src.tag {
			continue
		}
		if d.MediaType.IsIndex() {
			continue
		}
		return idx.Image(d.Digest)
	}
	return nil, fmt.Errorf("image layout %s: no image (tag %q)", src.path, src.tag)
}

// overlay is a container's copy-on-write root.
type overlay struct {
	Root  string `json:"root"`  // mount point, runc's root.path
	Layer string `json:"layer"` // holds upper/ and work/; a tmpfs when disk-limited
	Tmpfs bool   `json:"tmpfs"`
}

// mountOverlay mounts lower with a fresh upper layer at dir/rootfs. A disk
// limit puts the upper layer on a tmpfs of that size.
func mountOverlay(dir, lower string, disk garden.DiskLimits) (overlay, error) {
	o := overlay{Root: filepath.Join(dir, "rootfs"), Layer: filepath.Join(dir, "layer")}
	for _, d := range []string{o.Root, o.Layer} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return o, err
		}
	}
	if disk.ByteHard > 0 || disk.InodeHard > 0 {
		opts := "mode=0755"
		if disk.ByteHard > 0 {
			opts += fmt.Sprintf(",size=%d", disk.ByteHard)
		}
		if disk.InodeHard > 0 {
			opts += fmt.Sprintf(",nr_inodes=%d", disk.InodeHard)
		}
		if err := unix.Mount("tmpfs", o.Layer, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
			return o, fmt.Errorf("mount disk-limited layer: %w", err)
		}
		o.Tmpfs = true
	}
	upper, work := filepath.Join(o.Layer, "upper"), filepath.Join(o.Layer, "work")
	for _, d := range []string{upper, work} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return o, err
		}
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", lower, upper, work)
	if err := unix.Mount("overlay", o.Root, "overlay", 0, opts); err != nil {
		return o, fmt.Errorf("mount overlay: %w", err)
	}
	return o, nil
}

// unmount removes the overlay and its layer mount; mounts already gone are
// no error.
func (o overlay) unmount() error {
	var errs []error
	for _, m := range []struct {
		path string
		on   bool
	}{{o.Root, true}, {o.Layer, o.Tmpfs}} {
		if !m.on || m.path == "" {
			continue
		}
		if err := unix.Unmount(m.path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", m.path, err))
		}
	}
	return errors.Join(errs...)
}

// copyFileTo writes r to path with mode.
func copyFileTo(path string, r io.Reader, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// size is the disk usage of an image directory, computed once.
func (c *imageCache) size(dir string) usage {
	c.sizesMu.Lock()
	defer c.sizesMu.Unlock()
	if c.sizes == nil {
		c.sizes = map[string]usage{}
	}
	u, ok := c.sizes[dir]
	if !ok {
		u = diskUsage(dir)
		c.sizes[dir] = u
	}
	return u
}
