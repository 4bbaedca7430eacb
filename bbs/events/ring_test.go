package events

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/gavel-scheduler/gavel/proto/models"
)

// ringHub returns a ready hub of task events with no watch behind it: the
// test appends to its ring by hand. Subscribers copy batch entries at a
// time.
func ringHub(size, batch int, start int64) *hub[*models.TaskEvent] {
	k := streamKind[*models.TaskEvent]{
		name:   "task",
		prefix: "/ring-test/",
		wrap: func(e *models.TaskEvent, pos *models.EventPosition) *models.TaskEvent {
			return &models.TaskEvent{Position: pos, Event: e.Event}
		},
	}
	h := newHub(k, size, batch, time.Minute, discardLogger, &hubStats{})
	h.subs = 0
	h.cancel = func() {}
	h.ready, h.start, h.covered = true, start, start
	return h
}

// revEntries returns n entries of revision rev, with guids "rev/index".
func revEntries(rev int64, n int) []entry[*models.TaskEvent] {
	var out []entry[*models.TaskEvent]
	for i := range n {
		guid := fmt.Sprintf("%d/%d", rev, i)
		out = append(out, entry[*models.TaskEvent]{rev: rev, ev: &models.TaskEvent{Event: &models.TaskEvent_TaskCreated{
			TaskCreated: &models.TaskCreatedEvent{Task: &models.Task{TaskGuid: guid}},
		}}})
	}
	return out
}

func evenGuid(e *models.TaskEvent) bool {
	g := e.GetTaskCreated().GetTask().GetTaskGuid()
	return (g[len(g)-1]-'0')%2 == 0
}

// serveAll runs one subscriber of h to its end and returns what it sent
// ("position guid"), the position it would continue from privately, and
// its error. onSend, if set, runs after each send.
func serveAll(h *hub[*models.TaskEvent], after *models.EventPosition, keep func(*models.TaskEvent) bool, onSend func(n int)) ([]string, *models.EventPosition, error) {
	h.mu.Lock()
	h.subs++ // attached even to an ended hub, as a subscriber can be
	h.mu.Unlock()
	var sent []string
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	from, err := h.serve(ctx, discardLogger, after, keep, func(e *models.TaskEvent, p *models.EventPosition) error {
		sent = append(sent, fmt.Sprintf("%d/%d %s", p.GetRevision(), p.GetSeq(), e.GetTaskCreated().GetTask().GetTaskGuid()))
		if onSend != nil {
			onSend(len(sent))
		}
		return nil
	})
	return sent, from, err
}

// span lists the positions "rev/seq guid" of seqs lo..hi of rev, where the
// guid index equals seq times step (step 2 for even-filtered streams).
func span(rev int64, lo, hi, step int) []string {
	var out []string
	for s := lo; s <= hi; s++ {
		out = append(out, fmt.Sprintf("%d/%d %d/%d", rev, s, rev, s*step))
	}
	return out
}

