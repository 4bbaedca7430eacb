package download

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
)

// Format is what a downloaded file turned out to be.
type Format string

// The formats a download can take; anything not recognised as an archive is
// a plain file.
const (
	FormatTar  Format = "tar"
	FormatTgz  Format = "tgz"
	FormatZip  Format = "zip"
	FormatFile Format = "file"
)

// sniff tells the format from the first bytes of a file.
func sniff(f *os.File) (Format, error) {
	head := make([]byte, 512)
	n, err := f.ReadAt(head, 0)
	if err != nil && err != io.EOF {
		return "", fmt.Errorf("read header: %w", err)
	}
	head = head[:n]
	switch {
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		return FormatTgz, nil
	case bytes.HasPrefix(head, []byte("PK\x03\x04")), bytes.HasPrefix(head, []byte("PK\x05\x06")):
		return FormatZip, nil
	case len(head) >= 262 && bytes.Equal(head[257:262], []byte("ustar")):
		return FormatTar, nil
	}
	return FormatFile, nil
}

// tarStream returns the content of f (of the given format and size) as an
// uncompressed tar stream, the form Garden's StreamIn takes. A plain file
// becomes a one-entry archive named name. Closing the stream releases any
// conversion in flight; it does not close f.
func tarStream(f *os.File, format Format, size int64, name string) (io.ReadCloser, error) {
	section := io.NewSectionReader(f, 0, size)
	switch format {
	case FormatTar:
		return io.NopCloser(section), nil
	case FormatTgz:
		gz, err := gzip.NewReader(section)
		if err != nil {
			return nil, fmt.Errorf("open gzip: %w", err)
		}
		return gz, nil
	case FormatZip:
		zr, err := zip.NewReader(section, size)
		if err != nil {
			return nil, fmt.Errorf("open zip: %w", err)
		}
		return convert(func(tw *tar.Writer) error { return zipToTar(zr, tw) }), nil
	case FormatFile:
		return convert(func(tw *tar.Writer) error {
			hdr := &tar.Header{Name: name, Mode: 0o644, Size: size, Typeflag: tar.TypeReg}
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
			_, err := io.Copy(tw, io.NewSectionReader(f, 0, size))
			return err
		}), nil
	}
	return nil, fmt.Errorf("unknown format %q", format)
}

// convert runs write into a pipe. The goroutine it starts is owned by the
// returned reader: it ends when write is done or when the reader is closed
// (its next write to the pipe then fails).
func convert(write func(*tar.Writer) error) io.ReadCloser {
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		err := write(tw)
		if err == nil {
			err = tw.Close()
		}
		pw.CloseWithError(err)
	}()
	return pr
}

// zipToTar copies every entry of a zip archive into a tar stream, keeping
// names, modes and modification times.
func zipToTar(zr *zip.Reader, tw *tar.Writer) error {
	for _, zf := range zr.File {
		name := strings.TrimPrefix(path.Clean("/"+zf.Name), "/")
		if name == "" {
			continue
		}
		info := zf.FileInfo()
		hdr := &tar.Header{Name: name, Mode: int64(info.Mode().Perm()), ModTime: zf.Modified}
		switch {
		case info.IsDir():
			hdr.Typeflag, hdr.Name = tar.TypeDir, name+"/"
			if hdr.Mode == 0 {
				hdr.Mode = 0o755
			}
		case info.Mode()&os.ModeSymlink != 0:
			target, err := readZipEntry(zf, 4096)
			if err != nil {
				return fmt.Errorf("zip entry %s: %w", zf.Name, err)
			}
			hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, string(target)
		default:
			hdr.Typeflag, hdr.Size = tar.TypeReg, int64(zf.UncompressedSize64)
			if hdr.Mode == 0 {
				hdr.Mode = 0o644
			}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		rc, err := zf.Open()
		if err != nil {
			return fmt.Errorf("zip entry %s: %w", zf.Name, err)
		}
		_, err = io.Copy(tw, rc)
		rc.Close()
		if err != nil {
			return fmt.Errorf("zip entry %s: %w", zf.Name, err)
		}
	}
	return nil
}

func readZipEntry(zf *zip.File, limit int64) ([]byte, error) {
	rc, err := zf.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(io.LimitReader(rc, limit))
}
