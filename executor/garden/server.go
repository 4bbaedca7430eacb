package garden

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tedsuo/ifrit"
)

// Defaults for ServerConfig.
const (
	DefaultSocketMode        os.FileMode = 0o700
	DefaultReadHeaderTimeout             = 30 * time.Second
	DefaultShutdownTimeout               = 10 * time.Second
)

// ServerConfig configures a Server.
type ServerConfig struct {
	// Network is "unix" or "tcp".
	Network string
	// Address is the socket path or host:port.
	Address string
	// SocketMode is the unix socket's permission bits (default 0700).
	SocketMode os.FileMode
	// DefaultGraceTime replaces a zero grace time in Create; 0 means
	// containers are never reaped unless they ask.
	DefaultGraceTime time.Duration
	// ReadHeaderTimeout bounds reading request headers.
	ReadHeaderTimeout time.Duration
	// ShutdownTimeout bounds the graceful stop of ordinary requests;
	// streaming connections are cut at once.
	ShutdownTimeout time.Duration
}

func (c ServerConfig) withDefaults() ServerConfig {
	if c.SocketMode == 0 {
		c.SocketMode = DefaultSocketMode
	}
	if c.ReadHeaderTimeout == 0 {
		c.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	return c
}

// Validate reports the first invalid field.
func (c ServerConfig) Validate() error {
	switch c.Network {
	case "unix":
		if c.Address == "" {
			return errors.New("garden bind socket: must not be empty")
		}
	case "tcp":
		if _, _, err := net.SplitHostPort(c.Address); err != nil {
			return fmt.Errorf("garden bind address %q: %w", c.Address, err)
		}
	default:
		return fmt.Errorf("garden network %q: must be unix or tcp", c.Network)
	}
	if c.DefaultGraceTime < 0 {
		return fmt.Errorf("garden default grace time %s: must not be negative", c.DefaultGraceTime)
	}
	return nil
}

// Server serves the Garden protocol over a Backend. It is an ifrit.Runner:
// Run starts the backend, serves until signalled, then stops the backend
// (containers keep running).
type Server struct {
	cfg     ServerConfig
	backend Backend
	logger  *slog.Logger
	mux     *http.ServeMux
	reaper  *reaper
	streams *streamRegistry

	nextStreamID atomic.Uint64
	addr         atomic.Pointer[string]

	// mu guards destroying and hijacked.
	mu         sync.Mutex
	destroying map[string]bool
	// hijacked holds the streaming connections, which http.Server does not
	// track, so shutdown can cut them.
	hijacked map[net.Conn]struct{}
}

var _ ifrit.Runner = (*Server)(nil)

// NewServer builds a server; a nil logger discards.
func NewServer(cfg ServerConfig, backend Backend, logger *slog.Logger) *Server {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg:        cfg.withDefaults(),
		backend:    backend,
		logger:     logger,
		streams:    newStreamRegistry(),
		destroying: map[string]bool{},
		hijacked:   map[net.Conn]struct{}{},
	}
	s.reaper = newReaper(s.reap)
	s.mux = s.routes()
	return s
}

// Handler returns the protocol's routes, for tests that need no listener.
// Grace timers are armed only by Run and Create.
func (s *Server) Handler() http.Handler { return s.mux }

// Addr is the bound address once Run has signalled ready.
func (s *Server) Addr() string {
	if a := s.addr.Load(); a != nil {
		return *a
	}
	return ""
}

// Run implements ifrit.Runner.
func (s *Server) Run(signals <-chan os.Signal, ready chan<- struct{}) error {
	ctx := context.Background()
	if err := s.backend.Start(ctx); err != nil {
		return fmt.Errorf("start garden backend: %w", err)
	}
	defer func() {
		if err := s.backend.Stop(context.Background()); err != nil {
			s.logger.Error("stop garden backend", "error", err)
		}
	}()
	l, err := s.listen()
	if err != nil {
		return err
	}
	addr := l.Addr().String()
	s.addr.Store(&addr)
	if err := s.armExisting(ctx); err != nil {
		l.Close()
		return err
	}
	defer s.reaper.stopAll()

	srv := &http.Server{Handler: s.mux, ReadHeaderTimeout: s.cfg.ReadHeaderTimeout, ErrorLog: slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn)}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	s.logger.Info("garden server listening", "network", s.cfg.Network, "address", addr)
	close(ready)
	select {
	case err := <-errc:
		return fmt.Errorf("garden serve: %w", err)
	case sig := <-signals:
		s.logger.Info("garden server stopping", "signal", sig.String())
	}
	s.closeHijacked()
	sctx, cancel := context.WithTimeout(ctx, s.cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	return nil
}

