package download

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// files maps entry names to contents.
type files map[string]string

func makeTar(t testing.TB, fs files) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	names := make([]string, 0, len(fs))
	for n := range fs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(fs[n])), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		io.WriteString(tw, fs[n])
	}
	tw.Close()
	return buf.Bytes()
}

func makeTgz(t testing.TB, fs files) []byte {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	gz.Write(makeTar(t, fs))
	gz.Close()
	return buf.Bytes()
}

func makeZip(t testing.TB, fs files) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	if _, err := zw.Create("dir/"); err != nil {
		t.Fatal(err)
	}
	for n, c := range fs {
		w, err := zw.Create(n)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, c)
	}
	zw.Close()
	return buf.Bytes()
}

// readTar returns the regular files of a tar stream.
func readTar(t testing.TB, r io.Reader) files {
	t.Helper()
	out := files{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("read tar: %v", err)
		}
		if h.Typeflag == tar.TypeReg {
			b, _ := io.ReadAll(tr)
			out[h.Name] = string(b)
		}
	}
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// server serves body at any path and counts requests and full bodies sent.
type server struct {
	*httptest.Server
	mu       sync.Mutex
	body     []byte
	etag     string
	requests atomic.Int32
	bodies   atomic.Int32
}

func newServer(t *testing.T, body []byte, etag string) *server {
	s := &server{body: body, etag: etag}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		s.mu.Lock()
		body, etag := s.body, s.etag
		s.mu.Unlock()
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		if etag != "" {
			w.Header().Set("ETag", etag)
			if r.Header.Get("If-None-Match") == etag {
				w.WriteHeader(http.StatusNotModified)
				return
			}
		}
		s.bodies.Add(1)
		w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *server) set(body []byte, etag string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.body, s.etag = body, etag
}

