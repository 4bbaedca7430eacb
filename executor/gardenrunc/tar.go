package gardenrunc

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"syscall"
	"time"
)

// errPathTraversal refuses tar entries that would land outside the
// extraction directory.
var errPathTraversal = errors.New("path traversal refused")

// tarEntryPath validates a tar entry name and returns it relative to the
// extraction directory ("" for the directory itself). Absolute names and
// any ".." component are refused rather than cleaned: an archive that
// tries to climb out is hostile or broken, and either way should not be
// half-applied silently.
func tarEntryPath(name string) (string, error) {
	if name == "" {
		return "", fmt.Errorf("%w: empty entry name", errPathTraversal)
	}
	if strings.HasPrefix(name, "/") {
		return "", fmt.Errorf("%w: absolute entry %q", errPathTraversal, name)
	}
	if strings.ContainsRune(name, 0) || strings.Contains(name, "\\") {
		return "", fmt.Errorf("%w: entry %q", errPathTraversal, name)
	}
	for _, part := range strings.Split(name, "/") {
		if part == ".." {
			return "", fmt.Errorf("%w: entry %q", errPathTraversal, name)
		}
	}
	clean := path.Clean(name)
	if clean == "." {
		return "", nil
	}
	return clean, nil
}

// owner says whom extracted files belong to.
type owner struct {
	// preserve keeps the archive's uid/gid (image unpacking).
	preserve bool
	uid, gid int
	groups   []int
}

// canWrite reports whether o may create entries in a directory with fi's
// owner and mode (root always may).
func (o owner) canWrite(fi fs.FileInfo) bool {
	if o.preserve || o.uid == 0 {
		return true
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return false
	}
	mode := fi.Mode().Perm()
	if int(st.Uid) == o.uid {
		return mode&0o200 != 0
	}
	for _, g := range append([]int{o.gid}, o.groups...) {
		if int(st.Gid) == g {
			return mode&0o020 != 0
		}
	}
	return mode&0o002 != 0
}

// extractTar extracts r under dir, resolving every path inside dir (a
// symlink in the tree cannot lead outside it).
func extractTar(dir string, r io.Reader, o owner) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	return extractTarInRoot(root, "", r, o)
}

// extractTarInRoot extracts r under dest (relative to root, "" for root
// itself), creating dest if missing.
func extractTarInRoot(root *os.Root, dest string, r io.Reader, o owner) error {
	if err := mkdirAllAs(root, dest, o); err != nil {
		return err
	}
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read tar: %w", err)
		}
		rel, err := tarEntryPath(hdr.Name)
		if err != nil {
			return err
		}
		name := path.Join(dest, rel)
		if name == "" {
			name = "."
		}
		if err := extractEntry(root, dest, name, hdr, tr, o); err != nil {
			return fmt.Errorf("%s: %w", hdr.Name, err)
		}
	}
}

