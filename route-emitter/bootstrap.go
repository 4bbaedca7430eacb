package routeemitter

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"sigs.k8s.io/yaml"
)

// xdsClusterName is the bootstrap's static cluster that reaches the route
// emitter.
const xdsClusterName = "gavel_route_emitter"

// BootstrapOptions describe an Envoy that takes its configuration from a
// route emitter.
type BootstrapOptions struct {
	// NodeID and NodeCluster identify the Envoy (defaults gavel-envoy and
	// gavel-ingress).
	NodeID, NodeCluster string
	// RouteEmitterAddress is the emitter's listen address (host:port).
	RouteEmitterAddress string
	// AdminAddress is Envoy's admin interface (default 127.0.0.1:9901).
	AdminAddress string
	// CACert, Cert and Key are the mutual TLS files Envoy uses to reach
	// the emitter: ca.crt and a client certificate from `gavel certs`.
	// With all three empty the connection is plaintext (an emitter run
	// with --insecure).
	CACert, Cert, Key string
	// ServerName is the name the emitter's certificate must carry
	// (default route-emitter, which `gavel certs` puts in it).
	ServerName string
	// Delta selects incremental xDS instead of state-of-the-world.
	Delta bool
}

// DefaultBootstrapOptions is the shipped bootstrap: a local emitter, the
// certificates of `gavel certs --dir /etc/gavel/certs`.
func DefaultBootstrapOptions() BootstrapOptions {
	return BootstrapOptions{
		RouteEmitterAddress: DefaultConfig().ListenAddress,
		CACert:              "/etc/gavel/certs/ca.crt",
		Cert:                "/etc/gavel/certs/client.crt",
		Key:                 "/etc/gavel/certs/client.key",
	}
}

// Bootstrap builds the Envoy bootstrap: ADS over gRPC to the route emitter
// for listeners and clusters (and through them routes and endpoints),
// mutual TLS with the emitter's certificate checked by name.
func Bootstrap(o BootstrapOptions) (*bootstrapv3.Bootstrap, error) {
	if o.NodeID == "" {
		o.NodeID = "gavel-envoy"
	}
	if o.NodeCluster == "" {
		o.NodeCluster = "gavel-ingress"
	}
	if o.AdminAddress == "" {
		o.AdminAddress = "127.0.0.1:9901"
	}
	if o.ServerName == "" {
		o.ServerName = "route-emitter"
	}
	xdsHost, xdsPort, err := splitAddress("route emitter address", o.RouteEmitterAddress)
	if err != nil {
		return nil, err
	}
	adminHost, adminPort, err := splitAddress("admin address", o.AdminAddress)
	if err != nil {
		return nil, err
	}
	tlsSet := o.CACert != "" || o.Cert != "" || o.Key != ""
	if tlsSet && (o.CACert == "" || o.Cert == "" || o.Key == "") {
		return nil, fmt.Errorf("bootstrap tls: set the CA, certificate and key together")
	}
	apiType := corev3.ApiConfigSource_GRPC
	if o.Delta {
		apiType = corev3.ApiConfigSource_DELTA_GRPC
	}
	xds := &clusterv3.Cluster{
		Name:                 xdsClusterName,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		ConnectTimeout:       durationpb.New(time.Second),
		LoadAssignment: &endpointv3.ClusterLoadAssignment{
			ClusterName: xdsClusterName,
			Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{{
				HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: socketAddress(xdsHost, xdsPort)}},
			}}}},
		},
		// gRPC needs HTTP/2 to the emitter.
		TypedExtensionProtocolOptions: map[string]*anypb.Any{
			"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": mustAny(&upstreamhttpv3.HttpProtocolOptions{
				UpstreamProtocolOptions: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_{
					ExplicitHttpConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig{
						ProtocolConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{
							Http2ProtocolOptions: &corev3.Http2ProtocolOptions{},
						},
					},
				},
			}),
		},
	}
	if tlsSet {
		xds.TransportSocket = &corev3.TransportSocket{
			Name: "envoy.transport_sockets.tls",
			ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(&tlsv3.UpstreamTlsContext{
				Sni: o.ServerName,
				CommonTlsContext: &tlsv3.CommonTlsContext{
					TlsCertificates: []*tlsv3.TlsCertificate{{
						CertificateChain: fileSource(o.Cert),
						PrivateKey:       fileSource(o.Key),
					}},
					ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
						TrustedCa: fileSource(o.CACert),
						MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{{
							SanType: tlsv3.SubjectAltNameMatcher_DNS,
							Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: o.ServerName}},
						}},
					}},
				},
			})},
		}
	}
	ads := &corev3.ConfigSource{
		ResourceApiVersion:    corev3.ApiVersion_V3,
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
	}
	return &bootstrapv3.Bootstrap{
		Node: &corev3.Node{Id: o.NodeID, Cluster: o.NodeCluster},
		Admin: &bootstrapv3.Admin{
			Address: socketAddress(adminHost, adminPort),
		},
		DynamicResources: &bootstrapv3.Bootstrap_DynamicResources{
			AdsConfig: &corev3.ApiConfigSource{
				ApiType:                   apiType,
				TransportApiVersion:       corev3.ApiVersion_V3,
				SetNodeOnFirstMessageOnly: true,
				GrpcServices: []*corev3.GrpcService{{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{
					EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: xdsClusterName},
				}}},
			},
			LdsConfig: ads,
			CdsConfig: ads,
		},
		StaticResources: &bootstrapv3.Bootstrap_StaticResources{Clusters: []*clusterv3.Cluster{xds}},
	}, nil
}

func fileSource(path string) *corev3.DataSource {
	return &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: path}}
}

func splitAddress(what, addr string) (string, uint32, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("%s %q: %w", what, addr, err)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 {
		return "", 0, fmt.Errorf("%s %q: bad port", what, addr)
	}
	return host, uint32(n), nil
}

// bootstrapHeader heads a written bootstrap file.
const bootstrapHeader = `# Envoy bootstrap: every listener, route, cluster and endpoint comes from the
# gavel route emitter over ADS, with mutual TLS from ` + "`gavel certs`" + `.
# Generated by routeemitter.WriteBootstrap; start Envoy with
#   envoy -c <this file>
`

// BootstrapYAML renders the bootstrap as YAML.
func BootstrapYAML(o BootstrapOptions) ([]byte, error) {
	b, err := Bootstrap(o)
	if err != nil {
		return nil, err
	}
	if err := b.Validate(); err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	j, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	y, err := yaml.JSONToYAML(j)
	if err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	return append([]byte(bootstrapHeader), y...), nil
}

// WriteBootstrap writes a bootstrap for an Envoy using the emitter at
// o.RouteEmitterAddress to path (gavel dev writes one into its data dir).
func WriteBootstrap(path string, o BootstrapOptions) error {
	y, err := BootstrapYAML(o)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write bootstrap: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, y, 0o644); err != nil {
		return fmt.Errorf("write bootstrap: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write bootstrap: %w", err)
	}
	return nil
}

// EnvoyCommand is the command line that starts Envoy with a bootstrap.
func EnvoyCommand(bootstrapPath string) string { return "envoy -c " + bootstrapPath }
