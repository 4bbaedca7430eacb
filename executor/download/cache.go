// Package download owns fetching artifacts over HTTP for the executor: an
// on-disk cache keyed by cache key (or URL) with LRU eviction and HTTP
// revalidation, checksum verification (md5, sha1, sha256), and turning a
// tgz, tar, zip or plain file into the tar stream Garden's StreamIn takes.
package download

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// DefaultMaxBytes bounds the cache when Config.MaxBytes is zero.
const DefaultMaxBytes = 1 << 30

// Config configures a Cache.
type Config struct {
	// Dir holds the cached files and their metadata; created if missing.
	Dir string
	// MaxBytes bounds the bytes cached; least recently used entries go
	// first. Downloads larger than this are served without being cached.
	MaxBytes int64
	// Client fetches; nil means a client with no overall timeout (the
	// request's context bounds each fetch).
	Client *http.Client
	// Logger receives cache decisions at debug level; nil discards.
	Logger *slog.Logger
}

// Request names one artifact to fetch.
type Request struct {
	URL string
	// CacheKey identifies the artifact in the cache; empty means the URL.
	CacheKey string
	// Checksum, when set, must match the content served, cached or not.
	Checksum Checksum
}

// Cache fetches artifacts and keeps them on disk. Safe for concurrent use:
// fetches of one key are serialised, different keys proceed in parallel.
// mu guards entries, used and locks.
type Cache struct {
	dir      string
	maxBytes int64
	client   *http.Client
	log      *slog.Logger
	now      func() time.Time

	mu      sync.Mutex
	entries map[string]*entry
	used    int64
	locks   map[string]*keyLock
}

// entry is one cached artifact; its metadata is kept beside the file as
// <name>.json so the cache survives a restart.
type entry struct {
	Key          string    `json:"key"`
	Name         string    `json:"name"`
	Size         int64     `json:"size"`
	Format       Format    `json:"format"`
	Digests      Digests   `json:"digests"`
	ETag         string    `json:"etag,omitempty"`
	LastModified string    `json:"last_modified,omitempty"`
	LastUsed     time.Time `json:"last_used"`
}

type keyLock struct {
	mu   sync.Mutex
	refs int
}

// NewCache opens (or creates) a cache in cfg.Dir, adopting the entries a
// previous process left there.
func NewCache(cfg Config) (*Cache, error) {
	if cfg.Dir == "" {
		return nil, errors.New("download cache: dir must be set")
	}
	if cfg.MaxBytes < 0 {
		return nil, fmt.Errorf("download cache: max bytes must not be negative, got %d", cfg.MaxBytes)
	}
	if cfg.MaxBytes == 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Cache{
		dir: cfg.Dir, maxBytes: cfg.MaxBytes, client: cfg.Client, log: cfg.Logger, now: time.Now,
		entries: map[string]*entry{}, locks: map[string]*keyLock{},
	}
	tmp := c.tmpDir()
	if err := os.RemoveAll(tmp); err != nil {
		return nil, fmt.Errorf("download cache: clear %s: %w", tmp, err)
	}
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return nil, fmt.Errorf("download cache: %w", err)
	}
	if err := c.load(); err != nil {
		return nil, fmt.Errorf("download cache: %w", err)
	}
	return c, nil
}

func (c *Cache) tmpDir() string { return filepath.Join(c.dir, "tmp") }

// load adopts every entry whose file is still there with the size recorded.
func (c *Cache) load() error {
	metas, err := filepath.Glob(filepath.Join(c.dir, "*.json"))
	if err != nil {
		return err
	}
	for _, m := range metas {
		b, err := os.ReadFile(m)
		if err != nil {
			return err
		}
		var e entry
		st, statErr := os.Stat(filepath.Join(c.dir, strings.TrimSuffix(filepath.Base(m), ".json")))
		if json.Unmarshal(b, &e) != nil || statErr != nil || st.Size() != e.Size || e.Name+".json" != filepath.Base(m) {
			c.log.Warn("dropping unreadable cache entry", "meta", m)
			os.Remove(m)
			os.Remove(strings.TrimSuffix(m, ".json"))
			continue
		}
		c.entries[e.Key] = &e
		c.used += e.Size
	}
	c.evict("")
	return nil
}

// Used returns the bytes the cache holds.
func (c *Cache) Used() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.used
}

// Fetch returns the artifact req names, from the cache when it is known to
// be current, else downloaded (and cached when it fits). A cached entry is
// current when it matches req.Checksum, or, without a checksum, when the
// server answers a conditional request with 304. Content that does not
// match req.Checksum is refused with a *ChecksumError and never cached.
// The caller must Close the artifact.
func (c *Cache) Fetch(ctx context.Context, req Request) (*Artifact, error) {
	if _, err := url.Parse(req.URL); err != nil || req.URL == "" {
		return nil, fmt.Errorf("download: invalid url %q", redact(req.URL))
	}
	key := req.CacheKey
	if key == "" {
		key = req.URL
	}
	unlock := c.lock(key)
	defer unlock()

	c.mu.Lock()
	cached, ok := c.entries[key]
	var e entry
	if ok {
		e = *cached
	}
	c.mu.Unlock()

	conditional := false
	if ok {
		switch err := e.Digests.Verify(req.Checksum); {
		case req.Checksum.Value != "" && err == nil:
			// The content is pinned by its checksum: no need to ask.
			return c.open(key, e)
		case req.Checksum.Value != "":
			c.log.Debug("cached artifact does not match checksum, fetching again", "cache_key", key)
		default:
			conditional = e.ETag != "" || e.LastModified != ""
		}
	}
	var validators *entry
	if conditional {
		validators = &e
	}
	return c.download(ctx, key, req, validators)
}

