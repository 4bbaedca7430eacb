package tlsutil

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// handshake runs one mutual-TLS exchange over a 127.0.0.1 listener and
// returns the client's and the server's handshake errors.
func handshake(t *testing.T, serverCfg, clientCfg *tls.Config) (clientErr, serverErr error) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", serverCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()

	serverDone := make(chan error, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			serverDone <- err
			return
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		if err := conn.(*tls.Conn).Handshake(); err != nil {
			serverDone <- err
			return
		}
		// Echo one byte so the client sees a failure the server raised
		// after the client's half of the handshake completed (TLS 1.3
		// verifies the client certificate after the client finishes).
		buf := make([]byte, 1)
		if _, err := io.ReadFull(conn, buf); err != nil {
			serverDone <- err
			return
		}
		_, err = conn.Write(buf)
		serverDone <- err
	}()

	dialer := &net.Dialer{Timeout: 10 * time.Second}
	conn, err := tls.DialWithDialer(dialer, "tcp", ln.Addr().String(), clientCfg)
	if err == nil {
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err = conn.Write([]byte{'x'}); err == nil {
			_, err = io.ReadFull(conn, make([]byte, 1))
		}
		conn.Close()
	}
	return err, <-serverDone
}

func errContains(err error, substr string) bool {
	return err != nil && strings.Contains(err.Error(), substr)
}

func issue(t *testing.T, ca *CA, name string, usage Usage) (certPEM, keyPEM []byte) {
	t.Helper()
	certPEM, keyPEM, err := ca.Issue(name, []string{"127.0.0.1", "localhost"}, usage, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return certPEM, keyPEM
}

func TestMutualTLSHandshake(t *testing.T) {
	ca, err := GenerateCA("test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	other, err := GenerateCA("other CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	srvCert, srvKey := issue(t, ca, "bbs", Server)
	cliCert, cliKey := issue(t, ca, "rep", Client)
	bothCert, bothKey := issue(t, ca, "auctioneer", ServerAndClient)
	foreignCert, foreignKey := issue(t, other, "rogue", ServerAndClient)
	serverOnlyCert, serverOnlyKey := issue(t, ca, "not-a-client", Server)

	serverCfg, err := ServerConfigPEM(ca.CertPEM, srvCert, srvKey)
	if err != nil {
		t.Fatal(err)
	}
	client := func(certPEM, keyPEM []byte, serverName string) *tls.Config {
		t.Helper()
		cfg, err := ClientConfigPEM(ca.CertPEM, certPEM, keyPEM, serverName)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	noCert := &tls.Config{RootCAs: client(cliCert, cliKey, "").RootCAs, ServerName: "127.0.0.1"}
	// crypto/tls withholds a client certificate whose issuer the server
	// did not list as acceptable, which would turn the foreign-CA case into
	// a "no certificate" case. Force it out so the server's verification
	// is what refuses it.
	foreignClient := client(foreignCert, foreignKey, "127.0.0.1")
	foreignClient.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		return &foreignClient.Certificates[0], nil
	}

	foreignServer, err := ServerConfigPEM(ca.CertPEM, foreignCert, foreignKey)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		server *tls.Config
		client *tls.Config
		// wantErr is part of the refusal, on either side, naming why.
		wantErr string
	}{
		{"client cert", serverCfg, client(cliCert, cliKey, "127.0.0.1"), ""},
		{"server-and-client cert", serverCfg, client(bothCert, bothKey, "localhost"), ""},
		{"no client cert", serverCfg, noCert, "didn't provide a certificate"},
		{"client cert from another CA", serverCfg, foreignClient, "unknown authority"},
		{"server-only cert used as client", serverCfg, client(serverOnlyCert, serverOnlyKey, "127.0.0.1"), "incompatible key usage"},
		{"server cert from another CA", foreignServer, client(cliCert, cliKey, "127.0.0.1"), "unknown authority"},
		{"server name not in SANs", serverCfg, client(cliCert, cliKey, "bbs.example.com"), "not bbs.example.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clientErr, serverErr := handshake(t, tt.server, tt.client)
			if tt.wantErr != "" {
				if !errContains(clientErr, tt.wantErr) && !errContains(serverErr, tt.wantErr) {
					t.Fatalf("client: %v, server: %v; want a refusal containing %q", clientErr, serverErr, tt.wantErr)
				}
				return
			}
			if clientErr != nil || serverErr != nil {
				t.Fatalf("handshake failed: client: %v, server: %v", clientErr, serverErr)
			}
		})
	}
}

