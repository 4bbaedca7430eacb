package clientconfig

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	tls := Config{BBSAddress: "127.0.0.1:8889", CACert: "ca.crt", ClientCert: "c.crt", ClientKey: "c.key"}
	tests := []struct {
		name    string
		mutate  func(c *Config)
		wantErr []string // substrings, each naming a key; empty means valid
	}{
		{name: "mtls ok", mutate: func(c *Config) {}},
		{name: "insecure ok", mutate: func(c *Config) { *c = Config{BBSAddress: "localhost:8889", Insecure: true} }},
		{name: "server name ok", mutate: func(c *Config) { c.ServerName = "bbs.service.gavel" }},
		{name: "missing address", mutate: func(c *Config) { c.BBSAddress = "" }, wantErr: []string{"bbs_address: required"}},
		{name: "address without port", mutate: func(c *Config) { c.BBSAddress = "bbs.local" }, wantErr: []string{"bbs_address:"}},
		{name: "address without host", mutate: func(c *Config) { c.BBSAddress = ":8889" }, wantErr: []string{"bbs_address:"}},
		{name: "missing ca", mutate: func(c *Config) { c.CACert = "" }, wantErr: []string{"ca_cert: required"}},
		{
			name:    "missing client pair",
			mutate:  func(c *Config) { c.ClientCert, c.ClientKey = "", "" },
			wantErr: []string{"client_cert: required", "client_key: required"},
		},
		{name: "insecure with certs", mutate: func(c *Config) { c.Insecure = true }, wantErr: []string{"ca_cert: set together with insecure", "client_cert:", "client_key:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tls
			tt.mutate(&c)
			err := c.Validate()
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want errors %q", tt.wantErr)
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Validate() = %q, missing %q", err, want)
				}
			}
		})
	}
}

func TestDefaultPath(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_DATA_HOME", filepath.Join(home, "xdg")) // ignored on purpose: one rule
	if got, want := DefaultDataDir(), filepath.Join(home, ".gavel", "dev"); got != want {
		t.Errorf("DefaultDataDir() = %q, want %q", got, want)
	}
	if got, want := DefaultPath(), filepath.Join(home, ".gavel", "dev", "client.json"); got != want {
		t.Errorf("DefaultPath() = %q, want %q", got, want)
	}
}

func TestResolvePrecedence(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	write := func(path, addr string) string {
		t.Helper()
		if err := Write(path, &Config{BBSAddress: addr, Insecure: true}); err != nil {
			t.Fatal(err)
		}
		return path
	}
	flagFile := write(filepath.Join(home, "flag", "client.json"), "flag:1")
	envFile := write(filepath.Join(home, "env", "client.json"), "env:1")
	defaultFile := filepath.Join(home, ".gavel", "dev", "client.json")
	missing := filepath.Join(home, "nope.json")

	tests := []struct {
		name        string
		flag, env   string
		haveDefault bool
		wantPath    string
		wantAddr    string
		wantErr     string
	}{
		{name: "flag wins over env and default", flag: flagFile, env: envFile, haveDefault: true, wantPath: flagFile, wantAddr: "flag:1"},
		{name: "env wins over default", env: envFile, haveDefault: true, wantPath: envFile, wantAddr: "env:1"},
		{name: "default", haveDefault: true, wantPath: defaultFile, wantAddr: "default:1"},
		{name: "missing default explains", wantPath: defaultFile, wantErr: "no client config at ~/.gavel/dev/client.json: start `gavel dev` or pass --config"},
		{name: "missing flag file names flag", flag: missing, wantPath: missing, wantErr: "(from --config)"},
		{name: "missing env file names env", env: missing, wantPath: missing, wantErr: "(from $GAVEL_CONFIG)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_ = os.Remove(defaultFile)
			if tt.haveDefault {
				write(defaultFile, "default:1")
			}
			t.Setenv(EnvConfig, tt.env)
			c, path, err := Resolve(tt.flag)
			if path != tt.wantPath {
				t.Errorf("path = %q, want %q", path, tt.wantPath)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.BBSAddress != tt.wantAddr {
				t.Errorf("BBSAddress = %q, want %q", c.BBSAddress, tt.wantAddr)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		body    string
		want    Config
		wantErr string
	}{
		{
			name: "relative paths resolve against the file's dir",
			body: `{"bbs_address":"127.0.0.1:8889","ca_cert":"certs/ca.crt","client_cert":"/abs/c.crt","client_key":"c.key"}`,
			want: Config{
				BBSAddress: "127.0.0.1:8889",
				CACert:     filepath.Join(dir, "certs", "ca.crt"),
				ClientCert: "/abs/c.crt",
				ClientKey:  filepath.Join(dir, "c.key"),
			},
		},
		{name: "unknown key refused", body: `{"bbs_address":"a:1","insecure":true,"bbs_adress":"x"}`, wantErr: `unknown field "bbs_adress"`},
		{name: "invalid value names key", body: `{"bbs_address":"a:1"}`, wantErr: "ca_cert: required"},
		{name: "trailing data refused", body: `{"bbs_address":"a:1","insecure":true} {}`, wantErr: "extra data"},
		{name: "not json", body: `bbs_address: a:1`, wantErr: "client config"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, "c"+string(rune('0'+i))+".json")
			if err := os.WriteFile(path, []byte(tt.body), 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := Load(path)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Load() err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if *c != tt.want {
				t.Errorf("Load() = %+v, want %+v", *c, tt.want)
			}
		})
	}
}

func TestWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "new", "client.json")
	in := &Config{BBSAddress: "127.0.0.1:8889", CACert: "ca.crt", ClientCert: "client.crt", ClientKey: "client.key", ServerName: "bbs"}
	if err := Write(path, in); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if mode := fi.Mode().Perm(); mode != 0o600 {
		t.Errorf("mode = %o, want 600", mode)
	}
	// Overwrite in place: the rename must replace the old file.
	in.BBSAddress = "127.0.0.1:9999"
	if err := Write(path, in); err != nil {
		t.Fatal(err)
	}
	out, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if out.BBSAddress != "127.0.0.1:9999" || out.CACert != filepath.Join(filepath.Dir(path), "ca.crt") || out.ServerName != "bbs" {
		t.Errorf("round trip = %+v", out)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("dir holds %d entries, want only client.json (temp file left behind?)", len(entries))
	}
}
