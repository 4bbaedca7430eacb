// Package etcdclient holds the etcd connection settings every gavel daemon
// shares (its config keys, flags and validation) and dials etcd with them.
package etcdclient

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/pflag"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/gavel-scheduler/gavel/internal/tlsutil"
)

// Config is embedded in a component's config; its keys sit at the top
// level of the component's file.
type Config struct {
	// EtcdEndpoints are the etcd client URLs.
	EtcdEndpoints []string `json:"etcd_endpoints"`
	// EtcdCACert, EtcdClientCert and EtcdClientKey enable TLS to etcd.
	EtcdCACert     string `json:"etcd_ca_cert"`
	EtcdClientCert string `json:"etcd_client_cert"`
	EtcdClientKey  string `json:"etcd_client_key"`
}

// Default is a local etcd.
func Default() Config { return Config{EtcdEndpoints: []string{"http://127.0.0.1:2379"}} }

// Validate names the first bad key.
func (c Config) Validate() error {
	if len(c.EtcdEndpoints) == 0 {
		return fmt.Errorf("etcd_endpoints: at least one endpoint is required")
	}
	if (c.EtcdClientCert == "") != (c.EtcdClientKey == "") {
		return fmt.Errorf("etcd_client_cert and etcd_client_key: set both or neither")
	}
	return nil
}

// Flags binds the keys to flags of the same names.
func (c *Config) Flags(fs *pflag.FlagSet) {
	fs.StringSliceVar(&c.EtcdEndpoints, "etcd-endpoints", c.EtcdEndpoints, "etcd client URLs")
	fs.StringVar(&c.EtcdCACert, "etcd-ca-cert", c.EtcdCACert, "CA certificate for TLS to etcd")
	fs.StringVar(&c.EtcdClientCert, "etcd-client-cert", c.EtcdClientCert, "client certificate for TLS to etcd")
	fs.StringVar(&c.EtcdClientKey, "etcd-client-key", c.EtcdClientKey, "client key for TLS to etcd")
}

// Dial connects to the configured endpoints.
func (c Config) Dial(ctx context.Context) (*clientv3.Client, error) {
	ecfg := clientv3.Config{
		Endpoints:   c.EtcdEndpoints,
		DialTimeout: 5 * time.Second,
		Context:     ctx,
		Logger:      zap.NewNop(),
		// Large lists (100k actual LRPs) exceed gRPC's 4 MiB default.
		MaxCallRecvMsgSize: 512 << 20,
	}
	if c.EtcdCACert != "" {
		tc, err := tlsutil.ClientConfig(c.EtcdCACert, c.EtcdClientCert, c.EtcdClientKey, "")
		if err != nil {
			return nil, fmt.Errorf("etcd tls: %w", err)
		}
		ecfg.TLS = tc
	}
	client, err := clientv3.New(ecfg)
	if err != nil {
		return nil, fmt.Errorf("connect to etcd %v: %w", c.EtcdEndpoints, err)
	}
	return client, nil
}
