package tlsutil

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Defaults for WriteDir.
const (
	// DefaultCertValidity is how long component certificates live: one
	// year, long enough that `gavel dev` rarely reissues, short enough that
	// a leaked key does not stay useful for a decade.
	DefaultCertValidity = 365 * 24 * time.Hour
	// DefaultCAValidity is the CA lifetime. The CA outlives its leaves so
	// that reissuing a component never forces redistributing ca.crt.
	DefaultCAValidity = 10 * 365 * 24 * time.Hour
	// CACommonName names the CA WriteDir generates.
	CACommonName = "gavel CA"
)

// DefaultHosts are the SANs component certificates get when WriteDir is
// given none: enough for everything on one machine, as `gavel dev` runs.
func DefaultHosts() []string { return []string{"127.0.0.1", "localhost"} }

// Components lists the names WriteDir issues a certificate for: one per
// daemon, plus "client" for the operator CLI.
func Components() []string {
	return []string{"bbs", "auctioneer", "rep", "converger", "route-emitter", "garden", "client"}
}

// Paths is the layout of a certificate directory.
type Paths struct {
	Dir        string
	CACert     string
	CAKey      string
	Components map[string]ComponentPaths
}

// ComponentPaths locates one component's certificate and key.
type ComponentPaths struct {
	Cert string
	Key  string
}

// PathsFor computes the layout under dir without touching the disk, so
// daemons can find their files with only --certs-dir.
func PathsFor(dir string) Paths {
	p := Paths{
		Dir:        dir,
		CACert:     filepath.Join(dir, "ca.crt"),
		CAKey:      filepath.Join(dir, "ca.key"),
		Components: make(map[string]ComponentPaths),
	}
	for _, name := range Components() {
		p.Components[name] = ComponentPaths{
			Cert: filepath.Join(dir, name+".crt"),
			Key:  filepath.Join(dir, name+".key"),
		}
	}
	return p
}

// Option tunes WriteDir.
type Option func(*writeOptions)

type writeOptions struct {
	certValidity time.Duration
	caValidity   time.Duration
}

// WithValidity sets the lifetime of newly issued component certificates
// (default DefaultCertValidity).
func WithValidity(d time.Duration) Option {
	return func(o *writeOptions) { o.certValidity = d }
}

// WithCAValidity sets the lifetime of a newly generated CA (default
// DefaultCAValidity). An existing CA is never regenerated.
func WithCAValidity(d time.Duration) Option {
	return func(o *writeOptions) { o.caValidity = d }
}

// WriteDir makes sure dir holds a CA and a certificate per component (see
// Components), every one valid as server and client, with hosts as SANs
// (DefaultHosts when empty) plus the component's own name as a DNS SAN, so
// a client can pin the role it expects ("bbs") as its TLS server name.
//
// It is idempotent, because `gavel dev` calls it on every start: an
// existing CA is loaded, not replaced, and an existing certificate is left
// as it is (even if hosts changed: delete its two files to reissue). An
// existing certificate that the CA did not sign, or that has expired, is an
// error rather than being silently overwritten. Keys are written 0600 and
// every file appears atomically (write to a temporary name, then link), so
// a crash never leaves a half-written key. Two WriteDir calls racing on
// the same new directory are not supported.
func WriteDir(dir string, hosts []string, opts ...Option) (Paths, error) {
	o := writeOptions{certValidity: DefaultCertValidity, caValidity: DefaultCAValidity}
	for _, opt := range opts {
		opt(&o)
	}
	if o.certValidity <= 0 {
		return Paths{}, fmt.Errorf("certificate validity must be positive, got %s", o.certValidity)
	}
	if o.caValidity <= 0 {
		return Paths{}, fmt.Errorf("CA validity must be positive, got %s", o.caValidity)
	}
	hosts, err := normalizeHosts(hosts)
	if err != nil {
		return Paths{}, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Paths{}, fmt.Errorf("create certificate dir: %w", err)
	}
	paths := PathsFor(dir)

	ca, err := loadOrCreateCA(paths, o.caValidity)
	if err != nil {
		return Paths{}, err
	}
	for _, name := range Components() {
		cp := paths.Components[name]
		if err := ensureComponent(ca, name, cp, hosts, o.certValidity); err != nil {
			return Paths{}, err
		}
	}
	return paths, nil
}

