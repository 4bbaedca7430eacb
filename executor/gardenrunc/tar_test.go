package gardenrunc

import (
	"archive/tar"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestTarEntryPath(t *testing.T) {
	tests := []struct {
		name string
		want string
		bad  bool
	}{
		{"a/b", "a/b", false},
		{"./a/b/", "a/b", false},
		{".", "", false},
		{"./", "", false},
		{"a//b", "a/b", false},
		{"..", "", true},
		{"../x", "", true},
		{"a/../../x", "", true},
		{"a/../b", "", true},
		{"/etc/passwd", "", true},
		{"", "", true},
		{"a\x00b", "", true},
		{"..foo", "..foo", false},
	}
	for _, tt := range tests {
		got, err := tarEntryPath(tt.name)
		if (err != nil) != tt.bad || got != tt.want {
			t.Errorf("tarEntryPath(%q) = %q, %v; want %q, bad=%v", tt.name, got, err, tt.want, tt.bad)
		}
		if tt.bad && !errors.Is(err, errPathTraversal) {
			t.Errorf("tarEntryPath(%q) error %v is not errPathTraversal", tt.name, err)
		}
	}
}

func tarOf(t *testing.T, entries ...tar.Header) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range entries {
		h := h
		body := ""
		if h.Typeflag == tar.TypeReg {
			body = "content of " + h.Name
			h.Size = int64(len(body))
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(body))
	}
	tw.Close()
	return &buf
}

func TestExtractTarRefusesEscapes(t *testing.T) {
	outside := t.TempDir()
	tests := []struct {
		name    string
		entries []tar.Header
	}{
		{"dotdot", []tar.Header{{Name: "../escape", Typeflag: tar.TypeReg}}},
		{"absolute", []tar.Header{{Name: "/escape", Typeflag: tar.TypeReg}}},
		{"through symlink", []tar.Header{
			{Name: "link", Typeflag: tar.TypeSymlink, Linkname: outside},
			{Name: "link/escape", Typeflag: tar.TypeReg},
		}},
		{"through relative symlink", []tar.Header{
			{Name: "up", Typeflag: tar.TypeSymlink, Linkname: "../../../../../../.." + outside},
			{Name: "up/escape", Typeflag: tar.TypeReg},
		}},
		{"hard link out", []tar.Header{{Name: "h", Typeflag: tar.TypeLink, Linkname: "../../etc/passwd"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := extractTar(dir, tarOf(t, tt.entries...), owner{}); err == nil {
				t.Fatal("extraction succeeded")
			}
			if _, err := os.Stat(filepath.Join(outside, "escape")); err == nil {
				t.Fatal("file written outside the root")
			}
		})
	}
}

func TestTarRoundTrip(t *testing.T) {
	dir := t.TempDir()
	os.Chmod(dir, 0o1777)
	in := tarOf(t,
		tar.Header{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o750},
		tar.Header{Name: "d/f", Typeflag: tar.TypeReg, Mode: 0o640},
		tar.Header{Name: "d/l", Typeflag: tar.TypeSymlink, Linkname: "f"},
		tar.Header{Name: "d/h", Typeflag: tar.TypeLink, Linkname: "d/f"},
	)
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	if err := extractTarInRoot(root, "dest/sub", in, owner{uid: 1000, gid: 1000}); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "dest/sub/d/h"))
	if err != nil || string(data) != "content of d/f" {
		t.Fatalf("hard link = %q, %v", data, err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "dest/sub/d")); fi.Mode().Perm() != 0o750 {
		t.Fatalf("dir mode %v", fi.Mode())
	}
	names := func(trailing bool, src string) []string {
		var buf bytes.Buffer
		if err := writeTar(root, src, trailing, &buf); err != nil {
			t.Fatal(err)
		}
		var out []string
		tr := tar.NewReader(&buf)
		for {
			h, err := tr.Next()
			if err != nil {
				break
			}
			out = append(out, h.Name)
		}
		sort.Strings(out)
		return out
	}
	if diff := cmp.Diff([]string{"d/", "d/f", "d/h", "d/l"}, names(false, "dest/sub/d")); diff != "" {
		t.Errorf("no trailing slash: %s", diff)
	}
	if diff := cmp.Diff([]string{"./", "./f", "./h", "./l"}, names(true, "dest/sub/d")); diff != "" {
		t.Errorf("trailing slash: %s", diff)
	}
}

func TestExtractAsUserNeedsPermission(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("ownership checks need root to set up")
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o1777)
	os.MkdirAll(filepath.Join(dir, "rootonly"), 0o755)
	root, _ := os.OpenRoot(dir)
	defer root.Close()
	err := extractTarInRoot(root, "rootonly", tarOf(t, tar.Header{Name: "f", Typeflag: tar.TypeReg}), owner{uid: 1000, gid: 1000})
	if err == nil || !strings.Contains(err.Error(), "Permission denied") {
		t.Fatalf("extract into root-owned dir as uid 1000 = %v", err)
	}
	if err := extractTarInRoot(root, "mine", tarOf(t, tar.Header{Name: "f", Typeflag: tar.TypeReg}), owner{uid: 1000, gid: 1000}); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(filepath.Join(dir, "mine/f"))
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != 1000 || st.Gid != 1000 {
		t.Fatalf("extracted file owned by %d:%d", st.Uid, st.Gid)
	}
}
