package steps

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"strconv"
	"sync"

	"github.com/gavel-scheduler/gavel/executor/garden"
)

// fakeContainer is a hand-written Container. Process behaviour is chosen by
// the spec's Path:
//
//	exit N       exits with status N at once
//	echo A...    writes each arg as a line to stdout, "err:" args to stderr, exits 0
//	oom          records an OOM event and exits 137
//	block        runs until signalled (TERM → 143, KILL → 137)
//	stubborn     ignores TERM, dies on KILL (137)
//	missing      fails to start with ExecutableNotFoundError
type fakeContainer struct {
	mu        sync.Mutex
	procs     map[string]*fakeProcess
	started   []garden.ProcessSpec
	attached  []string
	events    []string
	streamIns []streamIn
	files     map[string]string // for StreamOut: path → content
	streamErr error
}

type streamIn struct {
	Path, User string
	Files      map[string]string
}

func newFakeContainer() *fakeContainer {
	return &fakeContainer{procs: map[string]*fakeProcess{}, files: map[string]string{}}
}

func (c *fakeContainer) Run(ctx context.Context, spec garden.ProcessSpec, pio garden.ProcessIO) (garden.Process, error) {
	if spec.Path == "missing" {
		return nil, garden.ExecutableNotFoundError{Message: "executable file not found in $PATH"}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if spec.ID == "" {
		spec.ID = fmt.Sprintf("generated-%d", len(c.started))
	}
	if p, ok := c.procs[spec.ID]; ok && !p.exited() {
		return nil, fmt.Errorf("process %s already in use", spec.ID)
	}
	c.started = append(c.started, spec)
	p := &fakeProcess{id: spec.ID, done: make(chan struct{}), stubborn: spec.Path == "stubborn"}
	c.procs[spec.ID] = p
	switch spec.Path {
	case "exit":
		n, _ := strconv.Atoi(spec.Args[0])
		p.exit(n)
	case "echo":
		for _, a := range spec.Args {
			if rest, ok := bytes.CutPrefix([]byte(a), []byte("err:")); ok {
				if pio.Stderr != nil {
					fmt.Fprintf(pio.Stderr, "%s\n", rest)
				}
			} else if pio.Stdout != nil {
				fmt.Fprintf(pio.Stdout, "%s\n", a)
			}
		}
		p.exit(0)
	case "oom":
		c.events = append(c.events, garden.EventOutOfMemory)
		p.exit(137)
	}
	return p, nil
}

func (c *fakeContainer) Attach(ctx context.Context, id string, pio garden.ProcessIO) (garden.Process, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.attached = append(c.attached, id)
	p, ok := c.procs[id]
	if !ok {
		return nil, garden.ProcessNotFoundError{ProcessID: id}
	}
	return p, nil
}

func (c *fakeContainer) StreamIn(ctx context.Context, spec garden.StreamInSpec) error {
	if c.streamErr != nil {
		return c.streamErr
	}
	files := map[string]string{}
	tr := tar.NewReader(spec.TarStream)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("bad tar: %w", err)
		}
		b, _ := io.ReadAll(tr)
		if h.Typeflag == tar.TypeReg {
			files[h.Name] = string(b)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.streamIns = append(c.streamIns, streamIn{Path: spec.Path, User: spec.User, Files: files})
	return nil
}

func (c *fakeContainer) StreamOut(ctx context.Context, spec garden.StreamOutSpec) (io.ReadCloser, error) {
	c.mu.Lock()
	content, ok := c.files[spec.Path]
	c.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("no such file %s", spec.Path)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o755})
	tw.WriteHeader(&tar.Header{Name: "d/f", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(content))})
	io.WriteString(tw, content)
	tw.Close()
	return io.NopCloser(&buf), nil
}

func (c *fakeContainer) Info(ctx context.Context) (garden.ContainerInfo, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return garden.ContainerInfo{State: garden.StateActive, Events: append([]string(nil), c.events...)}, nil
}

func (c *fakeContainer) process(id string) *fakeProcess {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.procs[id]
}

func (c *fakeContainer) startedSpecs() []garden.ProcessSpec {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]garden.ProcessSpec(nil), c.started...)
}

type fakeProcess struct {
	id       string
	stubborn bool
	mu       sync.Mutex
	status   int
	signals  []garden.Signal
	done     chan struct{}
}

func (p *fakeProcess) ID() string { return p.id }

func (p *fakeProcess) Wait() (int, error) {
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.status, nil
}

func (p *fakeProcess) SetTTY(garden.TTYSpec) error { return nil }

func (p *fakeProcess) Signal(sig garden.Signal) error {
	p.mu.Lock()
	p.signals = append(p.signals, sig)
	p.mu.Unlock()
	switch {
	case sig == garden.SignalKill:
		p.exit(137)
	case !p.stubborn:
		p.exit(143)
	}
	return nil
}

func (p *fakeProcess) exit(status int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.done:
	default:
		p.status = status
		close(p.done)
	}
}

func (p *fakeProcess) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *fakeProcess) gotSignals() []garden.Signal {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]garden.Signal(nil), p.signals...)
}
