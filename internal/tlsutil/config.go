package tlsutil

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// minVersion is TLS 1.2: the oldest version without known protocol breaks,
// and the floor etcd and Envoy also default to.
const minVersion = tls.VersionTLS12

// ServerConfig builds a server-side mutual-TLS config from PEM files: the
// server presents certFile/keyFile and refuses any client that does not
// present a certificate signed by the CA in caFile.
func ServerConfig(caFile, certFile, keyFile string) (*tls.Config, error) {
	caPEM, certPEM, keyPEM, err := readTriple(caFile, certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("server TLS config: %w", err)
	}
	cfg, err := ServerConfigPEM(caPEM, certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("server TLS config from %s, %s, %s: %w", caFile, certFile, keyFile, err)
	}
	return cfg, nil
}

// ServerConfigPEM is ServerConfig from in-memory PEM bytes.
func ServerConfigPEM(caPEM, certPEM, keyPEM []byte) (*tls.Config, error) {
	pool, cert, err := parseTriple(caPEM, certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:   minVersion,
		Certificates: []tls.Certificate{cert},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
	}, nil
}

// ClientConfig builds a client-side mutual-TLS config from PEM files: the
// client presents certFile/keyFile and trusts only servers whose
// certificate chains to caFile. serverName is the name the server's
// certificate must carry; when empty, the dialer (crypto/tls or gRPC's
// credentials) fills it in from the address being dialled.
func ClientConfig(caFile, certFile, keyFile, serverName string) (*tls.Config, error) {
	caPEM, certPEM, keyPEM, err := readTriple(caFile, certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("client TLS config: %w", err)
	}
	cfg, err := ClientConfigPEM(caPEM, certPEM, keyPEM, serverName)
	if err != nil {
		return nil, fmt.Errorf("client TLS config from %s, %s, %s: %w", caFile, certFile, keyFile, err)
	}
	return cfg, nil
}

// ClientConfigPEM is ClientConfig from in-memory PEM bytes.
func ClientConfigPEM(caPEM, certPEM, keyPEM []byte, serverName string) (*tls.Config, error) {
	pool, cert, err := parseTriple(caPEM, certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:   minVersion,
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
		ServerName:   serverName,
	}, nil
}

func readTriple(caFile, certFile, keyFile string) (caPEM, certPEM, keyPEM []byte, err error) {
	if caPEM, err = os.ReadFile(caFile); err != nil {
		return nil, nil, nil, err
	}
	if certPEM, err = os.ReadFile(certFile); err != nil {
		return nil, nil, nil, err
	}
	if keyPEM, err = os.ReadFile(keyFile); err != nil {
		return nil, nil, nil, err
	}
	return caPEM, certPEM, keyPEM, nil
}

func parseTriple(caPEM, certPEM, keyPEM []byte) (*x509.CertPool, tls.Certificate, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, tls.Certificate{}, errors.New("no CA certificate found in CA PEM")
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, tls.Certificate{}, fmt.Errorf("load key pair: %w", err)
	}
	return pool, cert, nil
}
