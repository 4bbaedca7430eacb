package steps

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"

	"github.com/gavel-scheduler/gavel/executor/download"
	"github.com/gavel-scheduler/gavel/executor/garden"
	"github.com/gavel-scheduler/gavel/executor/logs"
)

// Fetcher fetches artifacts; *download.Cache is one.
type Fetcher interface {
	Fetch(ctx context.Context, req download.Request) (*download.Artifact, error)
}

// Download fetches an artifact (through the cache) and extracts it into the
// container at To. An archive is extracted under To; a plain file is
// written as the file To.
type Download struct {
	Container Container
	Fetcher   Fetcher
	Request   download.Request
	// Artifact names the download in progress messages; empty is silent.
	Artifact string
	To       string
	User     string
	Logs     *logs.Ring
	Source   string
}

// Run downloads and streams in.
func (d Download) Run(ctx context.Context) error {
	if ctx.Err() != nil {
		return cancelled(ctx)
	}
	name := d.Artifact
	if name == "" {
		name = d.To
	}
	d.emit("Downloading " + d.Artifact + "...")
	a, err := d.Fetcher.Fetch(ctx, d.Request)
	if err != nil {
		if ctx.Err() != nil {
			return cancelled(ctx)
		}
		return fmt.Errorf("download %s: %w", name, err)
	}
	defer a.Close()
	dest, entry := d.To, ""
	if a.Format == download.FormatFile {
		dest, entry = path.Dir(d.To), path.Base(d.To)
	}
	stream, err := a.TarStream(entry)
	if err != nil {
		return fmt.Errorf("download %s: %w", name, err)
	}
	defer stream.Close()
	if err := d.Container.StreamIn(ctx, garden.StreamInSpec{Path: dest, User: d.User, TarStream: stream}); err != nil {
		if ctx.Err() != nil {
			return cancelled(ctx)
		}
		return fmt.Errorf("download %s: stream into container: %w", name, err)
	}
	how := ""
	if a.CacheHit {
		how = ", cached"
	}
	d.emit(fmt.Sprintf("Downloaded %s (%s%s)", d.Artifact, byteSize(a.Size), how))
	return nil
}

func (d Download) emit(msg string) {
	if d.Artifact != "" && d.Logs != nil {
		d.Logs.Append(d.Source, logs.Stdout, msg)
	}
}

// Upload streams a file out of the container and POSTs its content to To.
type Upload struct {
	Container Container
	Client    *http.Client
	From, To  string
	User      string
	// Artifact names the upload in progress messages; empty is silent.
	Artifact string
	Logs     *logs.Ring
	Source   string
}

// Run streams out and uploads.
func (u Upload) Run(ctx context.Context) error {
	if ctx.Err() != nil {
		return cancelled(ctx)
	}
	name := u.Artifact
	if name == "" {
		name = u.From
	}
	u.emit("Uploading " + u.Artifact + "...")
	err := u.upload(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return cancelled(ctx)
		}
		return fmt.Errorf("upload %s: %w", name, err)
	}
	return nil
}

func (u Upload) upload(ctx context.Context) error {
	out, err := u.Container.StreamOut(ctx, garden.StreamOutSpec{Path: u.From, User: u.User})
	if err != nil {
		return fmt.Errorf("stream out of container: %w", err)
	}
	defer out.Close()
	tr := tar.NewReader(out)
	var hdr *tar.Header
	for {
		hdr, err = tr.Next()
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%s is not a file in the container", u.From)
		}
		if err != nil {
			return fmt.Errorf("read stream: %w", err)
		}
		if hdr.Typeflag == tar.TypeReg {
			break
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.To, io.LimitReader(tr, hdr.Size))
	if err != nil {
		return fmt.Errorf("build request: %w", stripURL(err))
	}
	req.ContentLength = hdr.Size
	req.Header.Set("Content-Type", "application/octet-stream")
	client := u.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return stripURL(err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("unexpected status %s", resp.Status)
	}
	u.emit(fmt.Sprintf("Uploaded %s (%s)", u.Artifact, byteSize(hdr.Size)))
	return nil
}

func (u Upload) emit(msg string) {
	if u.Artifact != "" && u.Logs != nil {
		u.Logs.Append(u.Source, logs.Stdout, msg)
	}
}

// byteSize renders a size for progress messages: 512B, 12K, 3.4M, 1.2G.
func byteSize(n int64) string {
	const k = 1024
	switch {
	case n < k:
		return fmt.Sprintf("%dB", n)
	case n < k*k:
		return fmt.Sprintf("%dK", n/k)
	case n < k*k*k:
		return fmt.Sprintf("%.1fM", float64(n)/(k*k))
	}
	return fmt.Sprintf("%.1fG", float64(n)/(k*k*k))
}
