package garden

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"
)

// fakeBackend is an in-memory Backend for the protocol tests: processes are
// tiny interpreters ("echo", "cat", "exit N", "wait") instead of programs.
type fakeBackend struct {
	mu         sync.Mutex
	containers map[string]*fakeContainer
	destroyed  []string
}

func newFakeBackend() *fakeBackend { return &fakeBackend{containers: map[string]*fakeContainer{}} }

func (b *fakeBackend) Start(context.Context) error { return nil }
func (b *fakeBackend) Stop(context.Context) error  { return nil }
func (b *fakeBackend) Ping(context.Context) error  { return nil }
func (b *fakeBackend) Capacity(context.Context) (Capacity, error) {
	return Capacity{MemoryInBytes: 1 << 30, DiskInBytes: 1 << 31, SchedulableDiskInBytes: 1 << 31, MaxContainers: 7}, nil
}

func (b *fakeBackend) Create(_ context.Context, spec ContainerSpec) (Container, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if spec.Handle == "" {
		spec.Handle = fmt.Sprintf("gen-%d", len(b.containers)+1)
	}
	if _, ok := b.containers[spec.Handle]; ok {
		return nil, fmt.Errorf("Handle '%s' already in use", spec.Handle)
	}
	props := Properties{PropertyState: StateCreated}
	for k, v := range spec.Properties {
		props[k] = v
	}
	c := &fakeContainer{handle: spec.Handle, spec: spec, props: props, grace: spec.GraceTime, procs: map[string]*fakeProcess{}}
	b.containers[spec.Handle] = c
	return c, nil
}

func (b *fakeBackend) Destroy(_ context.Context, handle string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.containers[handle]; !ok {
		return ContainerNotFoundError{Handle: handle}
	}
	delete(b.containers, handle)
	b.destroyed = append(b.destroyed, handle)
	return nil
}

func (b *fakeBackend) Containers(_ context.Context, filter Properties) ([]Container, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []Container
	for _, c := range b.containers {
		if MatchProperties(c.propsCopy(), filter) {
			out = append(out, c)
		}
	}
	return out, nil
}

func (b *fakeBackend) Lookup(_ context.Context, handle string) (Container, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	c, ok := b.containers[handle]
	if !ok {
		return nil, ContainerNotFoundError{Handle: handle}
	}
	return c, nil
}

func (b *fakeBackend) BulkInfo(context.Context, []string) (map[string]ContainerInfoEntry, error) {
	return nil, errors.New("served by the Server")
}

func (b *fakeBackend) BulkMetrics(context.Context, []string) (map[string]ContainerMetricsEntry, error) {
	return nil, errors.New("served by the Server")
}

func (b *fakeBackend) GraceTime(c Container) time.Duration {
	fc := c.(*fakeContainer)
	fc.mu.Lock()
	defer fc.mu.Unlock()
	return fc.grace
}

func (b *fakeBackend) has(handle string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, ok := b.containers[handle]
	return ok
}

type fakeContainer struct {
	handle string
	spec   ContainerSpec

	mu      sync.Mutex
	props   Properties
	grace   time.Duration
	stopped bool
	procs   map[string]*fakeProcess
	files   map[string][]byte
	nextPID int
}

func (c *fakeContainer) propsCopy() Properties {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := Properties{}
	for k, v := range c.props {
		p[k] = v
	}
	return p
}

func (c *fakeContainer) Handle() string { return c.handle }
func (c *fakeContainer) Stop(_ context.Context, kill bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopped = true
	return nil
}

func (c *fakeContainer) Info(context.Context) (ContainerInfo, error) {
	c.mu.Lock()
	state := StateActive
	if c.stopped {
		state = StateStopped
	}
	c.mu.Unlock()
	return ContainerInfo{State: state, ContainerIP: "10.254.0.2", HostIP: "10.254.0.1", Properties: c.propsCopy(), MappedPorts: []PortMapping{{HostPort: 61001, ContainerPort: 8080}}}, nil
}

func (c *fakeContainer) StreamIn(_ context.Context, spec StreamInSpec) error {
	data, err := io.ReadAll(spec.TarStream)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.files == nil {
		c.files = map[string][]byte{}
	}
	c.files[spec.Path] = data
	return nil
}

func (c *fakeContainer) StreamOut(_ context.Context, spec StreamOutSpec) (io.ReadCloser, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	data, ok := c.files[spec.Path]
	if !ok {
		return nil, fmt.Errorf("stream out %s: no such file", spec.Path)
	}
	return io.NopCloser(strings.NewReader(string(data))), nil
}

func (c *fakeContainer) CurrentBandwidthLimits(context.Context) (BandwidthLimits, error) {
	return c.spec.Limits.Bandwidth, nil
}
func (c *fakeContainer) CurrentCPULimits(context.Context) (CPULimits, error) {
	return c.spec.Limits.CPU, nil
}
func (c *fakeContainer) CurrentDiskLimits(context.Context) (DiskLimits, error) {
	return c.spec.Limits.Disk, nil
}
func (c *fakeContainer) CurrentMemoryLimits(context.Context) (MemoryLimits, error) {
	return c.spec.Limits.Memory, nil
}

