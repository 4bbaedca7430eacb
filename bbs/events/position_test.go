package events

import (
	"context"
	"errors"
	"fmt"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/gavel-scheduler/gavel/proto/models"
)

func TestPositioner(t *testing.T) {
	type step struct {
		rev     int64
		seq     uint32
		deliver bool
	}
	tests := []struct {
		name  string
		after *models.EventPosition
		revs  []int64
		want  []step
	}{
		{
			name: "fresh stream numbers within each revision",
			revs: []int64{5, 5, 5, 6, 8, 8},
			want: []step{{5, 0, true}, {5, 1, true}, {5, 2, true}, {6, 0, true}, {8, 0, true}, {8, 1, true}},
		},
		{
			name:  "resume mid-revision drops up to and including the seq",
			after: &models.EventPosition{Revision: 5, Seq: 1},
			revs:  []int64{5, 5, 5, 6},
			want:  []step{{5, 0, false}, {5, 1, false}, {5, 2, true}, {6, 0, true}},
		},
		{
			name:  "resume after a whole revision",
			after: afterList(5),
			revs:  []int64{5, 5, 7},
			want:  []step{{5, 0, false}, {5, 1, false}, {7, 0, true}},
		},
		{
			name:  "revision zero means no resume point",
			after: &models.EventPosition{},
			revs:  []int64{3},
			want:  []step{{3, 0, true}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPositioner(tt.after)
			for i, rev := range tt.revs {
				pos, deliver := p.next(rev)
				if got := (step{pos.GetRevision(), pos.GetSeq(), deliver}); got != tt.want[i] {
					t.Errorf("event %d: got %+v, want %+v", i, got, tt.want[i])
				}
			}
		})
	}
}

// TestPump covers watch responses a single local etcd does not produce on
// demand: one revision's events split over two responses (which etcd does
// when it fragments large responses), compaction, and a closed channel.
func TestPump(t *testing.T) {
	task := func(guid string, rev int64) *clientv3.Event {
		return putEvent(testKeys.Task(guid), nil, mustMarshal(t, &models.Task{TaskGuid: guid}), rev)
	}
	derive := func(ev *clientv3.Event) ([]*models.TaskEvent, error) { return DeriveTask(testKeys, ev) }
	run := func(after *models.EventPosition, resps ...clientv3.WatchResponse) ([]string, error) {
		ch := make(chan clientv3.WatchResponse, len(resps))
		for _, r := range resps {
			ch <- r
		}
		close(ch)
		var got []string
		err := pump(context.Background(), ch, "/tasks/", after, derive, func(e *models.TaskEvent, p *models.EventPosition) error {
			got = append(got, fmt.Sprintf("%s@%d/%d", e.GetTaskCreated().GetTask().GetTaskGuid(), p.GetRevision(), p.GetSeq()))
			return nil
		})
		return got, err
	}
	split := []clientv3.WatchResponse{
		{Events: []*clientv3.Event{task("a", 5), task("b", 5)}},
		{Events: []*clientv3.Event{task("c", 5), task("d", 6)}},
	}

	tests := []struct {
		name    string
		after   *models.EventPosition
		resps   []clientv3.WatchResponse
		want    []string
		wantErr error
	}{
		{
			name:    "numbering continues across responses",
			resps:   split,
			want:    []string{"a@5/0", "b@5/1", "c@5/2", "d@6/0"},
			wantErr: models.ErrUnavailable,
		},
		{
			name:    "resume point inside the first part",
			after:   &models.EventPosition{Revision: 5, Seq: 0},
			resps:   split,
			want:    []string{"b@5/1", "c@5/2", "d@6/0"},
			wantErr: models.ErrUnavailable,
		},
		{
			name:    "resume point inside the second part",
			after:   &models.EventPosition{Revision: 5, Seq: 2},
			resps:   split,
			want:    []string{"d@6/0"},
			wantErr: models.ErrUnavailable,
		},
		{
			name:    "compacted",
			after:   &models.EventPosition{Revision: 3},
			resps:   []clientv3.WatchResponse{{CompactRevision: 9, Canceled: true}},
			wantErr: models.ErrCompacted,
		},
		{
			name:    "cancelled by the server",
			resps:   []clientv3.WatchResponse{{Events: []*clientv3.Event{task("a", 5)}}, {Canceled: true}},
			want:    []string{"a@5/0"},
			wantErr: models.ErrUnavailable,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := run(tt.after, tt.resps...)
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("err = %v, want %v", err, tt.wantErr)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("events = %v, want %v", got, tt.want)
			}
		})
	}
}