// download GETs req.URL (conditionally when validators is set) into a
// temporary file, verifies it, and caches it if it fits.
func (c *Cache) download(ctx context.Context, key string, req Request, validators *entry) (*Artifact, error) {
	where := redact(req.URL)
	hreq, err := http.NewRequestWithContext(ctx, http.MethodGet, req.URL, nil)
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", where, err)
	}
	if validators != nil {
		if validators.ETag != "" {
			hreq.Header.Set("If-None-Match", validators.ETag)
		}
		if validators.LastModified != "" {
			hreq.Header.Set("If-Modified-Since", validators.LastModified)
		}
	}
	resp, err := c.client.Do(hreq)
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", where, stripURL(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotModified && validators != nil {
		return c.open(key, *validators)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, fmt.Errorf("download %s: unexpected status %s", where, resp.Status)
	}

	tmp, err := os.CreateTemp(c.tmpDir(), "dl-")
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", where, err)
	}
	// Unlink at once: the open descriptor keeps the data, and nothing is
	// left behind whatever happens next.
	os.Remove(tmp.Name())
	keep := false
	defer func() {
		if !keep {
			tmp.Close()
		}
	}()
	h := newHasher()
	size, err := io.Copy(io.MultiWriter(tmp, h), resp.Body)
	if err != nil {
		return nil, fmt.Errorf("download %s: read body: %w", where, stripURL(err))
	}
	digests := h.digests()
	if err := digests.Verify(req.Checksum); err != nil {
		return nil, fmt.Errorf("download %s: %w", where, err)
	}
	format, err := sniff(tmp)
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", where, err)
	}
	e := entry{
		Key: key, Name: nameFor(key), Size: size, Format: format, Digests: digests,
		ETag: resp.Header.Get("ETag"), LastModified: resp.Header.Get("Last-Modified"), LastUsed: c.now(),
	}
	if size <= c.maxBytes {
		if err := c.store(tmp, e); err != nil {
			c.log.Warn("could not cache artifact", "cache_key", key, "error", err)
		}
	}
	keep = true
	return &Artifact{file: tmp, Size: size, Format: format, Digests: digests}, nil
}

// store copies a verified download into the cache under e.Name.
func (c *Cache) store(src *os.File, e entry) error {
	dst, err := os.CreateTemp(c.tmpDir(), "store-")
	if err != nil {
		return err
	}
	defer os.Remove(dst.Name())
	_, err = io.Copy(dst, io.NewSectionReader(src, 0, e.Size))
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	meta, err := json.Marshal(e)
	if err != nil {
		return err
	}
	final := filepath.Join(c.dir, e.Name)
	if err := os.Rename(dst.Name(), final); err != nil {
		return err
	}
	if err := os.WriteFile(final+".json", meta, 0o600); err != nil {
		os.Remove(final)
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.entries[e.Key]; ok {
		c.used -= old.Size
	}
	c.entries[e.Key] = &e
	c.used += e.Size
	c.evict(e.Key)
	return nil
}

// open hands out a cached entry. An open descriptor stays readable even if
// the entry is evicted while it is in use.
func (c *Cache) open(key string, e entry) (*Artifact, error) {
	f, err := os.Open(filepath.Join(c.dir, e.Name))
	if err != nil {
		return nil, fmt.Errorf("open cached %s: %w", key, err)
	}
	c.mu.Lock()
	if cur, ok := c.entries[key]; ok {
		cur.LastUsed = c.now()
	}
	c.mu.Unlock()
	return &Artifact{file: f, Size: e.Size, Format: e.Format, Digests: e.Digests, CacheHit: true}, nil
}

// evict removes least recently used entries, never keep, until the cache
// fits. c.mu must be held.
func (c *Cache) evict(keep string) {
	if c.used <= c.maxBytes {
		return
	}
	byAge := make([]*entry, 0, len(c.entries))
	for _, e := range c.entries {
		if e.Key != keep {
			byAge = append(byAge, e)
		}
	}
	sort.Slice(byAge, func(i, j int) bool { return byAge[i].LastUsed.Before(byAge[j].LastUsed) })
	for _, e := range byAge {
		if c.used <= c.maxBytes {
			break
		}
		p := filepath.Join(c.dir, e.Name)
		os.Remove(p)
		os.Remove(p + ".json")
		delete(c.entries, e.Key)
		c.used -= e.Size
		c.log.Debug("evicted cached artifact", "cache_key", e.Key, "size", e.Size)
	}
}

// lock serialises fetches of one key and returns the unlock.
func (c *Cache) lock(key string) func() {
	c.mu.Lock()
	l, ok := c.locks[key]
	if !ok {
		l = &keyLock{}
		c.locks[key] = l
	}
	l.refs++
	c.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		c.mu.Lock()
		l.refs--
		if l.refs == 0 {
			delete(c.locks, key)
		}
		c.mu.Unlock()
	}
}

func nameFor(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// redact drops user info and query from a URL for messages: signed URLs
// carry credentials there.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<unparseable url>"
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return u.String()
}

// stripURL unwraps a *url.Error, whose text repeats the full URL.
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// Artifact is one fetched file, open for reading until Close.
type Artifact struct {
	file *os.File
	// Size is the length of the file as downloaded.
	Size int64
	// Format is what the file turned out to be.
	Format Format
	// Digests of the content.
	Digests Digests
	// CacheHit reports that no body was transferred for this fetch.
	CacheHit bool
}

// TarStream returns the artifact as an uncompressed tar stream; a plain
// file becomes one entry called name. Close the stream before the artifact.
func (a *Artifact) TarStream(name string) (io.ReadCloser, error) {
	return tarStream(a.file, a.Format, a.Size, name)
}

// Close releases the artifact.
func (a *Artifact) Close() error { return a.file.Close() }