func (s *Server) listen() (net.Listener, error) {
	if s.cfg.Network == "unix" {
		if err := os.Remove(s.cfg.Address); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("remove stale garden socket: %w", err)
		}
	}
	l, err := net.Listen(s.cfg.Network, s.cfg.Address)
	if err != nil {
		return nil, fmt.Errorf("garden listen: %w", err)
	}
	if s.cfg.Network == "unix" {
		if err := os.Chmod(s.cfg.Address, s.cfg.SocketMode); err != nil {
			l.Close()
			return nil, fmt.Errorf("chmod garden socket: %w", err)
		}
	}
	return l, nil
}

// armExisting starts the grace timers of containers that survived a
// restart.
func (s *Server) armExisting(ctx context.Context) error {
	containers, err := s.backend.Containers(ctx, nil)
	if err != nil {
		return fmt.Errorf("list restored containers: %w", err)
	}
	for _, c := range containers {
		s.reaper.arm(c.Handle(), s.backend.GraceTime(c))
	}
	return nil
}

func (s *Server) reap(handle string) {
	s.logger.Info("grace time expired", "handle", handle)
	if err := s.destroy(context.Background(), handle); err != nil {
		s.logger.Error("reap container", "handle", handle, "error", err)
	}
}

func (s *Server) trackHijacked(c net.Conn, add bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if add {
		s.hijacked[c] = struct{}{}
	} else {
		delete(s.hijacked, c)
	}
}

func (s *Server) closeHijacked() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.hijacked {
		c.Close()
	}
}

// handler adapts a function returning (response, error) to the wire: the
// value JSON-encoded with 200, or the Garden error object.
type handlerFunc func(w http.ResponseWriter, r *http.Request) (any, error)

func (s *Server) serve(h handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		out, err := h(w, r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if out == nil {
			return // the handler wrote the response itself
		}
		writeJSON(w, http.StatusOK, out)
	}
}

// container wraps a handler that names a container: it holds the grace
// timer for the request's duration and looks the container up.
func (s *Server) container(h func(w http.ResponseWriter, r *http.Request, c Container) (any, error)) http.HandlerFunc {
	return s.serve(func(w http.ResponseWriter, r *http.Request) (any, error) {
		handle := r.PathValue("handle")
		s.reaper.pause(handle)
		defer s.reaper.resume(handle)
		c, err := s.backend.Lookup(r.Context(), handle)
		if err != nil {
			return nil, err
		}
		return h(w, r, c)
	})
}

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status := http.StatusInternalServerError
	if isNotFound(err) {
		status = http.StatusNotFound
	} else {
		s.logger.Warn("garden request failed", "method", r.Method, "path", r.URL.Path, "error", err)
	}
	writeJSON(w, status, toWire(err))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// empty is the body of a success without data; the client always decodes.
var empty = struct{}{}

// decode reads one JSON request body into v.
func decode(r *http.Request, v any) error {
	if err := json.NewDecoder(r.Body).Decode(v); err != nil {
		return fmt.Errorf("malformed request body: %w", err)
	}
	return nil
}

