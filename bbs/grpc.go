package bbs

import (
	"context"
	"crypto/tls"
	"log/slog"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/gavel-scheduler/gavel/proto/models"
)

// HealthService is the name the BBS reports under in the gRPC health service.
const HealthService = "gavel.models.v1.BBS"

// validator is implemented by every request message.
type validator interface{ Validate() error }

// rpcMetrics counts calls by method and code and times them.
type rpcMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newRPCMetrics(reg prometheus.Registerer) *rpcMetrics {
	m := &rpcMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gavel_bbs_requests_total",
			Help: "BBS gRPC calls by method and status code.",
		}, []string{"method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gavel_bbs_request_duration_seconds",
			Help:    "BBS gRPC call latency by method.",
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
func (m *rpcMetrics) unary(logger *slog.Logger) grpc.UnaryServerInterceptor {
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
			if st.Code().String() == "Internal" {
				logger.Error("request failed", "method", info.FullMethod, "error", err)
			}
			return nil, st.Err()
		}
		return resp, nil
	}
}

func (m *rpcMetrics) stream(logger *slog.Logger) grpc.StreamServerInterceptor {
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

func (m *rpcMetrics) observe(method string, st *status.Status, start time.Time) {
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

// NewGRPCServer builds the gRPC server for a BBS service: mutual TLS unless
// tlsConfig is nil (only with --insecure), validation and error mapping, the
// health service, keepalives suited to long event streams.
func NewGRPCServer(svc *Server, tlsConfig *tls.Config, reg prometheus.Registerer, logger *slog.Logger) (*grpc.Server, *health.Server) {
	if logger == nil {
		logger = slog.Default()
	}
	m := newRPCMetrics(reg)
	opts := []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(m.unary(logger)),
		grpc.ChainStreamInterceptor(m.stream(logger)),
		grpc.MaxRecvMsgSize(4 << 20),
		grpc.NumStreamWorkers(uint32(runtime.NumCPU())),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	}
	if tlsConfig != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(tlsConfig)))
	}
	srv := grpc.NewServer(opts...)
	models.RegisterBBSServer(srv, svc)
	hs := health.NewServer()
	hs.SetServingStatus(HealthService, healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(srv, hs)
	return srv, hs
}
