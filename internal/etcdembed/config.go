package etcdembed

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Limits gavel's BBS sizes its transactions against. They are etcd's own
// defaults, set explicitly so that the embedded store enforces exactly what
// an external production cluster does: a transaction that fits here fits
// there. Raising them here would let oversized transactions pass every test
// and then fail in production.
const (
	// MaxTxnOps is the most operations one etcd transaction may hold.
	MaxTxnOps = 128
	// MaxRequestBytes is the largest request etcd accepts (1.5 MiB).
	MaxRequestBytes = 3 * 1024 * 1024 / 2
)

// Defaults for Config.
const (
	DefaultClientURL = "http://127.0.0.1:2379"
	DefaultPeerURL   = "http://127.0.0.1:2380"
	DefaultName      = "gavel"
	// DefaultQuotaBackendBytes is 8 GiB, etcd's documented maximum
	// recommended backend size; the default 2 GiB is small for a
	// scheduler holding every ActualLRP of a large deployment.
	DefaultQuotaBackendBytes int64 = 8 << 30
	// DefaultAutoCompactionMode is time-based. The BBS event stream is
	// resumable from a revision, and a reconnecting watcher fails with
	// ErrCompacted if its revision was compacted away. A periodic window
	// promises every consumer the same wall-clock grace to reconnect,
	// whereas a revision window shrinks to seconds under the write bursts
	// of a large auction or convergence pass.
	DefaultAutoCompactionMode = "periodic"
	// DefaultAutoCompactionRetention keeps one hour of history: far longer
	// than any restart of a route emitter or CLI watcher, while bounding
	// the backend's growth.
	DefaultAutoCompactionRetention = "1h"
	// DefaultLogLevel keeps etcd's zap output to errors: in `gavel dev` and
	// in tests its info logs drown gavel's own.
	DefaultLogLevel = "error"
	// DefaultStartTimeout bounds how long Start waits for the member to be
	// ready when the context carries no deadline.
	DefaultStartTimeout = 60 * time.Second
)

// Config configures an embedded single-member etcd. Zero fields take the
// defaults above, except DataDir, which must be set: etcd would otherwise
// create "default.etcd" in the working directory.
type Config struct {
	// DataDir holds the WAL and the backend. Required.
	DataDir string
	// ClientURL is where the member serves clients (default
	// DefaultClientURL). Its host must be a loopback IP and its port must
	// not be 0: etcd advertises the URL verbatim, so it cannot learn a
	// kernel-chosen port. Tests use StartForTest, which finds free ports.
	ClientURL string
	// PeerURL is where the member listens for raft peers (default
	// DefaultPeerURL); loopback only, as ClientURL.
	PeerURL string
	// Name is the member name (default DefaultName).
	Name string
	// QuotaBackendBytes is the backend size alarm threshold (default
	// DefaultQuotaBackendBytes).
	QuotaBackendBytes int64
	// AutoCompactionMode is "periodic" or "revision" (default
	// DefaultAutoCompactionMode).
	AutoCompactionMode string
	// AutoCompactionRetention is a duration such as "1h" in periodic mode,
	// or a revision count such as "10000" in revision mode (default
	// DefaultAutoCompactionRetention). "0" disables auto compaction.
	AutoCompactionRetention string
	// UnsafeNoFsync skips fsync: faster, but a crash may lose acknowledged
	// writes. Off by default so benchmarks measure real durability costs.
	UnsafeNoFsync bool
	// LogLevel is etcd's zap level: debug, info, warn, error, dpanic,
	// panic or fatal (default DefaultLogLevel). Logs go to stderr.
	LogLevel string
	// StartTimeout bounds Start when its context has no earlier deadline
	// (default DefaultStartTimeout).
	StartTimeout time.Duration
}

// WithDefaults returns c with every empty field set to its default.
func (c Config) WithDefaults() Config {
	if c.ClientURL == "" {
		c.ClientURL = DefaultClientURL
	}
	if c.PeerURL == "" {
		c.PeerURL = DefaultPeerURL
	}
	if c.Name == "" {
		c.Name = DefaultName
	}
	if c.QuotaBackendBytes == 0 {
		c.QuotaBackendBytes = DefaultQuotaBackendBytes
	}
	if c.AutoCompactionMode == "" {
		c.AutoCompactionMode = DefaultAutoCompactionMode
	}
	if c.AutoCompactionRetention == "" {
		c.AutoCompactionRetention = DefaultAutoCompactionRetention
	}
	if c.LogLevel == "" {
		c.LogLevel = DefaultLogLevel
	}
	if c.StartTimeout == 0 {
		c.StartTimeout = DefaultStartTimeout
	}
	return c
}

