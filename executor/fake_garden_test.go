package executor

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"strconv"
	"sync"
	"time"

	"github.com/gavel-scheduler/gavel/executor/garden"
)

// fakeGarden is a hand-written GardenClient keeping containers in memory.
// Processes behave by Path:
//
//	exit N    exits N at once
//	block     runs until signalled (TERM → 143, KILL → 137)
//	check     exits with the container's checkStatus (0 healthy)
//	gated     like block, but Run returns only when gate is closed (it
//	          sends on entered first)
type fakeGarden struct {
	mu         sync.Mutex
	containers map[string]*fakeContainer
	createErr  error
	destroyed  []string
	// checkStatus is the initial exit status of "check" in new containers.
	checkStatus int
	// gate and entered hold back the start of "gated" processes.
	gate, entered chan struct{}
}

func newFakeGarden() *fakeGarden { return &fakeGarden{containers: map[string]*fakeContainer{}} }

func (g *fakeGarden) Ping(context.Context) error { return nil }

func (g *fakeGarden) Capacity(context.Context) (garden.Capacity, error) {
	return garden.Capacity{MemoryInBytes: 8 << 30, DiskInBytes: 16 << 30, MaxContainers: 256}, nil
}

func (g *fakeGarden) Create(ctx context.Context, spec garden.ContainerSpec) (garden.Container, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.createErr != nil {
		return nil, g.createErr
	}
	if _, ok := g.containers[spec.Handle]; ok {
		return nil, fmt.Errorf("Handle '%s' already in use", spec.Handle)
	}
	props := maps.Clone(spec.Properties)
	props[garden.PropertyState] = garden.StateCreated
	c := &fakeContainer{g: g, handle: spec.Handle, spec: spec, props: props, procs: map[string]*fakeProcess{}, files: map[string]string{}, checkStatus: g.checkStatus}
	for i, n := range spec.NetIn {
		c.mapped = append(c.mapped, garden.PortMapping{HostPort: uint32(61001 + i), ContainerPort: n.ContainerPort})
	}
	g.containers[spec.Handle] = c
	return c, nil
}

func (g *fakeGarden) Destroy(ctx context.Context, handle string) error {
	g.mu.Lock()
	c, ok := g.containers[handle]
	delete(g.containers, handle)
	g.destroyed = append(g.destroyed, handle)
	g.mu.Unlock()
	if !ok {
		return garden.ContainerNotFoundError{Handle: handle}
	}
	c.mu.Lock()
	procs := maps.Clone(c.procs)
	c.mu.Unlock()
	for _, p := range procs {
		p.exit(137)
	}
	return nil
}

func (g *fakeGarden) Containers(ctx context.Context, filter garden.Properties) ([]garden.Container, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []garden.Container
	for _, c := range g.containers {
		c.mu.Lock()
		match := true
		for k, v := range filter {
			if k == garden.PropertyState && v == garden.StateAll {
				continue
			}
			if c.props[k] != v {
				match = false
			}
		}
		c.mu.Unlock()
		if match {
			out = append(out, c)
		}
	}
	return out, nil
}

func (g *fakeGarden) container(handle string) *fakeContainer {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.containers[handle]
}

// fakeContainer embeds garden.Container so that methods the executor never
// calls need no body (calling one panics, which a test would show).
type fakeContainer struct {
	garden.Container
	g           *fakeGarden
	handle      string
	spec        garden.ContainerSpec
	mu          sync.Mutex
	props       garden.Properties
	procs       map[string]*fakeProcess
	started     []garden.ProcessSpec
	attaches    int
	files       map[string]string
	mapped      []garden.PortMapping
	checkStatus int
	nextID      int
}

func (c *fakeContainer) Handle() string { return c.handle }

func (c *fakeContainer) Info(context.Context) (garden.ContainerInfo, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return garden.ContainerInfo{
		State: garden.StateActive, HostIP: "10.254.0.1", ContainerIP: "10.254.0.2", ExternalIP: "192.0.2.10",
		Properties: maps.Clone(c.props), MappedPorts: append([]garden.PortMapping(nil), c.mapped...),
	}, nil
}

func (c *fakeContainer) Properties(context.Context) (garden.Properties, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.props), nil
}

