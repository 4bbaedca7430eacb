package bbs

import (
	"crypto/tls"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"

	"github.com/gavel-scheduler/gavel/internal/grpcserver"
	"github.com/gavel-scheduler/gavel/proto/models"
)

// HealthService is the name the BBS reports under in the gRPC health service.
const HealthService = "gavel.models.v1.BBS"

// NewGRPCServer builds the gRPC server for a BBS service: mutual TLS unless
// tlsConfig is nil (only with --insecure), validation and error mapping, the
// health service, keepalives suited to long event streams.
func NewGRPCServer(svc *Server, tlsConfig *tls.Config, reg prometheus.Registerer, logger *slog.Logger) (*grpc.Server, *health.Server) {
	srv, hs := grpcserver.New(grpcserver.Options{
		Component: "bbs", HealthService: HealthService,
		TLS: tlsConfig, Registerer: reg, Logger: logger,
	})
	models.RegisterBBSServer(srv, svc)
	return srv, hs
}