// Validate checks c after defaults are applied and names the first bad
// field.
func (c Config) Validate() error {
	c = c.WithDefaults()
	if c.DataDir == "" {
		return errors.New("etcd data dir: required (refusing to default to the working directory)")
	}
	client, err := parseLoopbackURL("etcd client URL", c.ClientURL)
	if err != nil {
		return err
	}
	peer, err := parseLoopbackURL("etcd peer URL", c.PeerURL)
	if err != nil {
		return err
	}
	if client.Host == peer.Host {
		return fmt.Errorf("etcd client URL and peer URL: both use %s", client.Host)
	}
	if c.QuotaBackendBytes < 0 {
		return fmt.Errorf("etcd quota backend bytes %d: must not be negative", c.QuotaBackendBytes)
	}
	switch c.AutoCompactionMode {
	case embed.CompactorModePeriodic:
		if _, err := strconv.Atoi(c.AutoCompactionRetention); err != nil {
			if d, err := time.ParseDuration(c.AutoCompactionRetention); err != nil || d < 0 {
				return fmt.Errorf("etcd auto compaction retention %q: want a duration such as 1h", c.AutoCompactionRetention)
			}
		}
	case embed.CompactorModeRevision:
		if n, err := strconv.ParseInt(c.AutoCompactionRetention, 10, 64); err != nil || n < 0 {
			return fmt.Errorf("etcd auto compaction retention %q: want a revision count in revision mode", c.AutoCompactionRetention)
		}
	default:
		return fmt.Errorf("etcd auto compaction mode %q: want %q or %q", c.AutoCompactionMode, embed.CompactorModePeriodic, embed.CompactorModeRevision)
	}
	if _, err := zapcore.ParseLevel(c.LogLevel); err != nil {
		return fmt.Errorf("etcd log level %q: %w", c.LogLevel, err)
	}
	if c.StartTimeout < 0 {
		return fmt.Errorf("etcd start timeout %s: must not be negative", c.StartTimeout)
	}
	return nil
}

// parseLoopbackURL accepts only http URLs on a loopback IP with a real
// port. The embedded member is for `gavel dev` and tests and serves
// plaintext, so it must never be reachable from another host; production
// runs an external TLS cluster instead.
func parseLoopbackURL(field, raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%s %q: %w", field, raw, err)
	}
	if u.Scheme != "http" {
		return nil, fmt.Errorf("%s %q: scheme must be http", field, raw)
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil {
		return nil, fmt.Errorf("%s %q: %w", field, raw, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("%s %q: host must be a loopback IP such as 127.0.0.1", field, raw)
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		return nil, fmt.Errorf("%s %q: port must be between 1 and 65535", field, raw)
	}
	if u.Path != "" && u.Path != "/" {
		return nil, fmt.Errorf("%s %q: must not have a path", field, raw)
	}
	return u, nil
}

// embedConfig translates c (already validated and defaulted) into etcd's
// configuration. lg becomes etcd's logger.
func (c Config) embedConfig(lg *zap.Logger) *embed.Config {
	client, _ := url.Parse(c.ClientURL)
	peer, _ := url.Parse(c.PeerURL)

	ec := embed.NewConfig()
	ec.Name = c.Name
	ec.Dir = c.DataDir
	ec.ListenClientUrls = []url.URL{*client}
	ec.AdvertiseClientUrls = []url.URL{*client}
	ec.ListenPeerUrls = []url.URL{*peer}
	ec.AdvertisePeerUrls = []url.URL{*peer}
	ec.InitialCluster = ec.InitialClusterFromName(c.Name)
	// Distinct from etcd's default token so the member refuses raft
	// traffic from an unrelated etcd that happens to share a port.
	ec.InitialClusterToken = "gavel-" + c.Name

	ec.QuotaBackendBytes = c.QuotaBackendBytes
	ec.MaxTxnOps = MaxTxnOps
	ec.MaxRequestBytes = MaxRequestBytes
	ec.AutoCompactionMode = c.AutoCompactionMode
	ec.AutoCompactionRetention = c.AutoCompactionRetention
	ec.UnsafeNoFsync = c.UnsafeNoFsync

	ec.Logger = "zap"
	ec.LogLevel = c.LogLevel
	ec.LogOutputs = []string{embed.StdErrLogOutput}
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(lg)
	// gavel speaks gRPC only; the JSON gateway is one more listener
	// surface for nothing.
	ec.EnableGRPCGateway = false
	return ec
}