func (c *fakeContainer) SetProperty(ctx context.Context, k, v string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.props[k] = v
	return nil
}

func (c *fakeContainer) Run(ctx context.Context, spec garden.ProcessSpec, pio garden.ProcessIO) (garden.Process, error) {
	if spec.Path == "gated" {
		c.g.entered <- struct{}{}
		select {
		case <-c.g.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if spec.ID == "" {
		c.nextID++
		spec.ID = "gen-" + strconv.Itoa(c.nextID)
	}
	if p, ok := c.procs[spec.ID]; ok && !p.exited() {
		return nil, fmt.Errorf("process %s already in use", spec.ID)
	}
	c.started = append(c.started, spec)
	p := &fakeProcess{id: spec.ID, done: make(chan struct{})}
	c.procs[spec.ID] = p
	switch spec.Path {
	case "exit":
		n, _ := strconv.Atoi(spec.Args[0])
		if pio.Stdout != nil {
			fmt.Fprintf(pio.Stdout, "exiting %d\n", n)
		}
		p.exit(n)
	case "check":
		p.exit(c.checkStatus)
	}
	return p, nil
}

func (c *fakeContainer) hasProcess(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.procs[id]
	return ok
}

func (c *fakeContainer) Attach(ctx context.Context, id string, pio garden.ProcessIO) (garden.Process, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.procs[id]
	if !ok {
		return nil, garden.ProcessNotFoundError{ProcessID: id}
	}
	c.attaches++
	return p, nil
}

func (c *fakeContainer) StreamIn(ctx context.Context, spec garden.StreamInSpec) error {
	_, err := io.Copy(io.Discard, spec.TarStream)
	return err
}

func (c *fakeContainer) StreamOut(ctx context.Context, spec garden.StreamOutSpec) (io.ReadCloser, error) {
	c.mu.Lock()
	content, ok := c.files[spec.Path]
	c.mu.Unlock()
	if !ok {
		return nil, errors.New("no such file")
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "result", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(content))})
	io.WriteString(tw, content)
	tw.Close()
	return io.NopCloser(&buf), nil
}

func (c *fakeContainer) set(f func(c *fakeContainer)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f(c)
}

func (c *fakeContainer) process(id string) *fakeProcess {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.procs[id]
}

type fakeProcess struct {
	id      string
	mu      sync.Mutex
	status  int
	signals []garden.Signal
	done    chan struct{}
}

func (p *fakeProcess) ID() string                  { return p.id }
func (p *fakeProcess) SetTTY(garden.TTYSpec) error { return nil }

func (p *fakeProcess) Wait() (int, error) {
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.status, nil
}

func (p *fakeProcess) Signal(sig garden.Signal) error {
	p.mu.Lock()
	p.signals = append(p.signals, sig)
	p.mu.Unlock()
	if sig == garden.SignalKill {
		p.exit(137)
	} else {
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

// Backend methods, so that the fake can sit behind a real garden.Server and
// the executor can be tested over the real client and wire protocol.

func (g *fakeGarden) Start(context.Context) error { return nil }
func (g *fakeGarden) Stop(context.Context) error  { return nil }

func (g *fakeGarden) GraceTime(garden.Container) time.Duration { return 0 }

func (g *fakeGarden) Lookup(ctx context.Context, handle string) (garden.Container, error) {
	if c := g.container(handle); c != nil {
		return c, nil
	}
	return nil, garden.ContainerNotFoundError{Handle: handle}
}

func (g *fakeGarden) BulkInfo(ctx context.Context, handles []string) (map[string]garden.ContainerInfoEntry, error) {
	out := map[string]garden.ContainerInfoEntry{}
	for _, h := range handles {
		if c := g.container(h); c != nil {
			info, _ := c.Info(ctx)
			out[h] = garden.ContainerInfoEntry{Info: info}
		} else {
			out[h] = garden.ContainerInfoEntry{Err: garden.NewError(garden.ContainerNotFoundError{Handle: h})}
		}
	}
	return out, nil
}

func (g *fakeGarden) BulkMetrics(ctx context.Context, handles []string) (map[string]garden.ContainerMetricsEntry, error) {
	return map[string]garden.ContainerMetricsEntry{}, nil
}
