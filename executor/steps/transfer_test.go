package steps

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/gavel-scheduler/gavel/executor/download"
	"github.com/gavel-scheduler/gavel/executor/logs"
)

func tgz(t *testing.T, name, content string) []byte {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg})
	io.WriteString(tw, content)
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

func TestDownload(t *testing.T) {
	app := tgz(t, "app/start.sh", "echo hi")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/app.tgz":
			w.Write(app)
		case "/plain":
			io.WriteString(w, "config")
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	sum := sha256.Sum256(app)
	good := download.Checksum{Algorithm: "sha256", Value: hex.EncodeToString(sum[:])}

	tests := []struct {
		name     string
		req      download.Request
		to       string
		wantErr  string
		wantPath string
		wantFile string
	}{
		{"archive extracted under to", download.Request{URL: srv.URL + "/app.tgz", Checksum: good}, "/home/vcap", "", "/home/vcap", "app/start.sh"},
		{"plain file written as to", download.Request{URL: srv.URL + "/plain"}, "/etc/app/config.txt", "", "/etc/app", "config.txt"},
		{"bad checksum refused", download.Request{URL: srv.URL + "/app.tgz", Checksum: download.Checksum{Algorithm: "sha256", Value: "abcd"}},
			"/x", "download droplet: download " + srv.URL + "/app.tgz: checksum mismatch", "", ""},
		{"http failure", download.Request{URL: srv.URL + "/nope"}, "/x", "unexpected status 404", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cache, err := download.NewCache(download.Config{Dir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			c := newFakeContainer()
			ring := logs.NewRing(100, 1<<20)
			d := Download{Container: c, Fetcher: cache, Request: tt.req, Artifact: "droplet", To: tt.to, User: "vcap", Logs: ring, Source: "STG"}
			err = d.Run(context.Background())
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				if len(c.streamIns) != 0 {
					t.Fatal("refused download was streamed in")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(c.streamIns) != 1 || c.streamIns[0].Path != tt.wantPath || c.streamIns[0].User != "vcap" {
				t.Fatalf("stream-ins = %+v", c.streamIns)
			}
			if _, ok := c.streamIns[0].Files[tt.wantFile]; !ok {
				t.Fatalf("file %s not streamed in: %v", tt.wantFile, c.streamIns[0].Files)
			}
			lines, _ := ring.Read(0, 0)
			if len(lines) != 2 || lines[0].Text != "Downloading droplet..." || !strings.HasPrefix(lines[1].Text, "Downloaded droplet (") {
				t.Fatalf("progress = %v", lines)
			}
		})
	}
}

func TestDownloadStreamInFailure(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "x") }))
	defer srv.Close()
	cache, _ := download.NewCache(download.Config{Dir: t.TempDir()})
	c := newFakeContainer()
	c.streamErr = errors.New("tar: Permission denied")
	err := Download{Container: c, Fetcher: cache, Request: download.Request{URL: srv.URL}, To: "/f"}.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "stream into container: tar: Permission denied") {
		t.Fatalf("err = %v", err)
	}
}

func TestUpload(t *testing.T) {
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, r.Method+" "+r.URL.Path+" "+string(b))
		mu.Unlock()
		if r.URL.Path == "/broken" {
			w.WriteHeader(http.StatusBadGateway)
		}
	}))
	defer srv.Close()
	c := newFakeContainer()
	c.files["/tmp/result"] = "42"
	tests := []struct {
		name, from, to, wantErr string
	}{
		{"uploads the file's content", "/tmp/result", srv.URL + "/droplet", ""},
		{"server failure", "/tmp/result", srv.URL + "/broken?token=s3cret", "upload /tmp/result: unexpected status 502 Bad Gateway"},
		{"missing file", "/tmp/none", srv.URL + "/droplet", "upload /tmp/none: stream out of container: no such file /tmp/none"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Upload{Container: c, From: tt.from, To: tt.to}.Run(context.Background())
			if (tt.wantErr == "" && err != nil) || (tt.wantErr != "" && (err == nil || err.Error() != tt.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 || got[0] != "POST /droplet 42" {
		t.Fatalf("server saw %q", got)
	}
}
