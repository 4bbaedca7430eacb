package cli

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/gavel-scheduler/gavel/proto/models"
)

// scriptedStream replays events and then ends with err.
type scriptedStream struct {
	events []*models.TaskEvent
	err    error
}

func (s *scriptedStream) Recv() (*models.TaskEvent, error) {
	if len(s.events) == 0 {
		return nil, s.err
	}
	ev := s.events[0]
	s.events = s.events[1:]
	return ev, nil
}

// attempt is what one call to open does: fail, or return a stream.
type attempt struct {
	openErr error
	stream  *scriptedStream
}

type errWriter struct{}

func (errWriter) Write([]byte) (int, error) { return 0, errors.New("broken pipe") }

func TestFollow(t *testing.T) {
	unavailable := status.Error(codes.Unavailable, "connection reset")
	ev := func(rev int64, seq uint32) *models.TaskEvent { return taskEvent(rev, seq, "t") }
	tests := []struct {
		name      string
		attempts  []attempt
		stdout    io.Writer
		wantErr   string
		wantAfter []string // positionText of after, per open call
		wantLines int
	}{
		{
			name: "resumes after the last event on unavailable and EOF",
			attempts: []attempt{
				{stream: &scriptedStream{events: []*models.TaskEvent{ev(5, 0), ev(5, 1)}, err: unavailable}},
				{openErr: unavailable},
				{stream: &scriptedStream{events: []*models.TaskEvent{ev(6, 0)}, err: io.EOF}},
				{stream: &scriptedStream{err: status.Error(codes.Internal, "boom")}},
			},
			wantErr:   "BBS error (Internal): boom",
			wantAfter: []string{"the current revision", "5:1", "5:1", "6:0"},
			wantLines: 3,
		},
		{
			name:      "a first failure is reported, not retried",
			attempts:  []attempt{{openErr: unavailable}},
			wantErr:   "cannot reach the BBS at bbs:1",
			wantAfter: []string{"the current revision"},
		},
		{
			name:      "compaction is not retried",
			attempts:  []attempt{{stream: &scriptedStream{err: status.Error(codes.OutOfRange, "revision 3 has been compacted")}}},
			wantErr:   "revision 3 has been compacted\nhint:",
			wantAfter: []string{"the current revision"},
		},
		{
			name:      "a broken stdout ends the stream",
			attempts:  []attempt{{stream: &scriptedStream{events: []*models.TaskEvent{ev(5, 0)}, err: unavailable}}},
			stdout:    errWriter{},
			wantErr:   "broken pipe",
			wantAfter: []string{"the current revision"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			a := &app{stdout: &out, stderr: &errOut, reconnectMin: time.Millisecond, reconnectMax: 2 * time.Millisecond}
			if tt.stdout != nil {
				a.stdout = tt.stdout
			}
			var afters []string
			open := func(_ context.Context, after *models.EventPosition) (receiver[*models.TaskEvent], error) {
				afters = append(afters, positionText(after))
				if len(afters) > len(tt.attempts) {
					t.Fatalf("open called %d times, scripted %d", len(afters), len(tt.attempts))
				}
				at := tt.attempts[len(afters)-1]
				if at.openErr != nil {
					return nil, at.openErr
				}
				return at.stream, nil
			}
			show := func(e *models.TaskEvent) error { return a.printEvent(formatJSON, e, taskEventLine) }
			err := follow(context.Background(), a, target{addr: "bbs:1"}, nil, open, show)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("follow() = %v, want %q", err, tt.wantErr)
			}
			if strings.Join(afters, " | ") != strings.Join(tt.wantAfter, " | ") {
				t.Errorf("opened after %q, want %q", afters, tt.wantAfter)
			}
			if got := strings.Count(out.String(), "\n"); got != tt.wantLines {
				t.Errorf("printed %d events, want %d", got, tt.wantLines)
			}
		})
	}
}

func TestFollowStopsWhenInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	a := &app{stdout: io.Discard, stderr: io.Discard}
	open := func(ctx context.Context, _ *models.EventPosition) (receiver[*models.TaskEvent], error) {
		cancel() // the user presses Ctrl-C while the stream is open
		return &scriptedStream{err: status.Error(codes.Canceled, "context canceled")}, nil
	}
	if err := follow(ctx, a, target{}, nil, open, func(*models.TaskEvent) error { return nil }); err != nil {
		t.Fatalf("follow() = %v, want nil on interrupt", err)
	}
}
