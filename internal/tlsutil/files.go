package tlsutil

import (
	"crypto/tls"
	"fmt"

	"github.com/spf13/pflag"
)

// Files are the mutual-TLS keys of a daemon that serves gRPC and dials
// its peers: the CA every peer is signed by, and the daemon's own
// certificate, served and presented when it dials (certificates from
// WriteDir are valid both ways). Embed it in a component's config: its
// keys sit at the top level of the file.
type Files struct {
	CACert string `json:"ca_cert"`
	Cert   string `json:"cert"`
	Key    string `json:"key"`
	// Insecure serves and dials plaintext gRPC: only for experiments,
	// anyone who reaches the port can talk to the daemon.
	Insecure bool `json:"insecure"`
}

// Validate names the first missing key.
func (f Files) Validate() error {
	if f.Insecure {
		return nil
	}
	for _, kv := range [][2]string{{"ca_cert", f.CACert}, {"cert", f.Cert}, {"key", f.Key}} {
		if kv[1] == "" {
			return fmt.Errorf("%s: required unless insecure is set", kv[0])
		}
	}
	return nil
}

// Configs loads the files as a server and a client configuration; both
// are nil when Insecure is set.
func (f Files) Configs() (server, client *tls.Config, err error) {
	if f.Insecure {
		return nil, nil, nil
	}
	if server, err = ServerConfig(f.CACert, f.Cert, f.Key); err != nil {
		return nil, nil, fmt.Errorf("tls: %w", err)
	}
	if client, err = ClientConfig(f.CACert, f.Cert, f.Key, ""); err != nil {
		return nil, nil, fmt.Errorf("client tls: %w", err)
	}
	return server, client, nil
}

// Flags binds the keys to flags of the same names; what names the role of
// the certificate in the help text.
func (f *Files) Flags(fs *pflag.FlagSet, what string) {
	fs.StringVar(&f.CACert, "ca-cert", f.CACert, "CA certificate")
	fs.StringVar(&f.Cert, "cert", f.Cert, "certificate ("+what+")")
	fs.StringVar(&f.Key, "key", f.Key, "key of the certificate")
	fs.BoolVar(&f.Insecure, "insecure", f.Insecure, "plaintext gRPC (no TLS, no client authentication)")
}

// Client loads the files as a client configuration only (for a daemon
// that serves nothing); nil when Insecure is set.
func (f Files) Client() (*tls.Config, error) {
	if f.Insecure {
		return nil, nil
	}
	c, err := ClientConfig(f.CACert, f.Cert, f.Key, "")
	if err != nil {
		return nil, fmt.Errorf("client tls: %w", err)
	}
	return c, nil
}
