// Package debugserver owns the per-component debug HTTP endpoint: Prometheus
// metrics, pprof profiles, expvar and a health check. Every gavel daemon runs
// one beside its gRPC API, on a separate address, so scraping or profiling
// never competes with (or needs the credentials of) the API port.
package debugserver

import (
	"context"
	"errors"
	"expvar"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/tedsuo/ifrit"
)

// Defaults for Config.
const (
	// DefaultAddress binds to loopback on a kernel-chosen port: profiles
	// and expvar expose process internals (command line, memory), so
	// reaching them from other hosts must be an explicit choice.
	DefaultAddress = "127.0.0.1:0"
	// DefaultShutdownTimeout bounds the graceful shutdown. A running CPU
	// profile (30 s by default) is cut off rather than holding up the
	// daemon's exit.
	DefaultShutdownTimeout = 5 * time.Second
)

// Config configures a debug server. The zero value is usable: every empty
// field takes its default.
type Config struct {
	// Address is the host:port to listen on (default DefaultAddress).
	Address string
	// ShutdownTimeout bounds graceful shutdown (default
	// DefaultShutdownTimeout).
	ShutdownTimeout time.Duration
}

// withDefaults returns c with empty fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.Address == "" {
		c.Address = DefaultAddress
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	return c
}

// Validate reports the first invalid field, naming its key, so a bad value
// is refused at start-up instead of when the listener opens.
func (c Config) Validate() error {
	c = c.withDefaults()
	if _, _, err := net.SplitHostPort(c.Address); err != nil {
		return fmt.Errorf("debug address %q: %w", c.Address, err)
	}
	if c.ShutdownTimeout < 0 {
		return fmt.Errorf("debug shutdown timeout %s: must not be negative", c.ShutdownTimeout)
	}
	return nil
}

// HealthFunc reports whether the component is healthy: nil for healthy, or
// an error whose text /healthz returns with status 503. It runs on every
// probe with the request's context, so it should be cheap.
type HealthFunc func(ctx context.Context) error

// NewRegistry returns a registry holding the Go runtime and process
// collectors. Components register their own gavel_* metrics on it; a
// private registry (not prometheus.DefaultRegisterer) keeps tests that
// start several components in one process from colliding.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// Server is the debug HTTP server. It is an ifrit.Runner and runs once.
type Server struct {
	cfg     Config
	handler http.Handler
	logger  *slog.Logger
	// addr holds the bound address once Run has closed ready; atomic
	// because Addr is called from other goroutines.
	addr atomic.Pointer[string]
}

// New builds a debug server. A nil reg serves NewRegistry(); a nil health
// always reports healthy; a nil logger discards.
func New(cfg Config, reg *prometheus.Registry, health HealthFunc, logger *slog.Logger) *Server {
	if reg == nil {
		reg = NewRegistry()
	}
	if health == nil {
		health = func(context.Context) error { return nil }
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Server{
		cfg:     cfg.withDefaults(),
		handler: newMux(reg, health, logger),
		logger:  logger,
	}
}

func newMux(reg *prometheus.Registry, health HealthFunc, logger *slog.Logger) *http.ServeMux {
	// Everything is mounted on a private mux: importing net/http/pprof and
	// expvar also registers them on http.DefaultServeMux, which gavel never
	// serves, so no other listener leaks profiles by accident.
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog: slogPrintln{logger},
		// One failing collector should not blank every other metric.
		ErrorHandling: promhttp.ContinueOnError,
	}))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.Handle("/debug/vars", expvar.Handler())
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if err := health(r.Context()); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, err.Error())
			return
		}
		fmt.Fprintln(w, "ok")
	})
	return mux
}

var _ ifrit.Runner = (*Server)(nil)

// Handler returns the server's routes, for tests that need no socket.
func (s *Server) Handler() http.Handler { return s.handler }

// Addr returns the address the server listens on, with the actual port
// when the configured one was 0. It is empty until Run has closed ready.
func (s *Server) Addr() string {
	if a := s.addr.Load(); a != nil {
		return *a
	}
	return ""
}

// Run implements ifrit.Runner: it listens, closes ready, serves until a
// signal arrives and then shuts down gracefully within ShutdownTimeout,
// closing whatever connections are still open after that.
func (s *Server) Run(signals <-chan os.Signal, ready chan<- struct{}) error {
	ln, err := net.Listen("tcp", s.cfg.Address)
	if err != nil {
		return fmt.Errorf("debug server: listen on %s: %w", s.cfg.Address, err)
	}
	addr := ln.Addr().String()
	s.addr.Store(&addr)

	srv := &http.Server{
		Handler: s.handler,
		// No WriteTimeout: pprof's profile and trace endpoints stream for
		// as long as the caller asks and refuse to run if the server's
		// write timeout is shorter.
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	s.logger.Info("debug server listening", "debug_address", addr)
	close(ready)

	select {
	case err := <-served:
		return fmt.Errorf("debug server on %s: %w", addr, err)
	case <-signals:
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		s.logger.Warn("debug server graceful shutdown timed out; closing connections", "error", err)
		_ = srv.Close()
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("debug server on %s: %w", addr, err)
	}
	return nil
}

// slogPrintln adapts a slog.Logger to promhttp's Println-style error log.
type slogPrintln struct{ logger *slog.Logger }

func (l slogPrintln) Println(v ...any) {
	l.logger.Error("serving metrics", "error", fmt.Sprint(v...))
}
