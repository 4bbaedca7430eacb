// Package clientconfig owns how a gavel client finds and talks to the BBS:
// the client.json file that names the BBS address and the mutual-TLS
// material, where that file is looked for, and dialling the BBS with it.
//
// `gavel dev` writes the file into its data dir; the operator CLI and any
// other client read it back with Resolve and connect with Config.Dial.
package clientconfig

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
)

// EnvConfig is the environment variable that points at a client config file
// when no --config flag is given.
const EnvConfig = "GAVEL_CONFIG"

// FileName is the name of the client config file inside a data dir.
const FileName = "client.json"

// Config says where the BBS is and how to authenticate to it.
//
// Certificate and key paths that are relative are taken relative to the
// directory holding the config file (see Load), so a data dir can be moved
// or mounted elsewhere as a whole.
type Config struct {
	// BBSAddress is the BBS gRPC endpoint as host:port.
	BBSAddress string `json:"bbs_address"`
	// CACert is a PEM file with the CA(s) that sign the BBS server certificate.
	CACert string `json:"ca_cert"`
	// ClientCert and ClientKey are the PEM client certificate and key
	// presented to the BBS, which requires mutual TLS.
	ClientCert string `json:"client_cert"`
	ClientKey  string `json:"client_key"`
	// Insecure selects plaintext gRPC. It is refused together with
	// certificate keys so a half-edited file never silently drops TLS.
	Insecure bool `json:"insecure"`
	// ServerName overrides the name checked against the server certificate;
	// empty means the host part of BBSAddress.
	ServerName string `json:"server_name,omitempty"`
	// RouteEmitterAddress is the route emitter's read API (host:port), for
	// `gavel routes`; it uses the same CA and client certificate.
	RouteEmitterAddress string `json:"route_emitter_address,omitempty"`
}

// Validate reports every bad key, each error naming the key.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{key}, args...)...))
	}
	if c.BBSAddress == "" {
		bad("bbs_address", "required (host:port of the BBS)")
	} else if host, port, err := net.SplitHostPort(c.BBSAddress); err != nil {
		bad("bbs_address", "%q is not host:port", c.BBSAddress)
	} else if host == "" || port == "" {
		bad("bbs_address", "%q needs both a host and a port", c.BBSAddress)
	}
	if c.RouteEmitterAddress != "" {
		if host, port, err := net.SplitHostPort(c.RouteEmitterAddress); err != nil || host == "" || port == "" {
			bad("route_emitter_address", "%q is not host:port", c.RouteEmitterAddress)
		}
	}
	if c.Insecure {
		for _, kv := range [][2]string{{"ca_cert", c.CACert}, {"client_cert", c.ClientCert}, {"client_key", c.ClientKey}} {
			if kv[1] != "" {
				bad(kv[0], "set together with insecure: true; remove one of them")
			}
		}
	} else {
		for _, kv := range [][2]string{{"ca_cert", c.CACert}, {"client_cert", c.ClientCert}, {"client_key", c.ClientKey}} {
			if kv[1] == "" {
				bad(kv[0], "required unless insecure is true (the BBS uses mutual TLS)")
			}
		}
	}
	return errors.Join(errs...)
}

// DefaultDataDir is the data dir `gavel dev` uses when given none:
// $HOME/.gavel/dev. The rule is deliberately just this one (no XDG lookup) so
// the server writing client.json and every client reading it agree without
// sharing environment. If the home directory is unknown it falls back to
// .gavel/dev under the working directory.
func DefaultDataDir() string {
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		return filepath.Join(".gavel", "dev")
	}
	return filepath.Join(home, ".gavel", "dev")
}

// DefaultPath is the client config `gavel dev` writes: DefaultDataDir()/client.json.
func DefaultPath() string {
	return filepath.Join(DefaultDataDir(), FileName)
}

// Load reads the config file at path, resolves relative certificate paths
// against the file's directory and validates it. Unknown keys are refused, as
// a misspelt key would otherwise be silently ignored.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read client config: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var c Config
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("client config %s: %w", path, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("client config %s: extra data after the JSON object", path)
	}
	dir := filepath.Dir(path)
	for _, p := range []*string{&c.CACert, &c.ClientCert, &c.ClientKey} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("client config %s: %w", path, err)
	}
	return &c, nil
}

// Resolve finds and loads the client config: flagPath if not empty, else
// $GAVEL_CONFIG, else DefaultPath(). It returns the path it used so errors
// further on can point at the file to fix.
func Resolve(flagPath string) (*Config, string, error) {
	path, source := choosePath(flagPath, os.Getenv(EnvConfig))
	c, err := Load(path)
	if err == nil {
		return c, path, nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		// A missing file is the usual first-run mistake: say what to do
		// rather than print a bare ENOENT.
		if source == "default" {
			return nil, path, fmt.Errorf("no client config at %s: start `gavel dev` or pass --config", tildePath(path))
		}
		return nil, path, fmt.Errorf("no client config at %s (from %s)", path, source)
	}
	return nil, path, err
}

// choosePath applies the precedence rule; source names where the path came
// from for error messages.
func choosePath(flagPath, envPath string) (path, source string) {
	switch {
	case flagPath != "":
		return flagPath, "--config"
	case envPath != "":
		return envPath, "$" + EnvConfig
	default:
		return DefaultPath(), "default"
	}
}

// tildePath shortens a path under the home directory to ~/..., which is what
// a person recognises in a message.
func tildePath(path string) string {
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		return path
	}
	if rel, err := filepath.Rel(home, path); err == nil && rel != "." && !strings.HasPrefix(rel, "..") {
		return "~" + string(filepath.Separator) + rel
	}
	return path
}

// Write stores c at path as indented JSON with mode 0600, creating the
// directory if needed. It writes a temporary file beside path and renames it,
// so a reader never sees a half-written config.
func Write(path string, c *Config) error {
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("encode client config: %w", err)
	}
	data = append(data, '\n')
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("write client config: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write client config: %w", err)
	}
	tmpName := tmp.Name()
	ok := false
	defer func() {
		if !ok {
			_ = tmp.Close()
			_ = os.Remove(tmpName)
		}
	}()
	// CreateTemp already uses 0600; Chmod makes the mode independent of that
	// detail and of the umask.
	if err := tmp.Chmod(0o600); err != nil {
		return fmt.Errorf("write client config: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("write client config: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("write client config: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write client config: %w", err)
	}
	if err := os.Rename(tmpName, path); err != nil {
		return fmt.Errorf("write client config: %w", err)
	}
	ok = true
	return nil
}
