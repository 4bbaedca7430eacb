package clientconfig

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// testCA is a throwaway certificate authority for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "gavel test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue signs a leaf certificate for 127.0.0.1 with the given usage and
// returns its PEM certificate and key.
func (ca *testCA) issue(t *testing.T, serial int64, usage x509.ExtKeyUsage) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: "gavel test leaf"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:     []string{"bbs.gavel.test"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
}

// startHealthServer serves the gRPC health service on 127.0.0.1 with the
// given credentials (nil for plaintext) and returns its address.
func startHealthServer(t *testing.T, creds credentials.TransportCredentials) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var opts []grpc.ServerOption
	if creds != nil {
		opts = append(opts, grpc.Creds(creds))
	}
	srv := grpc.NewServer(opts...)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

func writeFile(t *testing.T, dir, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func healthCheck(t *testing.T, c *Config) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := c.Dial(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		return err
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health status = %v, want SERVING", resp.GetStatus())
	}
	return nil
}

func TestDialMutualTLS(t *testing.T) {
	ca := newTestCA(t)
	serverCert, serverKey := ca.issue(t, 2, x509.ExtKeyUsageServerAuth)
	pair, err := tls.X509KeyPair(serverCert, serverKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	addr := startHealthServer(t, credentials.NewTLS(&tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{pair},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
	}))

	// The config is loaded from a file with relative paths, as `gavel dev`
	// writes it.
	dir := t.TempDir()
	clientCert, clientKey := ca.issue(t, 3, x509.ExtKeyUsageClientAuth)
	writeFile(t, dir, "ca.crt", ca.pem)
	writeFile(t, dir, "client.crt", clientCert)
	writeFile(t, dir, "client.key", clientKey)
	rogue := newTestCA(t)
	rogueCert, rogueKey := rogue.issue(t, 4, x509.ExtKeyUsageClientAuth)
	writeFile(t, dir, "rogue.crt", rogueCert)
	writeFile(t, dir, "rogue.key", rogueKey)
	writeFile(t, dir, "rogue-ca.crt", rogue.pem)

	tests := []struct {
		name    string
		cfg     Config
		wantErr bool
	}{
		{name: "trusted client cert", cfg: Config{BBSAddress: addr, CACert: "ca.crt", ClientCert: "client.crt", ClientKey: "client.key"}},
		{name: "server name override", cfg: Config{BBSAddress: addr, CACert: "ca.crt", ClientCert: "client.crt", ClientKey: "client.key", ServerName: "bbs.gavel.test"}},
		{name: "client cert from another CA is refused", cfg: Config{BBSAddress: addr, CACert: "ca.crt", ClientCert: "rogue.crt", ClientKey: "rogue.key"}, wantErr: true},
		{name: "server from an untrusted CA is refused", cfg: Config{BBSAddress: addr, CACert: "rogue-ca.crt", ClientCert: "client.crt", ClientKey: "client.key"}, wantErr: true},
		{name: "plaintext to a TLS server fails", cfg: Config{BBSAddress: addr, Insecure: true}, wantErr: true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, "client"+string(rune('a'+i))+".json")
			if err := Write(path, &tt.cfg); err != nil {
				t.Fatal(err)
			}
			c, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			err = healthCheck(t, c)
			if tt.wantErr && err == nil {
				t.Fatal("health check succeeded, want failure")
			}
			if !tt.wantErr && err != nil {
				t.Fatalf("health check: %v", err)
			}
		})
	}
}

func TestDialInsecure(t *testing.T) {
	addr := startHealthServer(t, nil)
	if err := healthCheck(t, &Config{BBSAddress: addr, Insecure: true}); err != nil {
		t.Fatalf("health check: %v", err)
	}
}

func TestDialBadKeyMaterialNamesKey(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "ca.crt", []byte("not a certificate"))
	c := &Config{BBSAddress: "127.0.0.1:1", CACert: filepath.Join(dir, "ca.crt"), ClientCert: "x", ClientKey: "y"}
	_, err := c.Dial(context.Background())
	if err == nil || !strings.HasPrefix(err.Error(), "ca_cert") {
		t.Fatalf("Dial() err = %v, want one naming ca_cert", err)
	}
}

func TestTLSConfigMinVersion(t *testing.T) {
	ca := newTestCA(t)
	dir := t.TempDir()
	cert, key := ca.issue(t, 5, x509.ExtKeyUsageClientAuth)
	writeFile(t, dir, "ca.crt", ca.pem)
	writeFile(t, dir, "c.crt", cert)
	writeFile(t, dir, "c.key", key)
	c := &Config{BBSAddress: "127.0.0.1:1", CACert: filepath.Join(dir, "ca.crt"), ClientCert: filepath.Join(dir, "c.crt"), ClientKey: filepath.Join(dir, "c.key")}
	tc, err := c.TLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	if tc.MinVersion < tls.VersionTLS12 {
		t.Errorf("MinVersion = %x, want at least TLS 1.2", tc.MinVersion)
	}
}
