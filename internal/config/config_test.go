package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type sample struct {
	Name    string   `json:"name"`
	Timeout Duration `json:"timeout"`
	Ports   []int    `json:"ports"`
}

func TestLoad(t *testing.T) {
	cases := []struct {
		name, body string
		want       sample
		err        string
	}{
		{name: "yaml", body: "name: a\ntimeout: 1m30s\nports: [1, 2]\n", want: sample{Name: "a", Timeout: Duration(90 * time.Second), Ports: []int{1, 2}}},
		{name: "json", body: `{"name":"b","timeout":"10s"}`, want: sample{Name: "b", Timeout: Duration(10 * time.Second), Ports: []int{9}}},
		{name: "defaults kept", body: "name: c\n", want: sample{Name: "c", Timeout: Duration(time.Second), Ports: []int{9}}},
		{name: "unknown key", body: "nmae: a\n", err: "nmae"},
		{name: "bad duration", body: "timeout: soon\n", err: "soon"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.yaml")
			if err := os.WriteFile(path, []byte(tc.body), 0o600); err != nil {
				t.Fatal(err)
			}
			got := sample{Timeout: Duration(time.Second), Ports: []int{9}}
			err := Load(path, &got)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want mention of %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Name != tc.want.Name || got.Timeout != tc.want.Timeout || len(got.Ports) != len(tc.want.Ports) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}
