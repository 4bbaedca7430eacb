package clientconfig

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// TLSConfig builds the client side of mutual TLS from the configured files:
// the CA pool that must sign the BBS certificate and the client certificate
// the BBS checks. It refuses anything below TLS 1.2.
func (c *Config) TLSConfig() (*tls.Config, error) {
	caPEM, err := os.ReadFile(c.CACert)
	if err != nil {
		return nil, fmt.Errorf("ca_cert: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("ca_cert: no PEM certificate in %s", c.CACert)
	}
	cert, err := tls.LoadX509KeyPair(c.ClientCert, c.ClientKey)
	if err != nil {
		return nil, fmt.Errorf("client_cert/client_key: %w", err)
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		RootCAs:      pool,
		Certificates: []tls.Certificate{cert},
		ServerName:   c.ServerName,
	}, nil
}

// Dial returns a gRPC connection to the BBS: mutual TLS from the configured
// files, or plaintext when Insecure is set. Extra options (interceptors,
// keepalive) are applied after the credentials.
//
// The connection is made lazily by grpc.NewClient, so an unreachable BBS shows
// up as an Unavailable error on the first call rather than here; ctx only
// lets a caller that is already cancelled skip reading the key material.
func (c *Config) Dial(ctx context.Context, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	var creds credentials.TransportCredentials
	if c.Insecure {
		creds = insecure.NewCredentials()
	} else {
		tlsConf, err := c.TLSConfig()
		if err != nil {
			return nil, err
		}
		creds = credentials.NewTLS(tlsConf)
	}
	all := append([]grpc.DialOption{grpc.WithTransportCredentials(creds)}, opts...)
	conn, err := grpc.NewClient(c.BBSAddress, all...)
	if err != nil {
		return nil, fmt.Errorf("dial BBS at %s: %w", c.BBSAddress, err)
	}
	return conn, nil
}
