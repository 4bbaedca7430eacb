package routeemitter

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"

	"github.com/gavel-scheduler/gavel/internal/tlsutil"
)

func parseBootstrap(t *testing.T, data []byte) *bootstrapv3.Bootstrap {
	t.Helper()
	j, err := yaml.YAMLToJSON(data)
	if err != nil {
		t.Fatal(err)
	}
	var b bootstrapv3.Bootstrap
	if err := protojson.Unmarshal(j, &b); err != nil {
		t.Fatalf("bootstrap does not parse as an Envoy bootstrap: %v", err)
	}
	if err := b.ValidateAll(); err != nil {
		t.Fatalf("bootstrap fails Envoy's validation: %v", err)
	}
	return &b
}

// The shipped manifests/envoy/bootstrap.yaml is what WriteBootstrap makes
// with the defaults, and is a valid Envoy bootstrap pointing at the
// emitter's default address over ADS with mutual TLS.
func TestShippedBootstrap(t *testing.T) {
	shipped, err := os.ReadFile("../manifests/envoy/bootstrap.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want, err := BootstrapYAML(DefaultBootstrapOptions())
	if err != nil {
		t.Fatal(err)
	}
	if string(shipped) != string(want) {
		t.Fatalf("manifests/envoy/bootstrap.yaml is out of date; regenerate it with BootstrapYAML(DefaultBootstrapOptions()):\n%s", want)
	}
	b := parseBootstrap(t, shipped)
	ads := b.GetDynamicResources().GetAdsConfig()
	if ads.GetApiType() != corev3.ApiConfigSource_GRPC || ads.GetGrpcServices()[0].GetEnvoyGrpc().GetClusterName() != xdsClusterName {
		t.Fatalf("ads config %v", ads)
	}
	if b.GetDynamicResources().GetLdsConfig().GetAds() == nil || b.GetDynamicResources().GetCdsConfig().GetAds() == nil {
		t.Fatal("listeners and clusters must come over ADS")
	}
	xds := b.GetStaticResources().GetClusters()[0]
	sa := xds.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
	if sa.GetAddress() != "127.0.0.1" || sa.GetPortValue() != 9018 {
		t.Fatalf("xds cluster points at %v", sa)
	}
	var tc tlsv3.UpstreamTlsContext
	if err := xds.GetTransportSocket().GetTypedConfig().UnmarshalTo(&tc); err != nil {
		t.Fatal(err)
	}
	if tc.GetCommonTlsContext().GetTlsCertificates()[0].GetCertificateChain().GetFilename() != "/etc/gavel/certs/client.crt" ||
		tc.GetCommonTlsContext().GetValidationContext().GetTrustedCa().GetFilename() != "/etc/gavel/certs/ca.crt" {
		t.Fatalf("tls %v", &tc)
	}
}

// WriteBootstrap with the files of `gavel certs`: the name Envoy checks is
// in the route emitter's certificate, and the files it names exist.
func TestWriteBootstrapMatchesGavelCerts(t *testing.T) {
	dir := t.TempDir()
	certs, err := tlsutil.WriteDir(filepath.Join(dir, "certs"), tlsutil.DefaultHosts())
	if err != nil {
		t.Fatal(err)
	}
	client := certs.Components["client"]
	path := filepath.Join(dir, "envoy", "bootstrap.yaml")
	if err := WriteBootstrap(path, BootstrapOptions{RouteEmitterAddress: "127.0.0.1:19018", CACert: certs.CACert,
		Cert: client.Cert, Key: client.Key, Delta: true}); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b := parseBootstrap(t, data)
	if b.GetDynamicResources().GetAdsConfig().GetApiType() != corev3.ApiConfigSource_DELTA_GRPC {
		t.Fatal("delta not selected")
	}
	var tc tlsv3.UpstreamTlsContext
	if err := b.GetStaticResources().GetClusters()[0].GetTransportSocket().GetTypedConfig().UnmarshalTo(&tc); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{tc.GetCommonTlsContext().GetTlsCertificates()[0].GetCertificateChain().GetFilename(),
		tc.GetCommonTlsContext().GetTlsCertificates()[0].GetPrivateKey().GetFilename(),
		tc.GetCommonTlsContext().GetValidationContext().GetTrustedCa().GetFilename()} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("bootstrap names %s: %v", f, err)
		}
	}
	san := tc.GetCommonTlsContext().GetValidationContext().GetMatchTypedSubjectAltNames()[0].GetMatcher().GetExact()
	pemBytes, err := os.ReadFile(certs.Components["route-emitter"].Cert)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(pemBytes)
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(cert.DNSNames, san) {
		t.Fatalf("Envoy checks for %q, the route emitter's certificate names %v", san, cert.DNSNames)
	}
	if !strings.HasPrefix(EnvoyCommand(path), "envoy -c ") {
		t.Fatal(EnvoyCommand(path))
	}
}

func TestBootstrapRefusesBadInput(t *testing.T) {
	if _, err := BootstrapYAML(BootstrapOptions{RouteEmitterAddress: "nope"}); err == nil || !strings.Contains(err.Error(), "route emitter address") {
		t.Errorf("bad address: %v", err)
	}
	if _, err := BootstrapYAML(BootstrapOptions{RouteEmitterAddress: "127.0.0.1:1", CACert: "ca.crt"}); err == nil || !strings.Contains(err.Error(), "together") {
		t.Errorf("half tls: %v", err)
	}
	// Plaintext for an --insecure emitter.
	y, err := BootstrapYAML(BootstrapOptions{RouteEmitterAddress: "127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	if b := parseBootstrap(t, y); b.GetStaticResources().GetClusters()[0].GetTransportSocket() != nil {
		t.Fatal("plaintext bootstrap has a transport socket")
	}
}