func normalizeHosts(hosts []string) ([]string, error) {
	if len(hosts) == 0 {
		return DefaultHosts(), nil
	}
	out := make([]string, 0, len(hosts))
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		if h == "" {
			return nil, errors.New("empty host in certificate hosts")
		}
		if !slices.Contains(out, h) {
			out = append(out, h)
		}
	}
	return out, nil
}

func loadOrCreateCA(paths Paths, validFor time.Duration) (*CA, error) {
	certExists, err := exists(paths.CACert)
	if err != nil {
		return nil, err
	}
	keyExists, err := exists(paths.CAKey)
	if err != nil {
		return nil, err
	}
	switch {
	case certExists && keyExists:
		return LoadCA(paths.CACert, paths.CAKey)
	case certExists || keyExists:
		// Generating a new pair would orphan whichever half exists and
		// silently invalidate every certificate already handed out.
		return nil, fmt.Errorf("only one of %s and %s exists; restore the other or remove both", paths.CACert, paths.CAKey)
	}
	ca, err := GenerateCA(CACommonName, validFor)
	if err != nil {
		return nil, err
	}
	// Key first: a crash between the two writes leaves a key without a
	// certificate, which the check above reports instead of reusing.
	if err := writeNew(paths.CAKey, ca.KeyPEM, 0o600); err != nil {
		return nil, err
	}
	if err := writeNew(paths.CACert, ca.CertPEM, 0o644); err != nil {
		return nil, err
	}
	return ca, nil
}

func ensureComponent(ca *CA, name string, cp ComponentPaths, hosts []string, validFor time.Duration) error {
	certExists, err := exists(cp.Cert)
	if err != nil {
		return err
	}
	keyExists, err := exists(cp.Key)
	if err != nil {
		return err
	}
	switch {
	case certExists && keyExists:
		return checkExisting(ca, cp)
	case certExists || keyExists:
		return fmt.Errorf("only one of %s and %s exists; remove it to reissue %s", cp.Cert, cp.Key, name)
	}
	sans := append(slices.Clone(hosts), name)
	certPEM, keyPEM, err := ca.Issue(name, sans, ServerAndClient, validFor)
	if err != nil {
		return err
	}
	if err := writeNew(cp.Key, keyPEM, 0o600); err != nil {
		return err
	}
	return writeNew(cp.Cert, certPEM, 0o644)
}

// checkExisting refuses a kept certificate that cannot work: one signed by
// a different CA (ca.crt was replaced) or one past its expiry. Failing here
// names the file; failing later is an opaque handshake error.
func checkExisting(ca *CA, cp ComponentPaths) error {
	data, err := os.ReadFile(cp.Cert)
	if err != nil {
		return fmt.Errorf("read %s: %w", cp.Cert, err)
	}
	cert, err := parseCertificatePEM(data)
	if err != nil {
		return fmt.Errorf("%s: %w", cp.Cert, err)
	}
	if err := cert.CheckSignatureFrom(ca.Cert); err != nil {
		return fmt.Errorf("%s was not signed by the CA in %s; remove %s and %s to reissue: %w",
			cp.Cert, filepath.Dir(cp.Cert), cp.Cert, cp.Key, err)
	}
	if time.Now().After(cert.NotAfter) {
		return fmt.Errorf("%s expired at %s; remove %s and %s to reissue",
			cp.Cert, cert.NotAfter.Format(time.RFC3339), cp.Cert, cp.Key)
	}
	return nil
}

func exists(path string) (bool, error) {
	_, err := os.Lstat(path)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	default:
		return false, fmt.Errorf("stat %s: %w", path, err)
	}
}

// writeNew creates path with data and mode, failing if path exists. The
// content goes to a temporary file that is hard-linked into place, so
// readers see either no file or the whole file, and nothing is clobbered.
func writeNew(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
