package executor

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gavel-scheduler/gavel/executor/garden"
	"github.com/gavel-scheduler/gavel/executor/logs"
)

// node is the store's record of one container.
type node struct {
	c    Container
	logs *logs.Ring
	// gc is the Garden container, set once it is created.
	gc garden.Container
	// cancel stops the lifecycle goroutine; done is closed when it has
	// ended. Both are nil until RunContainer (or restore) starts one.
	cancel context.CancelCauseFunc
	done   chan struct{}
	// deleting is set by DeleteContainer: the guid stays taken until
	// the Garden container is gone.
	deleting bool
}

// store is the container store: every container by guid, and the capacity
// they leave. Every transition happens under mu and publishes its event
// before mu is released, so subscribers see events in the order of the
// state they describe. mu guards remaining and nodes.
type store struct {
	mu        sync.Mutex
	total     Resources
	remaining Resources
	nodes     map[string]*node
	hub       *hub
	logLines  int
	logBytes  int
}

func newStore(total Resources, h *hub, logLines, logBytes int) *store {
	return &store{total: total, remaining: total, nodes: map[string]*node{}, hub: h, logLines: logLines, logBytes: logBytes}
}

// allocate reserves every request that is valid and fits, in order, and
// returns the others with the reason.
func (s *store) allocate(reqs []AllocationRequest, now time.Time) []AllocationFailure {
	s.mu.Lock()
	defer s.mu.Unlock()
	var failed []AllocationFailure
	for _, req := range reqs {
		if err := s.reserveLocked(req, now); err != nil {
			failed = append(failed, AllocationFailure{AllocationRequest: req, Err: err})
		}
	}
	return failed
}

func (s *store) reserveLocked(req AllocationRequest, now time.Time) error {
	if err := validGuid(req.Guid); err != nil {
		return err
	}
	if err := validateResource(req.Resource); err != nil {
		return fmt.Errorf("allocate %s: %w", req.Guid, err)
	}
	if _, taken := s.nodes[req.Guid]; taken {
		return fmt.Errorf("allocate %s: %w", req.Guid, ErrGuidNotAvailable)
	}
	if err := s.remaining.fits(req.Resource); err != nil {
		return fmt.Errorf("allocate %s: %w", req.Guid, err)
	}
	s.remaining = s.remaining.take(req.Resource)
	n := &node{
		c:    Container{Guid: req.Guid, State: StateReserved, Resource: req.Resource, Tags: copyTags(req.Tags), AllocatedAt: now},
		logs: logs.NewRing(s.logLines, s.logBytes),
	}
	s.nodes[req.Guid] = n
	s.hub.publish(Event{Type: EventReserved, Container: n.c.clone()})
	return nil
}

// adopt records a container found in Garden at restore. It takes its
// resources even past capacity (the configuration may have shrunk): the
// container exists whatever the numbers say.
func (s *store) adopt(c Container, gc garden.Container) *node {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.remaining = s.remaining.take(c.Resource)
	n := &node{c: c, gc: gc, logs: logs.NewRing(s.logLines, s.logBytes)}
	s.nodes[c.Guid] = n
	return n
}

// get returns a snapshot of one container.
func (s *store) get(guid string) (Container, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.nodes[guid]
	if !ok {
		return Container{}, fmt.Errorf("%s: %w", guid, ErrContainerNotFound)
	}
	return n.c.clone(), nil
}

// node returns the record of one container.
func (s *store) node(guid string) (*node, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.nodes[guid]
	if !ok {
		return nil, fmt.Errorf("%s: %w", guid, ErrContainerNotFound)
	}
	return n, nil
}

// list returns every container with all the filter's tags, by guid.
func (s *store) list(filter Tags) []Container {
	s.mu.Lock()
	out := make([]Container, 0, len(s.nodes))
	for _, n := range s.nodes {
		if n.c.HasTags(filter) {
			out = append(out, n.c.clone())
		}
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b Container) int { return strings.Compare(a.Guid, b.Guid) })
	return out
}

// allowed lists the transitions of the lifecycle.
var allowed = map[State][]State{
	StateReserved:     {StateInitializing, StateCompleted},
	StateInitializing: {StateCreated, StateCompleted},
	StateCreated:      {StateRunning, StateCompleted},
	StateRunning:      {StateCompleted},
}

// transition moves a container to state to, after mutate (which may be
// nil) has changed the record, and returns the container before and after.
// The event of the new state, if it has one, is published.
func (s *store) transition(guid string, to State, mutate func(n *node)) (before, after Container, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.nodes[guid]
	if !ok {
		return Container{}, Container{}, fmt.Errorf("%s: %w", guid, ErrContainerNotFound)
	}
	if !slices.Contains(allowed[n.c.State], to) {
		return Container{}, Container{}, fmt.Errorf("%s: %w from %s to %s", guid, ErrInvalidTransition, n.c.State, to)
	}
	before = n.c.clone()
	after = s.setStateLocked(n, to, mutate)
	return before, after, nil
}

