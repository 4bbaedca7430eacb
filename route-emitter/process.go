package routeemitter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/tedsuo/ifrit"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/gavel-scheduler/gavel/internal/election"
	"github.com/gavel-scheduler/gavel/internal/grpcserver"
	"github.com/gavel-scheduler/gavel/proto/models"
)

// HealthService is the name the route emitter's gRPC health reports.
const HealthService = "gavel.route_emitter"

// Process is one route emitter daemon as an ifrit runner: its gRPC server
// (ADS for Envoy, the read API) and its emitter. In local mode the emitter
// runs for the life of the process and the process is ready once the
// first sync is published. In global mode the process campaigns in the
// election and is ready at once (a standby is a working state); only
// while it leads does an emitter run, and only once that emitter's first
// sync is published are streams served. Losing the lead ends every
// stream, so Envoys move to the new leader and keep their configuration
// meanwhile.
type Process struct {
	cfg     Config
	etcd    *clientv3.Client
	reg     prometheus.Registerer
	logger  *slog.Logger
	bbs     BBS
	metrics *Metrics
	xds     *XDSServer

	// mu guards addr, emitter and reason.
	mu      sync.Mutex
	addr    string
	emitter *Emitter
	reason  string
}

// Option configures a Process.
type Option func(*Process)

// WithBBS reads from this BBS client instead of dialling bbs_address
// (gavel dev passes the one it has).
func WithBBS(b BBS) Option { return func(p *Process) { p.bbs = b } }

// NewProcess returns a route emitter. etcd is used for the election and
// may be nil in local mode.
func NewProcess(cfg Config, etcd *clientv3.Client, reg prometheus.Registerer, logger *slog.Logger, opts ...Option) *Process {
	if logger == nil {
		logger = slog.Default()
	}
	logger = logger.With("component", "route-emitter")
	metrics := NewMetrics(reg)
	p := &Process{cfg: cfg, etcd: etcd, reg: reg, logger: logger, metrics: metrics,
		xds: NewXDSServer(metrics, logger), reason: "route emitter starting: first sync not done"}
	for _, o := range opts {
		o(p)
	}
	return p
}

// Addr is the bound (or advertised) ADS address once the process is ready.
func (p *Process) Addr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.addr
}

// Serving reports whether this process serves xDS now.
func (p *Process) Serving() bool {
	em, _ := p.serving()
	return em != nil
}

func (p *Process) serving() (*Emitter, string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.emitter, p.reason
}

func (p *Process) setServing(em *Emitter, reason string) {
	p.mu.Lock()
	p.emitter, p.reason = em, reason
	p.mu.Unlock()
	if em != nil {
		p.metrics.Leader.Set(1)
	} else {
		p.metrics.Leader.Set(0)
		p.xds.Refuse(reason)
	}
}

// Run implements ifrit.Runner.
func (p *Process) Run(signals <-chan os.Signal, ready chan<- struct{}) error {
	if err := p.cfg.Validate(); err != nil {
		return err
	}
	if !p.cfg.Local() && p.etcd == nil {
		return errors.New("route emitter: global mode needs an etcd client for the election")
	}
	serverTLS, clientTLS, err := p.cfg.Files.Configs()
	if err != nil {
		return fmt.Errorf("route emitter %w", err)
	}
	if p.cfg.Insecure {
		p.logger.Warn("serving and dialling plaintext gRPC")
	}
	bbs := p.bbs
	if bbs == nil {
		creds := grpc.WithTransportCredentials(insecure.NewCredentials())
		if clientTLS != nil {
			creds = grpc.WithTransportCredentials(credentials.NewTLS(clientTLS))
		}
		conn, err := grpc.NewClient(p.cfg.BBSAddress, creds,
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(512<<20)))
		if err != nil {
			return fmt.Errorf("bbs %s: %w", p.cfg.BBSAddress, err)
		}
		defer conn.Close()
		bbs = models.NewBBSClient(conn)
	}

	lis, err := net.Listen("tcp", p.cfg.ListenAddress)
	if err != nil {
		return fmt.Errorf("route emitter listen: %w", err)
	}
	advertise := p.cfg.AdvertiseAddress
	if advertise == "" {
		advertise = lis.Addr().String()
	}
	srv, _ := grpcserver.New(grpcserver.Options{Component: "route_emitter", HealthService: HealthService,
		TLS: serverTLS, Registerer: p.reg, Logger: p.logger})
	discovery.RegisterAggregatedDiscoveryServiceServer(srv, p.xds)
	models.RegisterRouteEmitterServer(srv, routesServer{p: p})
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(lis) }()
	defer grpcserver.Stop(srv, p.cfg.ShutdownTimeout.D())
	p.mu.Lock()
	p.addr = advertise
	p.mu.Unlock()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	firstSync := make(chan struct{})
	var once sync.Once
	term := func(ctx context.Context, stopped string) error {
		pub := NewPublisher(strconv.FormatInt(time.Now().UnixNano(), 36)+"-", p.logger)
		em := NewEmitter(p.cfg.emitterConfig(), bbs, p.metrics, p.logger)
		var closeTerm func(string)
		err := em.Run(ctx, pub, func() {
			closeTerm = p.xds.Open(pub)
			p.setServing(em, "")
			p.logger.Info("route emitter serving xds", "address", advertise, "cell_id", p.cfg.CellID)
			once.Do(func() { close(firstSync) })
		})
		p.setServing(nil, stopped)
		if closeTerm != nil {
			closeTerm(stopped)
		}
		return err
	}

	var campaign ifrit.Process
	done := make(chan error, 1)
	if p.cfg.Local() {
		p.setServing(nil, "route emitter starting: first sync not done")
		go func() { done <- term(ctx, "route emitter stopping") }()
		select {
		case <-firstSync:
		case sig := <-signals:
			p.logger.Info("route emitter stopping before its first sync", "signal", sig.String())
			cancel()
			return <-done
		case err := <-done:
			return err
		}
	} else {
		p.setServing(nil, "route emitter on standby: another one is elected")
		candidate, err := election.NewRunner(election.Config{
			Client: p.etcd, Key: ElectionKey(p.cfg.KeyPrefix), Value: advertise, TTL: p.cfg.ElectionTTL.D(), Logger: p.logger,
		}, func(ctx context.Context) error {
			p.setServing(nil, "route emitter elected: first sync not done")
			err := term(ctx, "route emitter lost the election")
			if ctx.Err() != nil {
				p.setServing(nil, "route emitter on standby: another one is elected")
				return nil
			}
			return err
		})
		if err != nil {
			return err
		}
		campaign = ifrit.Invoke(candidate)
		go func() { done <- <-campaign.Wait() }()
	}
	p.logger.Info("route emitter listening", "address", advertise, "mode", p.mode(), "tls", serverTLS != nil)
	close(ready)

	select {
	case sig := <-signals:
		p.logger.Info("route emitter stopping", "signal", sig.String())
		if campaign != nil {
			campaign.Signal(sig)
		}
		cancel()
		return <-done
	case err := <-done:
		return err
	case err := <-errc:
		if campaign != nil {
			campaign.Signal(os.Interrupt)
		}
		cancel()
		<-done
		if errors.Is(err, grpc.ErrServerStopped) {
			return nil
		}
		return fmt.Errorf("route emitter serve: %w", err)
	}
}

func (p *Process) mode() string {
	if p.cfg.Local() {
		return "local"
	}
	return "global"
}
