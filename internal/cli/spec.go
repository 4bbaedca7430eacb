package cli

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
)

// specHelp is the shared help text for SPEC arguments.
const specHelp = `SPEC is inline JSON, @FILE to read a file, or - to read stdin.
Field names are Diego's snake_case names (process_guid, memory_mb, ...).
The spec is checked locally first: a bad one is refused with every bad field
named, and nothing is sent to the BBS.`

// readSpec returns the JSON text a SPEC argument stands for: the argument
// itself, the contents of @FILE, or all of stdin for "-". It only fetches the
// bytes; the models decoders judge them.
func readSpec(arg string, stdin io.Reader) ([]byte, error) {
	var data []byte
	switch {
	case arg == "-":
		b, err := io.ReadAll(stdin)
		if err != nil {
			return nil, fmt.Errorf("read spec from stdin: %w", err)
		}
		data = b
	case strings.HasPrefix(arg, "@"):
		path := arg[1:]
		if path == "" {
			return nil, fmt.Errorf("spec %q: name a file after @", arg)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read spec: %w", err)
		}
		data = b
	default:
		data = []byte(arg)
	}
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return nil, fmt.Errorf("spec %q is empty", arg)
	}
	return data, nil
}

// specError marks a spec refused before anything was sent, so explain can
// say "invalid spec" rather than blame the BBS.
type specError struct{ err error }

func (e *specError) Error() string { return "invalid spec: " + e.err.Error() }
func (e *specError) Unwrap() error { return e.err }

// decodeSpec reads a SPEC argument and decodes it with one of the models
// decoders, marking any failure as a spec error.
func decodeSpec[T any](arg string, stdin io.Reader, decode func([]byte) (T, error)) (T, error) {
	var zero T
	data, err := readSpec(arg, stdin)
	if err != nil {
		return zero, err
	}
	v, err := decode(data)
	if err != nil {
		return zero, &specError{err: err}
	}
	return v, nil
}
