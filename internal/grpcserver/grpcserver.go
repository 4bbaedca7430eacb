// Package grpcserver builds the gRPC servers of gavel's daemons the same
// way: mutual TLS unless explicitly insecure, every request validated
// before a handler sees it, domain errors turned into gRPC statuses in one
// place (models.ToStatus), per-method metrics, the health service and
// keepalives suited to long streams.
package grpcserver

import (
	"context"
	"crypto/tls"
	"log/slog"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/gavel-scheduler/gavel/proto/models"
)

// Options configure a server.
type Options struct {
	// Component names the metrics: gavel_<component>_requests_total and
	// gavel_<component>_request_duration_seconds.
	Component string
	// HealthService is the name the server reports SERVING under (the
	// empty name is always reported too).
	HealthService string
	// TLS is the server's mutual-TLS configuration; nil serves plaintext
	// (only behind an explicit --insecure).
	TLS *tls.Config
	// Registerer takes the metrics; nil registers nothing.
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	// MaxRecvMsgSize bounds a request (default 4 MiB).
	MaxRecvMsgSize int
}

// validator is implemented by every request message.
type validator interface{ Validate() error }

// New returns a gRPC server with the interceptors, credentials and the
// health service registered; the caller registers its own service on it.
func New(o Options) (*grpc.Server, *health.Server) {
	logger := o.Logger
	if logger == nil {
		logger = slog.Default()
	}
	if o.MaxRecvMsgSize == 0 {
		o.MaxRecvMsgSize = 4 << 20
	}
	m := newMetrics(o.Component, o.Registerer)
	opts := []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(m.unary(logger)),
		grpc.ChainStreamInterceptor(m.stream()),
		grpc.MaxRecvMsgSize(o.MaxRecvMsgSize),
		grpc.NumStreamWorkers(uint32(runtime.NumCPU())),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	}
	if o.TLS != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(o.TLS)))
	}
	srv := grpc.NewServer(opts...)
	hs := health.NewServer()
	if o.HealthService != "" {
		hs.SetServingStatus(o.HealthService, healthpb.HealthCheckResponse_SERVING)
	}
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(srv, hs)
	return srv, hs
}

// metrics count calls by method and code and time them.
type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics(component string, reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gavel_" + component + "_requests_total",
			Help: "gRPC calls by method and status code.",
		}, []string{"method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gavel_" + component + "_request_duration_seconds",
			Help:    "gRPC call latency by method.",
			Buckets: prometheus.ExponentialBuckets(0.0002, 2, 16),
		}, []string{"method"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration)
	}
	return m
}

// unary is the one place requests are validated and errors become gRPC
// statuses: handlers return domain errors and never build statuses.
func (m *metrics) unary(logger *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		var resp any
		var err error
		if v, ok := req.(validator); ok {
			err = v.Validate()
		}
		if err == nil {
			resp, err = handler(ctx, req)
		}
		st := models.ToStatus(err)
		m.observe(info.FullMethod, st, start)
		if err != nil {
			if st.Code() == codes.Internal {
				logger.Error("request failed", "method", info.FullMethod, "error", err)
			}
			return nil, st.Err()
		}
		return resp, nil
	}
}

func (m *metrics) stream() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		start := time.Now()
		err := handler(srv, &validatingStream{ServerStream: ss})
		st := models.ToStatus(err)
		m.observe(info.FullMethod, st, start)
		if err != nil {
			return st.Err()
		}
		return nil
	}
}

func (m *metrics) observe(method string, st *status.Status, start time.Time) {
	code := "OK"
	if st != nil {
		code = st.Code().String()
	}
	m.requests.WithLabelValues(method, code).Inc()
	m.duration.WithLabelValues(method).Observe(time.Since(start).Seconds())
}

// validatingStream validates the request message of a server stream.
type validatingStream struct{ grpc.ServerStream }

func (s *validatingStream) RecvMsg(msg any) error {
	if err := s.ServerStream.RecvMsg(msg); err != nil {
		return err
	}
	if v, ok := msg.(validator); ok {
		if err := v.Validate(); err != nil {
			return models.ToStatus(err).Err()
		}
	}
	return nil
}

// DefaultStopTimeout bounds a graceful stop when the caller sets none.
const DefaultStopTimeout = 10 * time.Second

// Stop stops srv gracefully (calls in flight finish), cutting off whatever
// outlasts timeout (0: DefaultStopTimeout).
func Stop(srv *grpc.Server, timeout time.Duration) {
	if timeout <= 0 {
		timeout = DefaultStopTimeout
	}
	done := make(chan struct{})
	go func() { srv.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
		srv.Stop()
	}
}
