package tlsutil

import (
	"strings"
	"testing"
)

func TestFiles(t *testing.T) {
	paths, err := WriteDir(t.TempDir(), DefaultHosts())
	if err != nil {
		t.Fatal(err)
	}
	rep := paths.Components["rep"]
	good := Files{CACert: paths.CACert, Cert: rep.Cert, Key: rep.Key}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	server, client, err := good.Configs()
	if err != nil || server == nil || client == nil || len(client.Certificates) != 1 {
		t.Fatalf("configs %v %v %v", server, client, err)
	}
	if c, err := good.Client(); err != nil || c == nil {
		t.Fatalf("client %v %v", c, err)
	}
	for _, tc := range []struct {
		f    Files
		want string
	}{
		{Files{Cert: rep.Cert, Key: rep.Key}, "ca_cert"},
		{Files{CACert: paths.CACert, Key: rep.Key}, "cert"},
		{Files{CACert: paths.CACert, Cert: rep.Cert}, "key"},
	} {
		if err := tc.f.Validate(); err == nil || !strings.HasPrefix(err.Error(), tc.want+":") {
			t.Errorf("%+v: %v, want %s named", tc.f, err, tc.want)
		}
	}
	insecure := Files{Insecure: true}
	if err := insecure.Validate(); err != nil {
		t.Fatal(err)
	}
	if s, c, err := insecure.Configs(); s != nil || c != nil || err != nil {
		t.Fatalf("insecure configs %v %v %v", s, c, err)
	}
	bad := Files{CACert: paths.CACert, Cert: rep.Cert, Key: paths.CACert}
	if _, _, err := bad.Configs(); err == nil {
		t.Fatal("a CA certificate as the key was accepted")
	}
}