func TestConfigsRequireTLS12AndClientCerts(t *testing.T) {
	ca, err := GenerateCA("test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM := issue(t, ca, "bbs", ServerAndClient)
	srv, err := ServerConfigPEM(ca.CertPEM, certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if srv.MinVersion != tls.VersionTLS12 || srv.ClientAuth != tls.RequireAndVerifyClientCert {
		t.Fatalf("server config: min version %x, client auth %v", srv.MinVersion, srv.ClientAuth)
	}
	cli, err := ClientConfigPEM(ca.CertPEM, certPEM, keyPEM, "bbs")
	if err != nil {
		t.Fatal(err)
	}
	if cli.MinVersion != tls.VersionTLS12 || cli.ServerName != "bbs" || cli.InsecureSkipVerify {
		t.Fatalf("client config: min version %x, server name %q, insecure %v", cli.MinVersion, cli.ServerName, cli.InsecureSkipVerify)
	}
	if _, err := ServerConfigPEM([]byte("junk"), certPEM, keyPEM); err == nil {
		t.Fatal("ServerConfigPEM accepted a CA PEM without certificates")
	}
	if _, err := ClientConfigPEM(ca.CertPEM, certPEM, ca.KeyPEM, ""); err == nil {
		t.Fatal("ClientConfigPEM accepted a key that does not match the certificate")
	}
}

func TestIssuedCertificateFields(t *testing.T) {
	ca, err := GenerateCA("test CA", 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !ca.Cert.IsCA || ca.Cert.KeyUsage&x509.KeyUsageCertSign == 0 || !ca.Cert.MaxPathLenZero {
		t.Fatalf("CA certificate: IsCA %v, key usage %v, MaxPathLenZero %v", ca.Cert.IsCA, ca.Cert.KeyUsage, ca.Cert.MaxPathLenZero)
	}
	certPEM, _, err := ca.Issue("rep", []string{"10.0.0.7", "cell-1.internal"}, Client, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := parseCertificatePEM(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	if cert.Subject.CommonName != "rep" {
		t.Errorf("common name %q", cert.Subject.CommonName)
	}
	if len(cert.IPAddresses) != 1 || !cert.IPAddresses[0].Equal(net.ParseIP("10.0.0.7")) {
		t.Errorf("IP SANs %v", cert.IPAddresses)
	}
	if !slices.Equal(cert.DNSNames, []string{"cell-1.internal"}) {
		t.Errorf("DNS SANs %v", cert.DNSNames)
	}
	if !slices.Equal(cert.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) {
		t.Errorf("ext key usage %v", cert.ExtKeyUsage)
	}
	if cert.IsCA {
		t.Error("leaf is a CA")
	}
	// The leaf asked for a day but the CA lives two hours: clamped.
	if cert.NotAfter.After(ca.Cert.NotAfter) {
		t.Errorf("leaf expires %v, after its CA %v", cert.NotAfter, ca.Cert.NotAfter)
	}
	if !bytes.Equal(cert.AuthorityKeyId, ca.Cert.SubjectKeyId) || len(cert.AuthorityKeyId) == 0 {
		t.Errorf("authority key id %x, CA subject key id %x", cert.AuthorityKeyId, ca.Cert.SubjectKeyId)
	}

	again, _, err := ca.Issue("rep", nil, Client, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	second, err := parseCertificatePEM(again)
	if err != nil {
		t.Fatal(err)
	}
	if second.SerialNumber.Cmp(cert.SerialNumber) == 0 {
		t.Error("two certificates share a serial number")
	}

	if _, _, err := ca.Issue("x", nil, Usage(42), time.Hour); err == nil {
		t.Error("Issue accepted an unknown usage")
	}
	if _, _, err := ca.Issue("x", nil, Server, 0); err == nil {
		t.Error("Issue accepted a zero validity")
	}
}

func TestLoadCA(t *testing.T) {
	ca, err := GenerateCA("test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	other, err := GenerateCA("other CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	certFile, keyFile := write("ca.crt", ca.CertPEM), write("ca.key", ca.KeyPEM)
	otherKey := write("other.key", other.KeyPEM)

	loaded, err := LoadCA(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if !loaded.Cert.Equal(ca.Cert) {
		t.Fatal("loaded CA certificate differs")
	}
	// A loaded CA must still be able to sign.
	if _, _, err := loaded.Issue("bbs", nil, Server, time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCA(certFile, otherKey); err == nil {
		t.Fatal("LoadCA accepted a key from another CA")
	}
	leafCert, leafKey := issue(t, ca, "bbs", Server)
	if _, err := LoadCA(write("leaf.crt", leafCert), write("leaf.key", leafKey)); err == nil {
		t.Fatal("LoadCA accepted a leaf certificate")
	}
	if _, err := LoadCA(filepath.Join(dir, "missing.crt"), keyFile); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("LoadCA of a missing file: %v", err)
	}
}

func TestWriteDirIdempotent(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	paths, err := WriteDir(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if paths.Dir != dir || len(paths.Components) != len(Components()) {
		t.Fatalf("paths %+v", paths)
	}
	caBefore := readFile(t, paths.CACert)
	repBefore := readFile(t, paths.Components["rep"].Cert)

	for _, p := range []string{paths.CAKey, paths.Components["bbs"].Key} {
		info, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if perm := info.Mode().Perm(); perm != 0o600 {
			t.Errorf("%s has mode %v, want 0600", p, perm)
		}
	}

	// Reissue one component, as an operator would after deleting it.
	if err := os.Remove(paths.Components["garden"].Cert); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(paths.Components["garden"].Key); err != nil {
		t.Fatal(err)
	}
	again, err := WriteDir(dir, []string{"10.1.2.3"})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readFile(t, again.CACert), caBefore) {
		t.Fatal("second WriteDir replaced the CA")
	}
	if !bytes.Equal(readFile(t, again.Components["rep"].Cert), repBefore) {
		t.Fatal("second WriteDir replaced an existing certificate")
	}
	garden, err := parseCertificatePEM(readFile(t, again.Components["garden"].Cert))
	if err != nil {
		t.Fatal(err)
	}
	if len(garden.IPAddresses) != 1 || !garden.IPAddresses[0].Equal(net.ParseIP("10.1.2.3")) {
		t.Fatalf("reissued garden certificate has IP SANs %v", garden.IPAddresses)
	}

	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := 2 + 2*len(Components()); len(entries) != want {
		t.Fatalf("%d files in %s, want %d (temporary files left behind?)", len(entries), dir, want)
	}
}

func TestWriteDirCertificatesInteroperate(t *testing.T) {
	paths, err := WriteDir(t.TempDir(), nil, WithValidity(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	bbs, rep := paths.Components["bbs"], paths.Components["rep"]
	serverCfg, err := ServerConfig(paths.CACert, bbs.Cert, bbs.Key)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"127.0.0.1", "localhost", "bbs"} {
		clientCfg, err := ClientConfig(paths.CACert, rep.Cert, rep.Key, name)
		if err != nil {
			t.Fatal(err)
		}
		if clientErr, serverErr := handshake(t, serverCfg, clientCfg); clientErr != nil || serverErr != nil {
			t.Fatalf("server name %q: client: %v, server: %v", name, clientErr, serverErr)
		}
	}
	// The component name is a SAN, so a client pinning "rep" refuses the
	// BBS certificate.
	clientCfg, err := ClientConfig(paths.CACert, rep.Cert, rep.Key, "rep")
	if err != nil {
		t.Fatal(err)
	}
	if clientErr, _ := handshake(t, serverCfg, clientCfg); clientErr == nil {
		t.Fatal("client pinned to rep accepted the bbs certificate")
	}
}

func TestWriteDirRefusesBrokenState(t *testing.T) {
	t.Run("half a CA", func(t *testing.T) {
		dir := t.TempDir()
		paths, err := WriteDir(dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(paths.CACert); err != nil {
			t.Fatal(err)
		}
		if _, err := WriteDir(dir, nil); err == nil {
			t.Fatal("WriteDir accepted a CA key without its certificate")
		}
	})
	t.Run("certificate from a replaced CA", func(t *testing.T) {
		dir := t.TempDir()
		paths, err := WriteDir(dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{paths.CACert, paths.CAKey} {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := WriteDir(dir, nil); err == nil {
			t.Fatal("WriteDir kept certificates signed by a CA that is gone")
		}
	})
	t.Run("bad options", func(t *testing.T) {
		if _, err := WriteDir(t.TempDir(), nil, WithValidity(-time.Hour)); err == nil {
			t.Fatal("WriteDir accepted a negative validity")
		}
		if _, err := WriteDir(t.TempDir(), []string{"127.0.0.1", " "}); err == nil {
			t.Fatal("WriteDir accepted an empty host")
		}
	})
}

func TestPathsFor(t *testing.T) {
	p := PathsFor("/etc/gavel/certs")
	if p.CACert != "/etc/gavel/certs/ca.crt" || p.CAKey != "/etc/gavel/certs/ca.key" {
		t.Fatalf("CA paths %q %q", p.CACert, p.CAKey)
	}
	want := ComponentPaths{Cert: "/etc/gavel/certs/route-emitter.crt", Key: "/etc/gavel/certs/route-emitter.key"}
	if got := p.Components["route-emitter"]; got != want {
		t.Fatalf("route-emitter paths %+v, want %+v", got, want)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
