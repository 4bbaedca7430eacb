package gardenrunc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// runcCLI runs the runc binary against one --root.
type runcCLI struct {
	bin, root string
}

func (r runcCLI) command(ctx context.Context, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, r.bin, append([]string{"--root", r.root}, args...)...)
}

// output runs runc and returns stdout; a failure carries runc's stderr.
func (r runcCLI) output(ctx context.Context, args ...string) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	cmd := r.command(ctx, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		return nil, fmt.Errorf("runc %s: %s", args[0], msg)
	}
	return stdout.Bytes(), nil
}

// run starts the bundle's init detached and writes its pid to pidFile;
// the init gets extra as its descriptors from 3 on. The init inherits
// runc's stdio, so those must be files, not pipes (a pipe would stay open
// as long as the container and hang the wait): stdout is /dev/null and
// stderr a file in the bundle, read back on failure.
func (r runcCLI) run(ctx context.Context, id, bundle, pidFile string, extra ...*os.File) error {
	errPath := filepath.Join(bundle, "runc-run.stderr")
	errFile, err := os.Create(errPath)
	if err != nil {
		return err
	}
	defer errFile.Close()
	cmd := r.command(ctx, "run", "--detach", "--no-new-keyring", "--bundle", bundle, "--pid-file", pidFile,
		"--preserve-fds", strconv.Itoa(len(extra)), id)
	cmd.Stderr = errFile
	cmd.ExtraFiles = extra
	if err := cmd.Run(); err != nil {
		msg, _ := os.ReadFile(errPath)
		if len(bytes.TrimSpace(msg)) == 0 {
			msg = []byte(err.Error())
		}
		return fmt.Errorf("runc run: %s", bytes.TrimSpace(msg))
	}
	return nil
}

// delete removes the container, killing it if it still runs; a container
// runc does not know is no error.
func (r runcCLI) delete(ctx context.Context, id string) error {
	_, err := r.output(ctx, "delete", id)
	if err != nil && strings.Contains(err.Error(), "does not exist") {
		return nil
	}
	if err != nil {
		_, err = r.output(ctx, "delete", "--force", id)
		if err != nil && strings.Contains(err.Error(), "does not exist") {
			return nil
		}
	}
	return err
}

// runcState is the part of `runc state` gavel reads.
type runcState struct {
	Status string `json:"status"`
	Pid    int    `json:"pid"`
}

var errRuncNotFound = errors.New("container does not exist in runc")

func (r runcCLI) state(ctx context.Context, id string) (runcState, error) {
	out, err := r.output(ctx, "state", id)
	if err != nil {
		if strings.Contains(err.Error(), "does not exist") {
			return runcState{}, errRuncNotFound
		}
		return runcState{}, err
	}
	var s runcState
	if err := json.Unmarshal(out, &s); err != nil {
		return runcState{}, fmt.Errorf("runc state %s: %w", id, err)
	}
	return s, nil
}

// list returns the ids runc knows.
func (r runcCLI) list(ctx context.Context) ([]string, error) {
	out, err := r.output(ctx, "list", "--format", "json")
	if err != nil {
		return nil, err
	}
	var entries []struct {
		ID string `json:"id"`
	}
	if len(bytes.TrimSpace(out)) > 0 && !bytes.Equal(bytes.TrimSpace(out), []byte("null")) {
		if err := json.Unmarshal(out, &entries); err != nil {
			return nil, fmt.Errorf("runc list: %w", err)
		}
	}
	ids := make([]string, 0, len(entries))
	for _, e := range entries {
		ids = append(ids, e.ID)
	}
	return ids, nil
}
