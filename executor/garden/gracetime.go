package garden

import (
	"sync"
	"time"
)

// reaper destroys containers that sit idle for their grace time. A
// container's timer is stopped while any request naming it is in flight and
// restarted with the full duration when the last one ends. All state is
// guarded by mu; timers call expire on their own goroutine.
type reaper struct {
	mu      sync.Mutex
	timers  map[string]*graceTimer
	destroy func(handle string)
}

type graceTimer struct {
	grace    time.Duration
	inFlight int
	timer    *time.Timer
	// gen invalidates a timer that fired while being reset.
	gen uint64
}

func newReaper(destroy func(handle string)) *reaper {
	return &reaper{timers: map[string]*graceTimer{}, destroy: destroy}
}

// arm starts (or restarts) the handle's timer with grace; 0 disables it.
func (r *reaper) arm(handle string, grace time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.timers[handle]
	if t == nil {
		t = &graceTimer{}
		r.timers[handle] = t
	}
	t.grace = grace
	r.resetLocked(handle, t)
}

// pause holds the handle's timer until the matching resume.
func (r *reaper) pause(handle string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if t := r.timers[handle]; t != nil {
		t.inFlight++
		r.stopLocked(t)
	}
}

// resume releases one pause; the last one restarts the timer.
func (r *reaper) resume(handle string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if t := r.timers[handle]; t != nil && t.inFlight > 0 {
		t.inFlight--
		r.resetLocked(handle, t)
	}
}

// forget drops the handle's timer (the container is gone).
func (r *reaper) forget(handle string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if t := r.timers[handle]; t != nil {
		r.stopLocked(t)
		delete(r.timers, handle)
	}
}

// stopAll stops every timer, for server shutdown.
func (r *reaper) stopAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for h, t := range r.timers {
		r.stopLocked(t)
		delete(r.timers, h)
	}
}

func (r *reaper) stopLocked(t *graceTimer) {
	t.gen++
	if t.timer != nil {
		t.timer.Stop()
		t.timer = nil
	}
}

func (r *reaper) resetLocked(handle string, t *graceTimer) {
	r.stopLocked(t)
	if t.inFlight > 0 || t.grace <= 0 {
		return
	}
	gen := t.gen
	t.timer = time.AfterFunc(t.grace, func() { r.expire(handle, gen) })
}

func (r *reaper) expire(handle string, gen uint64) {
	r.mu.Lock()
	t := r.timers[handle]
	if t == nil || t.gen != gen || t.inFlight > 0 {
		r.mu.Unlock()
		return
	}
	delete(r.timers, handle)
	r.mu.Unlock()
	r.destroy(handle)
}