func concat(parts ...[]string) []string {
	var out []string
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// TestHubServe covers what a ring can and cannot serve, with no etcd: the
// ring holds revision 11's last event, all ten of 12 and five of 13, after
// eviction took 11's first two (so it covers everything after 11).
func TestHubServe(t *testing.T) {
	errWatch := models.NewError(models.TypeUnavailable, "watch gone")
	newRing := func() *hub[*models.TaskEvent] {
		h := ringHub(16, serveBatch, 10)
		h.append(revEntries(11, 3))
		h.append(revEntries(12, 10))
		h.append(revEntries(13, 5))
		h.end(errWatch, true) // subscribers drain, then see the error
		return h
	}
	if h := newRing(); h.covered != 11 || h.head != 2 || h.tail != 18 {
		t.Fatalf("ring covers after %d, holds [%d, %d); want 11, [2, 18)", h.covered, h.head, h.tail)
	}
	pos := func(rev int64, seq uint32) *models.EventPosition {
		return &models.EventPosition{Revision: rev, Seq: seq}
	}
	tests := []struct {
		name     string
		after    *models.EventPosition
		keep     func(*models.TaskEvent) bool
		want     []string
		fallback *models.EventPosition // where a private watch takes over; nil when served
	}{
		{name: "before the hub started", after: afterList(9), fallback: afterList(9)},
		{name: "at the hub's start", after: afterList(10), fallback: afterList(10)},
		{name: "inside a revision partly evicted", after: pos(11, 0), fallback: pos(11, 0)},
		{name: "inside a revision partly evicted, past what is held", after: pos(11, 2), fallback: pos(11, 2)},
		{name: "after the partly evicted revision", after: afterList(11), want: concat(span(12, 0, 9, 1), span(13, 0, 4, 1))},
		{name: "inside a held revision", after: pos(12, 4), want: concat(span(12, 5, 9, 1), span(13, 0, 4, 1))},
		{name: "at the last event held", after: pos(13, 4)},
		{name: "after the last revision held", after: afterList(13)},
		{name: "in the future", after: pos(99, 0)},
		{name: "filtered: seqs count kept events", after: afterList(11), keep: evenGuid,
			want: concat(span(12, 0, 4, 2), span(13, 0, 2, 2))},
		{name: "filtered: resume inside a revision by filtered seq", after: pos(12, 2), keep: evenGuid,
			want: concat(span(12, 3, 4, 2), span(13, 0, 2, 2))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, from, err := serveAll(newRing(), tt.after, tt.keep, nil)
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("sent %v\nwant %v", got, tt.want)
			}
			if tt.fallback != nil {
				if err != nil || from == nil || from.GetRevision() != tt.fallback.GetRevision() || from.GetSeq() != tt.fallback.GetSeq() {
					t.Errorf("ended with (%v, %v), want to continue privately from %v", from, err, tt.fallback)
				}
				return
			}
			if from != nil || !errors.Is(err, errWatch) {
				t.Errorf("ended with (%v, %v), want the watch's error after draining", from, err)
			}
		})
	}
}

// TestHubServeLagging: a subscriber overtaken by eviction stops at the last
// position it dealt with (here in the middle of a revision, where its copy
// of the ring ended), which moves past revisions it filtered out entirely;
// a closed hub ends its subscribers at once.
func TestHubServeLagging(t *testing.T) {
	// Room for 8, copied out 3 at a time.
	fill := func() *hub[*models.TaskEvent] {
		h := ringHub(8, 3, 10)
		h.append(revEntries(11, 2))
		h.append(revEntries(12, 4))
		return h
	}
	overtake := func(h *hub[*models.TaskEvent]) func(int) {
		return func(n int) {
			if n == 1 { // while the subscriber sends what it copied out
				h.append(revEntries(13, 4))
				h.append(revEntries(14, 4))
			}
		}
	}
	tests := []struct {
		name string
		keep func(*models.TaskEvent) bool
		want []string
		from *models.EventPosition
	}{
		{name: "mid-revision", want: concat(span(11, 0, 1, 1), span(12, 0, 0, 1)), from: &models.EventPosition{Revision: 12, Seq: 0}},
		{
			// Only 11/0 passes; reaching 12 proves 11 done.
			name: "past filtered revisions",
			keep: func(e *models.TaskEvent) bool { return e.GetTaskCreated().GetTask().GetTaskGuid() == "11/0" },
			want: []string{"11/0 11/0"},
			from: afterList(11),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := fill()
			got, from, err := serveAll(h, afterList(10), tt.keep, overtake(h))
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("sent %v, want %v", got, tt.want)
			}
			if err != nil || from.GetRevision() != tt.from.GetRevision() || from.GetSeq() != tt.from.GetSeq() {
				t.Errorf("ended with (%v, %v), want a private watch from %v", from, err, tt.from)
			}
			if n := h.stats.lagged.Load(); n != 1 {
				t.Errorf("lagged = %d, want 1", n)
			}
		})
	}

	t.Run("closed", func(t *testing.T) {
		h := fill()
		h.stop(errClosed)
		if got, from, err := serveAll(h, afterList(10), nil, nil); len(got) != 0 || from != nil || !errors.Is(err, errClosed) {
			t.Errorf("sent %v, ended (%v, %v); want nothing and the close error", got, from, err)
		}
	})
}