func newCache(t *testing.T, dir string, max int64) *Cache {
	t.Helper()
	c, err := NewCache(Config{Dir: dir, MaxBytes: max})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func fetch(t *testing.T, c *Cache, req Request) (*Artifact, files) {
	t.Helper()
	a, err := c.Fetch(context.Background(), req)
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	t.Cleanup(func() { a.Close() })
	rc, err := a.TarStream("plain.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	return a, readTar(t, rc)
}

func TestFormatsBecomeTar(t *testing.T) {
	want := files{"a.txt": "alpha", "dir/b.txt": "beta"}
	tests := []struct {
		name   string
		body   []byte
		format Format
		want   files
	}{
		{"tgz", makeTgz(t, want), FormatTgz, want},
		{"tar", makeTar(t, want), FormatTar, want},
		{"zip", makeZip(t, want), FormatZip, want},
		{"plain file", []byte("just text"), FormatFile, files{"plain.txt": "just text"}},
		{"empty file", nil, FormatFile, files{"plain.txt": ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t, tt.body, "")
			a, got := fetch(t, newCache(t, t.TempDir(), 0), Request{URL: s.URL + "/x"})
			if a.Format != tt.format {
				t.Errorf("format = %s, want %s", a.Format, tt.format)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("entries = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestChecksumPinnedHitSkipsTheNetwork(t *testing.T) {
	body := makeTgz(t, files{"app": "v1"})
	s := newServer(t, body, "")
	c := newCache(t, t.TempDir(), 0)
	req := Request{URL: s.URL + "/app.tgz", CacheKey: "app-v1", Checksum: Checksum{Algorithm: "sha256", Value: strings.ToUpper(sha(body))}}
	if a, _ := fetch(t, c, req); a.CacheHit {
		t.Fatal("first fetch reported a cache hit")
	}
	a, got := fetch(t, c, req)
	if !a.CacheHit || got["app"] != "v1" {
		t.Fatalf("second fetch hit=%v entries=%v", a.CacheHit, got)
	}
	if n := s.requests.Load(); n != 1 {
		t.Fatalf("server saw %d requests, want 1", n)
	}
}

func TestBadChecksumRefusedAndNotCached(t *testing.T) {
	body := []byte("payload")
	s := newServer(t, body, "")
	c := newCache(t, t.TempDir(), 0)
	for _, alg := range []string{"md5", "sha1", "sha256"} {
		_, err := c.Fetch(context.Background(), Request{URL: s.URL + "/p?token=secret", Checksum: Checksum{Algorithm: alg, Value: "00ff"}})
		var ce *ChecksumError
		if !errors.As(err, &ce) || ce.Algorithm != alg {
			t.Fatalf("%s: err = %v, want ChecksumError", alg, err)
		}
		if strings.Contains(err.Error(), "secret") {
			t.Fatalf("error leaks the query: %v", err)
		}
	}
	if c.Used() != 0 {
		t.Fatalf("cache holds %d bytes after refused downloads", c.Used())
	}
	_, err := c.Fetch(context.Background(), Request{URL: s.URL + "/p", Checksum: Checksum{Algorithm: "crc32", Value: "00"}})
	if err == nil || !strings.Contains(err.Error(), "unsupported checksum algorithm") {
		t.Fatalf("unknown algorithm: err = %v", err)
	}
}

func TestCachedEntryNotMatchingChecksumIsFetchedAgain(t *testing.T) {
	s := newServer(t, []byte("old"), "")
	c := newCache(t, t.TempDir(), 0)
	fetch(t, c, Request{URL: s.URL + "/f", CacheKey: "k"})
	s.set([]byte("new"), "")
	a, got := fetch(t, c, Request{URL: s.URL + "/f", CacheKey: "k", Checksum: Checksum{Algorithm: "sha256", Value: sha([]byte("new"))}})
	if a.CacheHit || got["plain.txt"] != "new" {
		t.Fatalf("hit=%v entries=%v, want fresh new content", a.CacheHit, got)
	}
}

func TestRevalidation(t *testing.T) {
	t.Run("etag 304 is a hit", func(t *testing.T) {
		s := newServer(t, []byte("v1"), `"e1"`)
		c := newCache(t, t.TempDir(), 0)
		fetch(t, c, Request{URL: s.URL + "/f"})
		a, got := fetch(t, c, Request{URL: s.URL + "/f"})
		if !a.CacheHit || got["plain.txt"] != "v1" || s.bodies.Load() != 1 {
			t.Fatalf("hit=%v entries=%v bodies=%d", a.CacheHit, got, s.bodies.Load())
		}
		s.set([]byte("v2"), `"e2"`)
		a, got = fetch(t, c, Request{URL: s.URL + "/f"})
		if a.CacheHit || got["plain.txt"] != "v2" {
			t.Fatalf("after change hit=%v entries=%v", a.CacheHit, got)
		}
	})
	t.Run("no validators means download again", func(t *testing.T) {
		s := newServer(t, []byte("v1"), "")
		c := newCache(t, t.TempDir(), 0)
		fetch(t, c, Request{URL: s.URL + "/f"})
		if a, _ := fetch(t, c, Request{URL: s.URL + "/f"}); a.CacheHit {
			t.Fatal("hit without a checksum or validators")
		}
	})
}

func TestHTTPErrors(t *testing.T) {
	s := newServer(t, nil, "")
	c := newCache(t, t.TempDir(), 0)
	_, err := c.Fetch(context.Background(), Request{URL: s.URL + "/missing?sig=abc"})
	if err == nil || !strings.Contains(err.Error(), "404") || strings.Contains(err.Error(), "sig=abc") {
		t.Fatalf("err = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Fetch(ctx, Request{URL: s.URL + "/f"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled fetch err = %v", err)
	}
	if _, err := c.Fetch(context.Background(), Request{}); err == nil {
		t.Fatal("empty URL accepted")
	}
}

func TestEvictionAndRestart(t *testing.T) {
	dir := t.TempDir()
	s := newServer(t, bytes.Repeat([]byte("x"), 100), "")
	c := newCache(t, dir, 250)
	pin := Checksum{Algorithm: "sha256", Value: sha(bytes.Repeat([]byte("x"), 100))}
	for _, k := range []string{"a", "b"} {
		fetch(t, c, Request{URL: s.URL + "/" + k, CacheKey: k, Checksum: pin})
	}
	fetch(t, c, Request{URL: s.URL + "/a", CacheKey: "a", Checksum: pin}) // a is now the most recent
	fetch(t, c, Request{URL: s.URL + "/c", CacheKey: "c", Checksum: pin}) // evicts b
	if c.Used() != 200 {
		t.Fatalf("used = %d, want 200", c.Used())
	}
	reopened := newCache(t, dir, 250)
	before := s.requests.Load()
	for _, k := range []string{"a", "c"} {
		if a, _ := fetch(t, reopened, Request{URL: s.URL + "/" + k, CacheKey: k, Checksum: pin}); !a.CacheHit {
			t.Fatalf("%s not adopted after restart", k)
		}
	}
	if a, _ := fetch(t, reopened, Request{URL: s.URL + "/b", CacheKey: "b", Checksum: pin}); a.CacheHit {
		t.Fatal("evicted entry b came back")
	}
	if got := s.requests.Load() - before; got != 1 {
		t.Fatalf("%d requests after restart, want 1 (for b)", got)
	}
	big := newServer(t, bytes.Repeat([]byte("y"), 300), "")
	if a, got := fetch(t, reopened, Request{URL: big.URL + "/big"}); a.Size != 300 || len(got["plain.txt"]) != 300 {
		t.Fatalf("oversized download served wrong: %d", a.Size)
	}
	if reopened.Used() > 250 {
		t.Fatalf("oversized download cached: used %d", reopened.Used())
	}
}

func TestConcurrentFetchesOfOneKeyDownloadOnce(t *testing.T) {
	body := makeTgz(t, files{"f": "content"})
	s := newServer(t, body, "")
	c := newCache(t, t.TempDir(), 0)
	req := Request{URL: s.URL + "/f", CacheKey: "shared", Checksum: Checksum{Algorithm: "sha256", Value: sha(body)}}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			a, err := c.Fetch(context.Background(), req)
			if err != nil {
				errs <- err
				return
			}
			a.Close()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := s.bodies.Load(); n != 1 {
		t.Fatalf("%d bodies downloaded, want 1", n)
	}
}

func BenchmarkFetchCacheHit(b *testing.B) {
	body := bytes.Repeat([]byte("z"), 64<<10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) }))
	defer srv.Close()
	c, err := NewCache(Config{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	req := Request{URL: srv.URL + "/f", CacheKey: "k", Checksum: Checksum{Algorithm: "sha256", Value: sha(body)}}
	for b.Loop() {
		a, err := c.Fetch(context.Background(), req)
		if err != nil {
			b.Fatal(err)
		}
		a.Close()
	}
}