func (s *Server) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc(routePing, s.serve(func(w http.ResponseWriter, r *http.Request) (any, error) {
		return empty, s.backend.Ping(r.Context())
	}))
	mux.HandleFunc(routeCapacity, s.serve(func(w http.ResponseWriter, r *http.Request) (any, error) {
		return s.backend.Capacity(r.Context())
	}))
	mux.HandleFunc(routeList, s.serve(s.list))
	mux.HandleFunc(routeCreate, s.serve(s.create))
	mux.HandleFunc(routeDestroy, s.serve(func(w http.ResponseWriter, r *http.Request) (any, error) {
		return empty, s.destroy(r.Context(), r.PathValue("handle"))
	}))
	mux.HandleFunc(routeBulkInfo, s.serve(s.bulkInfo))
	mux.HandleFunc(routeBulkMetrics, s.serve(s.bulkMetrics))
	mux.HandleFunc(routeInfo, s.container(func(w http.ResponseWriter, r *http.Request, c Container) (any, error) {
		return c.Info(r.Context())
	}))
	mux.HandleFunc(routeStop, s.container(func(w http.ResponseWriter, r *http.Request, c Container) (any, error) {
		var req stopRequest
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		return empty, c.Stop(r.Context(), req.Kill)
	}))
	mux.HandleFunc(routeStreamIn, s.container(func(w http.ResponseWriter, r *http.Request, c Container) (any, error) {
		q := r.URL.Query()
		return empty, c.StreamIn(r.Context(), StreamInSpec{Path: q.Get("destination"), User: q.Get("user"), TarStream: r.Body})
	}))
	mux.HandleFunc(routeStreamOut, s.container(s.streamOut))
	mux.HandleFunc(routeCurrentBandwidthLimits, s.container(func(w http.ResponseWriter, r *http.Request, c Container) (any, error) {
		return c.CurrentBandwidthLimits(r.Context())
	}))
	mux.HandleFunc(routeCurrentCPULimits, s.container(func(w http.ResponseWriter, r *http.Request, c Container) (any, error) {
		return c.CurrentCPULimits(r.Context())
	}))
	mux.HandleFunc(routeCurrentDiskLimits, s.container(func(w http.ResponseWriter, r *http.Request, c Container) (any, error) {
		return c.CurrentDiskLimits(r.Context())
	}))
	mux.HandleFunc(routeCurrentMemoryLimits, s.container(func(w http.ResponseWriter, r *http.Request, c Container) (any, error) {
		return c.CurrentMemoryLimits(r.Context())
	}))
	mux.HandleFunc(routeNetIn, s.container(func(w http.ResponseWriter, r *http.Request, c Container) (any, error) {
		var req netInMessage
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		hp, cp, err := c.NetIn(r.Context(), req.HostPort, req.ContainerPort)
		return netInMessage{HostPort: hp, ContainerPort: cp}, err
	}))
	mux.HandleFunc(routeNetOut, s.container(func(w http.ResponseWriter, r *http.Request, c Container) (any, error) {
		var rule NetOutRule
		if err := decode(r, &rule); err != nil {
			return nil, err
		}
		return empty, c.NetOut(r.Context(), rule)
	}))
	mux.HandleFunc(routeBulkNetOut, s.container(func(w http.ResponseWriter, r *http.Request, c Container) (any, error) {
		var rules []NetOutRule
		if err := decode(r, &rules); err != nil {
			return nil, err
		}
		return empty, c.BulkNetOut(r.Context(), rules)
	}))
	mux.HandleFunc(routeMetrics, s.container(func(w http.ResponseWriter, r *http.Request, c Container) (any, error) {
		return c.Metrics(r.Context())
	}))
	mux.HandleFunc(routeSetGraceTime, s.container(func(w http.ResponseWriter, r *http.Request, c Container) (any, error) {
		var grace time.Duration
		if err := decode(r, &grace); err != nil {
			return nil, err
		}
		if grace < 0 {
			return nil, fmt.Errorf("grace time %s: must not be negative", grace)
		}
		if err := c.SetGraceTime(r.Context(), grace); err != nil {
			return nil, err
		}
		// The request itself holds the timer; resume restarts it with
		// the new value.
		s.reaper.arm(c.Handle(), grace)
		return empty, nil
	}))
	mux.HandleFunc(routeProperties, s.container(func(w http.ResponseWriter, r *http.Request, c Container) (any, error) {
		return c.Properties(r.Context())
	}))
	mux.HandleFunc(routeProperty, s.container(func(w http.ResponseWriter, r *http.Request, c Container) (any, error) {
		v, err := c.Property(r.Context(), r.PathValue("key"))
		return propertyMessage{Value: v}, err
	}))
	mux.HandleFunc(routeSetProperty, s.container(func(w http.ResponseWriter, r *http.Request, c Container) (any, error) {
		var req propertyMessage
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		return empty, c.SetProperty(r.Context(), r.PathValue("key"), req.Value)
	}))
	mux.HandleFunc(routeRemoveProperty, s.container(func(w http.ResponseWriter, r *http.Request, c Container) (any, error) {
		return empty, c.RemoveProperty(r.Context(), r.PathValue("key"))
	}))
	mux.HandleFunc(routeRun, s.container(s.run))
	mux.HandleFunc(routeAttach, s.container(s.attach))
	mux.HandleFunc(routeStdout, s.attachOutput("stdout"))
	mux.HandleFunc(routeStderr, s.attachOutput("stderr"))
	return mux
}