func (c *fakeContainer) NetIn(_ context.Context, hp, cp uint32) (uint32, uint32, error) {
	if hp == 0 {
		hp = 61001
	}
	if cp == 0 {
		cp = hp
	}
	return hp, cp, nil
}

func (c *fakeContainer) NetOut(_ context.Context, rule NetOutRule) error {
	if rule.Protocol != ProtocolTCP && rule.Protocol != ProtocolUDP && len(rule.Ports) > 0 {
		return fmt.Errorf("Ports cannot be specified for Protocol %s", strings.ToUpper(rule.Protocol.String()))
	}
	return nil
}

func (c *fakeContainer) BulkNetOut(ctx context.Context, rules []NetOutRule) error {
	for _, r := range rules {
		if err := c.NetOut(ctx, r); err != nil {
			return err
		}
	}
	return nil
}

func (c *fakeContainer) Metrics(context.Context) (Metrics, error) {
	return Metrics{PidStat: ContainerPidStat{Current: 1, Max: c.spec.Limits.Pid.Max}, Age: time.Second}, nil
}

func (c *fakeContainer) SetGraceTime(_ context.Context, d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.grace = d
	return nil
}

func (c *fakeContainer) Properties(context.Context) (Properties, error) { return c.propsCopy(), nil }
func (c *fakeContainer) Property(_ context.Context, name string) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.props[name]
	if !ok {
		return "", fmt.Errorf("property does not exist: %s", name)
	}
	return v, nil
}
func (c *fakeContainer) SetProperty(_ context.Context, name, value string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.props[name] = value
	return nil
}
func (c *fakeContainer) RemoveProperty(_ context.Context, name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.props, name)
	return nil
}

func (c *fakeContainer) Run(_ context.Context, spec ProcessSpec, pio ProcessIO) (Process, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if spec.Path == "missing" {
		return nil, ExecutableNotFoundError{Message: `exec: "missing": executable file not found in $PATH`}
	}
	if spec.ID == "" {
		c.nextPID++
		spec.ID = "p" + strconv.Itoa(c.nextPID)
	}
	if p, ok := c.procs[spec.ID]; ok && !p.exited() {
		return nil, fmt.Errorf("process ID '%s' already in use", spec.ID)
	}
	p := &fakeProcess{id: spec.ID, spec: spec, signals: make(chan Signal, 1), done: make(chan struct{}), release: make(chan struct{})}
	p.attach(pio)
	c.procs[spec.ID] = p
	go p.run(pio.Stdin)
	return p, nil
}

func (c *fakeContainer) Attach(_ context.Context, id string, pio ProcessIO) (Process, error) {
	c.mu.Lock()
	p, ok := c.procs[id]
	c.mu.Unlock()
	if !ok {
		return nil, ProcessNotFoundError{ProcessID: id}
	}
	return p.attach(pio), nil
}

// fakeProcess interprets its spec. Output fans out to every attacher.
type fakeProcess struct {
	id      string
	spec    ProcessSpec
	signals chan Signal
	release chan struct{} // "wait" blocks on it or a signal
	done    chan struct{}

	mu      sync.Mutex
	outs    []io.Writer
	errs    []io.Writer
	status  int
	resized []TTYSpec
}

type fakeAttachment struct {
	*fakeProcess
}

func (p *fakeProcess) attach(pio ProcessIO) Process {
	p.mu.Lock()
	defer p.mu.Unlock()
	if pio.Stdout != nil {
		p.outs = append(p.outs, pio.Stdout)
	}
	if pio.Stderr != nil {
		p.errs = append(p.errs, pio.Stderr)
	}
	return fakeAttachment{p}
}

func (p *fakeProcess) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *fakeProcess) write(toErr bool, s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ws := p.outs
	if toErr {
		ws = p.errs
	}
	for _, w := range ws {
		_, _ = io.WriteString(w, s)
	}
}

func (p *fakeProcess) run(stdin io.Reader) {
	defer close(p.done)
	status := 0
	switch p.spec.Path {
	case "echo":
		p.write(false, strings.Join(p.spec.Args, " ")+"\n")
		p.write(true, "err:"+strings.Join(p.spec.Args, " ")+"\n")
	case "cat":
		data, _ := io.ReadAll(stdin)
		p.write(false, string(data))
	case "exit":
		status, _ = strconv.Atoi(p.spec.Args[0])
	case "wait":
		p.write(false, "waiting\n")
		select {
		case sig := <-p.signals:
			status = 143
			if sig == SignalKill {
				status = 137
			}
		case <-p.release:
			for i := 1; i <= 3; i++ {
				p.write(false, strconv.Itoa(i)+"\n")
			}
			status = 12
		}
	}
	p.mu.Lock()
	p.status = status
	p.mu.Unlock()
}

func (p *fakeProcess) ID() string { return p.id }
func (p *fakeProcess) Wait() (int, error) {
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.status, nil
}
func (p *fakeProcess) SetTTY(spec TTYSpec) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.resized = append(p.resized, spec)
	return nil
}
func (p *fakeProcess) Signal(sig Signal) error {
	select {
	case p.signals <- sig:
	default:
	}
	return nil
}
