package steps

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"path"

	"github.com/gavel-scheduler/gavel/executor/garden"
	"github.com/gavel-scheduler/gavel/proto/models"
)

// VolumeMountedFilesDir is where a relative volume-mounted file path is
// placed in the container.
const VolumeMountedFilesDir = "/etc/cf-service-bindings"

// WriteFiles writes small files (a run action's volume_mounted_files) into
// the container, as root, readable by everyone.
type WriteFiles struct {
	Container Container
	Files     []*models.File
}

// Run streams the files in.
func (w WriteFiles) Run(ctx context.Context) error {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range w.Files {
		p := f.GetPath()
		if !path.IsAbs(p) {
			p = path.Join(VolumeMountedFilesDir, p)
		}
		p = path.Clean(p)[1:]
		hdr := &tar.Header{Name: p, Mode: 0o644, Size: int64(len(f.GetContent())), Typeflag: tar.TypeReg}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("write file %s: %w", f.GetPath(), err)
		}
		if _, err := tw.Write([]byte(f.GetContent())); err != nil {
			return fmt.Errorf("write file %s: %w", f.GetPath(), err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("write files: %w", err)
	}
	if err := w.Container.StreamIn(ctx, garden.StreamInSpec{Path: "/", TarStream: &buf}); err != nil {
		if ctx.Err() != nil {
			return cancelled(ctx)
		}
		return fmt.Errorf("write files: %w", err)
	}
	return nil
}