func (s *Server) create(w http.ResponseWriter, r *http.Request) (any, error) {
	var spec ContainerSpec
	if err := decode(r, &spec); err != nil {
		return nil, err
	}
	if spec.GraceTime == 0 {
		spec.GraceTime = s.cfg.DefaultGraceTime
	}
	if spec.GraceTime < 0 {
		return nil, fmt.Errorf("grace time %s: must not be negative", spec.GraceTime)
	}
	c, err := s.backend.Create(r.Context(), spec)
	if err != nil {
		return nil, err
	}
	s.reaper.arm(c.Handle(), s.backend.GraceTime(c))
	return struct {
		Handle string `json:"Handle"`
	}{c.Handle()}, nil
}

func (s *Server) destroy(ctx context.Context, handle string) error {
	s.mu.Lock()
	if s.destroying[handle] {
		s.mu.Unlock()
		return errors.New("container already being destroyed")
	}
	s.destroying[handle] = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.destroying, handle)
		s.mu.Unlock()
	}()
	if err := s.backend.Destroy(ctx, handle); err != nil {
		return err
	}
	s.reaper.forget(handle)
	return nil
}

// listFilter is the property filter of a List query: every parameter,
// plus garden.state=created unless the query names garden.state
// ("all" lifts it).
func listFilter(query map[string][]string) Properties {
	filter := Properties{}
	for k, vs := range query {
		if len(vs) > 0 {
			filter[k] = vs[0]
		}
	}
	switch filter[PropertyState] {
	case "":
		filter[PropertyState] = StateCreated
	case StateAll:
		delete(filter, PropertyState)
	}
	return filter
}

func (s *Server) list(w http.ResponseWriter, r *http.Request) (any, error) {
	containers, err := s.backend.Containers(r.Context(), listFilter(r.URL.Query()))
	if err != nil {
		return nil, err
	}
	handles := make([]string, 0, len(containers))
	for _, c := range containers {
		handles = append(handles, c.Handle())
	}
	return struct {
		Handles []string `json:"Handles"`
	}{handles}, nil
}

// bulkHandles splits the handles parameter; absent or empty is none.
func bulkHandles(r *http.Request) []string {
	var handles []string
	for _, h := range strings.Split(r.URL.Query().Get("handles"), ",") {
		if h != "" {
			handles = append(handles, h)
		}
	}
	return handles
}

func (s *Server) bulkInfo(w http.ResponseWriter, r *http.Request) (any, error) {
	out := map[string]ContainerInfoEntry{}
	for _, h := range bulkHandles(r) {
		c, err := s.backend.Lookup(r.Context(), h)
		if err != nil {
			out[h] = ContainerInfoEntry{Err: NewError(err)}
			continue
		}
		info, err := c.Info(r.Context())
		out[h] = ContainerInfoEntry{Info: info, Err: NewError(err)}
	}
	return out, nil
}

func (s *Server) bulkMetrics(w http.ResponseWriter, r *http.Request) (any, error) {
	out := map[string]ContainerMetricsEntry{}
	for _, h := range bulkHandles(r) {
		c, err := s.backend.Lookup(r.Context(), h)
		if err != nil {
			out[h] = ContainerMetricsEntry{Err: NewError(err)}
			continue
		}
		m, err := c.Metrics(r.Context())
		out[h] = ContainerMetricsEntry{Metrics: m, Err: NewError(err)}
	}
	return out, nil
}

func (s *Server) streamOut(w http.ResponseWriter, r *http.Request, c Container) (any, error) {
	q := r.URL.Query()
	rc, err := c.StreamOut(r.Context(), StreamOutSpec{Path: q.Get("source"), User: q.Get("user")})
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	w.Header().Set("Content-Type", "application/x-tar")
	w.WriteHeader(http.StatusOK)
	// A failure mid-stream can only truncate the response.
	if _, err := io.Copy(w, rc); err != nil {
		s.logger.Warn("stream out interrupted", "handle", c.Handle(), "error", err)
	}
	return nil, nil
}
