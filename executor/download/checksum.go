package download

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"strings"
)

// Checksum is an expected digest of a download. The zero value checks
// nothing.
type Checksum struct {
	// Algorithm is md5, sha1 or sha256 (the values the action's
	// checksum_algorithm takes).
	Algorithm string
	// Value is the hex digest, in either case.
	Value string
}

// ChecksumError reports a download whose content does not match the
// checksum asked for.
type ChecksumError struct {
	Algorithm, Want, Got string
}

func (e *ChecksumError) Error() string {
	return fmt.Sprintf("checksum mismatch: %s is %s, want %s", e.Algorithm, e.Got, e.Want)
}

// Digests holds every digest the cache keeps of an entry, so that any
// checksum asked for later is answered without reading the file again.
type Digests struct {
	MD5    string `json:"md5"`
	SHA1   string `json:"sha1"`
	SHA256 string `json:"sha256"`
}

// get returns the digest for an algorithm, and whether it is known.
func (d Digests) get(algorithm string) (string, bool) {
	switch strings.ToLower(algorithm) {
	case "md5":
		return d.MD5, true
	case "sha1":
		return d.SHA1, true
	case "sha256":
		return d.SHA256, true
	}
	return "", false
}

// Verify checks d against c: nil when c is empty or matches.
func (d Digests) Verify(c Checksum) error {
	if c.Algorithm == "" && c.Value == "" {
		return nil
	}
	got, ok := d.get(c.Algorithm)
	if !ok {
		return fmt.Errorf("unsupported checksum algorithm %q (want md5, sha1 or sha256)", c.Algorithm)
	}
	if !strings.EqualFold(got, c.Value) {
		return &ChecksumError{Algorithm: strings.ToLower(c.Algorithm), Want: strings.ToLower(c.Value), Got: got}
	}
	return nil
}

// hasher computes all Digests of what is written through it.
type hasher struct {
	md5, sha1, sha256 hash.Hash
	w                 io.Writer
}

func newHasher() *hasher {
	h := &hasher{md5: md5.New(), sha1: sha1.New(), sha256: sha256.New()}
	h.w = io.MultiWriter(h.md5, h.sha1, h.sha256)
	return h
}

func (h *hasher) Write(p []byte) (int, error) { return h.w.Write(p) }

func (h *hasher) digests() Digests {
	return Digests{
		MD5:    hex.EncodeToString(h.md5.Sum(nil)),
		SHA1:   hex.EncodeToString(h.sha1.Sum(nil)),
		SHA256: hex.EncodeToString(h.sha256.Sum(nil)),
	}
}
