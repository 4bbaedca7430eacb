package executor

import (
	"context"
	"errors"
	"sync"
)

// EventType says what happened to a container.
type EventType string

// Event types. Reserved, Running and Completed are the lifecycle events a
// rep acts on; Routable reports a change of Container.Routable.
const (
	EventReserved  EventType = "reserved"
	EventRunning   EventType = "running"
	EventCompleted EventType = "completed"
	EventRoutable  EventType = "routable"
)

// Event is one container change, with the container as it was right after.
type Event struct {
	Type      EventType
	Container Container
}

// ErrSubscriptionOverflow ends a subscription whose buffer filled up: the
// subscriber missed events and must resynchronise (ListContainers) before
// subscribing again.
var ErrSubscriptionOverflow = errors.New("event subscription overflowed")

// hub fans events out to subscribers, each with its own bounded buffer. A
// publish never blocks: a full subscriber is closed with
// ErrSubscriptionOverflow. mu guards subs and closed.
type hub struct {
	mu     sync.Mutex
	size   int
	subs   map[*Subscription]struct{}
	closed bool
}

func newHub(size int) *hub {
	return &hub{size: size, subs: map[*Subscription]struct{}{}}
}

// Subscription receives events published after it was made.
type Subscription struct {
	h      *hub
	events chan Event
	once   sync.Once
	done   chan struct{}
	err    error // set before done is closed
}

func (h *hub) subscribe() (*Subscription, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, ErrClosed
	}
	s := &Subscription{h: h, events: make(chan Event, h.size), done: make(chan struct{})}
	h.subs[s] = struct{}{}
	return s, nil
}

func (h *hub) publish(e Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		select {
		case s.events <- e:
		default:
			delete(h.subs, s)
			s.end(ErrSubscriptionOverflow)
		}
	}
}

func (h *hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for s := range h.subs {
		delete(h.subs, s)
		s.end(ErrClosed)
	}
}

func (s *Subscription) end(err error) {
	s.once.Do(func() {
		s.err = err
		close(s.done)
	})
}

// Next returns the next event. Events already buffered are delivered
// before the reason the subscription ended (ErrSubscriptionOverflow,
// ErrClosed); ctx's error is returned if it ends first.
func (s *Subscription) Next(ctx context.Context) (Event, error) {
	select {
	case e := <-s.events:
		return e, nil
	default:
	}
	select {
	case e := <-s.events:
		return e, nil
	case <-s.done:
		select {
		case e := <-s.events:
			return e, nil
		default:
			return Event{}, s.err
		}
	case <-ctx.Done():
		return Event{}, ctx.Err()
	}
}

// Close ends the subscription; Next then returns ErrClosed once the buffer
// is drained.
func (s *Subscription) Close() {
	s.h.mu.Lock()
	delete(s.h.subs, s)
	s.h.mu.Unlock()
	s.end(ErrClosed)
}
