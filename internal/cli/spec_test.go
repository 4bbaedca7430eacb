package cli

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadSpec(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "lrp.json")
	if err := os.WriteFile(file, []byte("\n  {\"process_guid\":\"from-file\"}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.json")
	if err := os.WriteFile(empty, []byte("  \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		arg     string
		stdin   string
		want    string
		wantErr string
	}{
		{name: "inline", arg: `{"process_guid":"inline"}`, want: `{"process_guid":"inline"}`},
		{name: "inline trimmed", arg: "  {}\n", want: `{}`},
		{name: "file", arg: "@" + file, want: `{"process_guid":"from-file"}`},
		{name: "stdin", arg: "-", stdin: "{\"process_guid\":\"stdin\"}\n", want: `{"process_guid":"stdin"}`},
		{name: "missing file", arg: "@" + filepath.Join(dir, "nope.json"), wantErr: "no such file"},
		{name: "bare at", arg: "@", wantErr: "name a file after @"},
		{name: "empty file", arg: "@" + empty, wantErr: "is empty"},
		{name: "empty stdin", arg: "-", wantErr: `spec "-" is empty`},
		{name: "empty inline", arg: " ", wantErr: "is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readSpec(tt.arg, strings.NewReader(tt.stdin))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("readSpec() err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("readSpec() = %q, want %q", got, tt.want)
			}
		})
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("boom") }

func TestReadSpecStdinError(t *testing.T) {
	if _, err := readSpec("-", failingReader{}); err == nil || !strings.Contains(err.Error(), "stdin: boom") {
		t.Fatalf("readSpec() err = %v", err)
	}
}