// mkdirAllAs creates dir and its missing parents owned by o.
func mkdirAllAs(root *os.Root, dir string, o owner) error {
	if dir == "" || dir == "." {
		return nil
	}
	parts := strings.Split(dir, "/")
	for i := range parts {
		p := strings.Join(parts[:i+1], "/")
		fi, err := root.Lstat(p)
		if err == nil {
			if fi.Mode()&fs.ModeSymlink != 0 {
				if fi, err = root.Stat(p); err != nil {
					return err
				}
			}
			if !fi.IsDir() {
				return fmt.Errorf("%s: not a directory", p)
			}
			continue
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if err := checkParentWritable(root, p, o); err != nil {
			return err
		}
		if err := root.Mkdir(p, 0o755); err != nil {
			return err
		}
		if !o.preserve {
			if err := root.Lchown(p, o.uid, o.gid); err != nil {
				return err
			}
		}
	}
	return nil
}

func checkParentWritable(root *os.Root, name string, o owner) error {
	if o.preserve || o.uid == 0 {
		return nil
	}
	parent := path.Dir(name)
	fi, err := root.Stat(parent)
	if err != nil {
		return err
	}
	if !o.canWrite(fi) {
		return fmt.Errorf("cannot create %s: Permission denied", name)
	}
	return nil
}

func extractEntry(root *os.Root, dest, name string, hdr *tar.Header, r io.Reader, o owner) error {
	mode := fs.FileMode(hdr.Mode).Perm()
	if !o.preserve {
		// Set-id bits only for archives unpacked by root for root.
		if o.uid != 0 {
			hdr.Mode &^= 0o6000
		}
	}
	if hdr.Mode&0o4000 != 0 {
		mode |= fs.ModeSetuid
	}
	if hdr.Mode&0o2000 != 0 {
		mode |= fs.ModeSetgid
	}
	if hdr.Mode&0o1000 != 0 {
		mode |= fs.ModeSticky
	}
	if err := mkdirAllAs(root, path.Dir(name), o); err != nil {
		return err
	}
	if name != "." {
		if err := checkParentWritable(root, name, o); err != nil {
			return err
		}
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		if name != "." {
			if err := root.Mkdir(name, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
				return err
			}
		}
	case tar.TypeReg:
		if err := removeNonDir(root, name); err != nil {
			return err
		}
		f, err := root.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, r); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	case tar.TypeSymlink:
		if err := removeNonDir(root, name); err != nil {
			return err
		}
		if err := root.Symlink(hdr.Linkname, name); err != nil {
			return err
		}
	case tar.TypeLink:
		target, err := tarEntryPath(hdr.Linkname)
		if err != nil || target == "" {
			return fmt.Errorf("%w: hard link to %q", errPathTraversal, hdr.Linkname)
		}
		if err := removeNonDir(root, name); err != nil {
			return err
		}
		return root.Link(path.Join(dest, target), name)
	default:
		// Devices, FIFOs and the like are not carried into containers
		// (their /dev is a tmpfs); skipping beats failing whole images.
		return nil
	}
	uid, gid := o.uid, o.gid
	if o.preserve {
		uid, gid = hdr.Uid, hdr.Gid
	}
	if err := root.Lchown(name, uid, gid); err != nil {
		return err
	}
	if hdr.Typeflag == tar.TypeSymlink {
		return nil
	}
	if err := root.Chmod(name, mode); err != nil {
		return err
	}
	mtime := hdr.ModTime
	if mtime.IsZero() {
		mtime = time.Now()
	}
	return root.Chtimes(name, mtime, mtime)
}

// removeNonDir clears the way for a new entry (never following a symlink
// that is there, and leaving directories alone).
func removeNonDir(root *os.Root, name string) error {
	fi, err := root.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return fmt.Errorf("%s: is a directory", name)
	}
	return root.Remove(name)
}

// writeTar streams src (relative to root) as tar: "dir" gives entries
// "dir/...", "dir/" gives "./...", as upstream's tar invocations do.
func writeTar(root *os.Root, src string, trailingSlash bool, w io.Writer) error {
	tw := tar.NewWriter(w)
	var prefix string
	if trailingSlash || src == "" || src == "." {
		prefix = "."
	} else {
		prefix = path.Base(src)
	}
	if src == "" {
		src = "."
	}
	if err := addTree(root, src, prefix, tw); err != nil {
		return err
	}
	return tw.Close()
}

func addTree(root *os.Root, name, entry string, tw *tar.Writer) error {
	fi, err := root.Lstat(name)
	if err != nil {
		return err
	}
	link := ""
	if fi.Mode()&fs.ModeSymlink != 0 {
		if link, err = root.Readlink(name); err != nil {
			return err
		}
	}
	hdr, err := tar.FileInfoHeader(fi, link)
	if err != nil {
		return err
	}
	hdr.Name = entry
	if fi.IsDir() {
		hdr.Name += "/"
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	switch {
	case fi.Mode().IsRegular():
		f, err := root.Open(name)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.CopyN(tw, f, fi.Size())
		return err
	case fi.IsDir():
		d, err := root.Open(name)
		if err != nil {
			return err
		}
		entries, err := d.ReadDir(-1)
		d.Close()
		if err != nil {
			return err
		}
		for _, e := range entries {
			if err := addTree(root, path.Join(name, e.Name()), entry+"/"+e.Name(), tw); err != nil {
				return err
			}
		}
	}
	return nil
}