// setStateLocked applies mutate and the new state and publishes the event
// of the state, if it has one. s.mu must be held.
func (s *store) setStateLocked(n *node, to State, mutate func(n *node)) Container {
	if mutate != nil {
		mutate(n)
	}
	n.c.State = to
	after := n.c.clone()
	switch to {
	case StateRunning:
		s.hub.publish(Event{Type: EventRunning, Container: after})
	case StateCompleted:
		s.hub.publish(Event{Type: EventCompleted, Container: after})
	}
	return after
}

// stop completes a reservation as stopped, or returns the cancel and done
// of a running lifecycle (nil for a completed container).
func (s *store) stop(guid string) (context.CancelCauseFunc, chan struct{}, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.nodes[guid]
	if !ok {
		return nil, nil, fmt.Errorf("%s: %w", guid, ErrContainerNotFound)
	}
	if n.c.State == StateReserved {
		s.setStateLocked(n, StateCompleted, func(n *node) { n.c.RunResult = RunResult{Stopped: true} })
		return nil, nil, nil
	}
	if n.c.State == StateCompleted {
		return nil, nil, nil
	}
	return n.cancel, n.done, nil
}

// startRun moves a reservation to INITIALIZING for RunContainer and records
// the lifecycle that will drive it.
func (s *store) startRun(req RunRequest, cancel context.CancelCauseFunc, done chan struct{}) (*node, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.nodes[req.Guid]
	if !ok {
		return nil, fmt.Errorf("run %s: %w", req.Guid, ErrContainerNotFound)
	}
	if n.c.State != StateReserved || n.deleting {
		return nil, fmt.Errorf("run %s: %w: container is %s", req.Guid, ErrInvalidTransition, n.c.State)
	}
	s.setStateLocked(n, StateInitializing, func(n *node) {
		n.c.RunInfo = req.RunInfo
		for k, v := range req.Tags {
			n.c.Tags[k] = v
		}
		n.cancel, n.done = cancel, done
	})
	return n, nil
}

// complete moves a container to COMPLETED with result, unless it already
// is; it reports whether it did.
func (s *store) complete(guid string, result RunResult) (Container, bool) {
	_, after, err := s.transition(guid, StateCompleted, func(n *node) {
		n.c.RunResult = result
		n.c.Routable = false
	})
	return after, err == nil
}

// setRoutable records a readiness change and publishes it.
func (s *store) setRoutable(guid string, routable bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.nodes[guid]
	if !ok || n.c.State != StateRunning || n.c.Routable == routable {
		return
	}
	n.c.Routable = routable
	s.hub.publish(Event{Type: EventRoutable, Container: n.c.clone()})
}

// update changes a record without a state change.
func (s *store) update(guid string, mutate func(n *node)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n, ok := s.nodes[guid]; ok {
		mutate(n)
	}
}

// remove forgets a container and frees its resources.
func (s *store) remove(guid string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.nodes[guid]
	if !ok {
		return
	}
	delete(s.nodes, guid)
	s.remaining = s.remaining.give(n.c.Resource)
	if n.logs != nil {
		n.logs.Close()
	}
}

// expired returns the reservations allocated before cutoff.
func (s *store) expired(cutoff time.Time) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for guid, n := range s.nodes {
		if n.c.State == StateReserved && !n.deleting && n.c.AllocatedAt.Before(cutoff) {
			out = append(out, guid)
		}
	}
	slices.Sort(out)
	return out
}

// resources returns the remaining and total capacity.
func (s *store) resources() (remaining, total Resources) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.remaining, s.total
}

// validGuid refuses guids Garden could not carry as a handle (they travel
// unescaped in URL paths).
func validGuid(guid string) error {
	if guid == "" {
		return fmt.Errorf("%w: guid must not be empty", ErrInvalidRequest)
	}
	if len(guid) > 128 {
		return fmt.Errorf("%w: guid must be at most 128 bytes", ErrInvalidRequest)
	}
	for _, r := range guid {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return fmt.Errorf("%w: guid %q must match [a-zA-Z0-9_-]+", ErrInvalidRequest, guid)
		}
	}
	return nil
}

func copyTags(t Tags) Tags {
	if len(t) == 0 {
		return Tags{}
	}
	out := make(Tags, len(t))
	for k, v := range t {
		out[k] = v
	}
	return out
}
