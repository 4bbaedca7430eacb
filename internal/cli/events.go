package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/gavel-scheduler/gavel/proto/models"
)

const afterHelp = "resume after this position: REVISION (everything up to and including that revision, e.g. a list's revision) or REVISION:SEQ (one event, as printed by a previous stream)"

// Default waits between attempts to resume a broken event stream.
const (
	defaultReconnectMin = 250 * time.Millisecond
	defaultReconnectMax = 5 * time.Second
)

func (a *app) lrpEventsCommand() *cobra.Command {
	var cellID, afterFlag string
	cmd := &cobra.Command{
		Use:   "lrp-events",
		Short: "Stream desired and actual LRP events until interrupted",
		Long: "Stream desired and actual LRP events until interrupted (Ctrl-C exits 0).\n" +
			"A dropped connection is resumed from the last event seen, so no event is lost or repeated.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			after, err := parsePosition(afterFlag)
			if err != nil {
				return err
			}
			return a.stream(cmd, func(ctx context.Context, c models.BBSClient, f format, t target) error {
				open := func(ctx context.Context, after *models.EventPosition) (receiver[*models.LRPEvent], error) {
					return c.SubscribeLRPEvents(ctx, &models.SubscribeLRPEventsRequest{CellId: cellID, After: after})
				}
				show := func(ev *models.LRPEvent) error { return a.printEvent(f, ev, lrpEventLine) }
				return follow(ctx, a, t, after, open, show)
			})
		},
	}
	cmd.Flags().StringVarP(&cellID, "cell-id", "c", "", "only actual LRP events of instances on this cell")
	cmd.Flags().StringVar(&afterFlag, "after", "", afterHelp)
	return cmd
}

func (a *app) taskEventsCommand() *cobra.Command {
	var afterFlag string
	cmd := &cobra.Command{
		Use:   "task-events",
		Short: "Stream task events until interrupted",
		Long: "Stream task events until interrupted (Ctrl-C exits 0).\n" +
			"A dropped connection is resumed from the last event seen, so no event is lost or repeated.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			after, err := parsePosition(afterFlag)
			if err != nil {
				return err
			}
			return a.stream(cmd, func(ctx context.Context, c models.BBSClient, f format, t target) error {
				open := func(ctx context.Context, after *models.EventPosition) (receiver[*models.TaskEvent], error) {
					return c.SubscribeTaskEvents(ctx, &models.SubscribeTaskEventsRequest{After: after})
				}
				show := func(ev *models.TaskEvent) error { return a.printEvent(f, ev, taskEventLine) }
				return follow(ctx, a, t, after, open, show)
			})
		},
	}
	cmd.Flags().StringVar(&afterFlag, "after", "", afterHelp)
	return cmd
}

// stream runs a streaming command: no deadline (a stream is meant to run
// for hours), and SIGINT/SIGTERM end it cleanly with status 0.
func (a *app) stream(cmd *cobra.Command, fn func(context.Context, models.BBSClient, format, target) error) error {
	f, err := a.format()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(contextOf(cmd), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return a.withClient(ctx, func(ctx context.Context, c models.BBSClient, t target) error {
		t.timeout = 0
		return fn(ctx, c, f, t)
	})
}

// receiver is the receiving half of a server stream.
type receiver[E any] interface {
	Recv() (E, error)
}

// positioned is an event that knows its place in the stream.
type positioned interface {
	proto.Message
	GetPosition() *models.EventPosition
}

// follow shows every event of a stream until ctx ends. When the stream breaks
// for a transient reason it reopens it after the last position shown, with a
// growing pause, so a BBS restart or a network blip costs no events. A
// failure on the very first attempt is reported instead: that is a wrong
// address or a BBS that is down, and retrying forever would hide it.
func follow[E positioned](
	ctx context.Context,
	a *app,
	t target,
	after *models.EventPosition,
	open func(context.Context, *models.EventPosition) (receiver[E], error),
	show func(E) error,
) error {
	minWait, maxWait := a.reconnectMin, a.reconnectMax
	if minWait <= 0 {
		minWait = defaultReconnectMin
	}
	if maxWait < minWait {
		maxWait = max(defaultReconnectMax, minWait)
	}
	wait := minWait
	established, reported := false, false
	for {
		err := func() error {
			// Each attempt gets its own context so a broken stream's
			// resources are released before the next one starts.
			sctx, cancel := context.WithCancel(ctx)
			defer cancel()
			s, err := open(sctx, after)
			if err != nil {
				return err
			}
			established = true
			for {
				ev, err := s.Recv()
				if err != nil {
					return err
				}
				if p := ev.GetPosition(); p != nil {
					after = p
				}
				wait, reported = minWait, false
				if err := show(ev); err != nil {
					return &outputError{err: err}
				}
			}
		}()
		if interrupted(ctx, err) {
			return nil
		}
		var oerr *outputError
		if errors.As(err, &oerr) {
			return oerr.err
		}
		if !established || !transient(err) {
			return explain(err, t)
		}
		if !reported {
			fmt.Fprintf(a.stderr, "event stream from %s interrupted (%s); resuming after %s\n", t.addr, errorText(err), positionText(after))
			reported = true
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		wait = min(wait*2, maxWait)
	}
}

// outputError marks a failure to write an event (say, a closed pipe), which
// must end the stream rather than be retried as a network problem.
type outputError struct{ err error }

func (e *outputError) Error() string { return e.err.Error() }

// transient reports whether a broken stream is worth reopening: the BBS or
// the network went away, or the BBS ended the stream while shutting down.
func transient(err error) bool {
	return errors.Is(err, io.EOF) || status.Code(err) == codes.Unavailable
}

func errorText(err error) string {
	if errors.Is(err, io.EOF) {
		return "closed by the BBS"
	}
	if st, ok := status.FromError(err); ok {
		return st.Message()
	}
	return err.Error()
}

// parsePosition reads an --after value. A bare REVISION means after every
// event of that revision, which is how a list's revision is followed.
func parsePosition(s string) (*models.EventPosition, error) {
	if s == "" {
		return nil, nil
	}
	revText, seqText, hasSeq := strings.Cut(s, ":")
	rev, err := strconv.ParseInt(revText, 10, 64)
	if err != nil || rev <= 0 {
		return nil, fmt.Errorf("--after %q: REVISION must be a positive number", s)
	}
	seq := uint32(math.MaxUint32)
	if hasSeq {
		n, err := strconv.ParseUint(seqText, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("--after %q: SEQ must be a number, 0 or more", s)
		}
		seq = uint32(n)
	}
	return &models.EventPosition{Revision: rev, Seq: seq}, nil
}

// positionText renders a position the way --after reads it back.
func positionText(p *models.EventPosition) string {
	switch {
	case p == nil:
		return "the current revision"
	case p.GetSeq() == math.MaxUint32:
		return strconv.FormatInt(p.GetRevision(), 10)
	default:
		return fmt.Sprintf("%d:%d", p.GetRevision(), p.GetSeq())
	}
}

// printEvent writes one event: a JSON line for programs, a short line for
// people.
func (a *app) printEvent(f format, ev positioned, line func(positioned) string) error {
	if f == formatJSON {
		return writeJSONLine(a.stdout, ev)
	}
	_, err := fmt.Fprintln(a.stdout, line(ev))
	return err
}

// eventLine lays out the human form of an event: position, kind, subject,
// then what changed.
func eventLine(pos *models.EventPosition, kind, subject, detail string) string {
	return strings.TrimRight(fmt.Sprintf("%-12s %-16s %-24s %s", positionText(pos), kind, subject, detail), " ")
}

func lrpEventLine(e positioned) string {
	ev := e.(*models.LRPEvent)
	pos := ev.GetPosition()
	switch x := ev.GetEvent().(type) {
	case *models.LRPEvent_DesiredLrpCreated:
		d := x.DesiredLrpCreated.GetDesiredLrp()
		return eventLine(pos, "desired-created", d.GetDesiredLrpKey().GetProcessGuid(),
			fmt.Sprintf("domain=%s instances=%d", d.GetDesiredLrpKey().GetDomain(), d.GetInstances()))
	case *models.LRPEvent_DesiredLrpChanged:
		before, after := x.DesiredLrpChanged.GetBefore(), x.DesiredLrpChanged.GetAfter()
		return eventLine(pos, "desired-changed", after.GetDesiredLrpKey().GetProcessGuid(), desiredChange(before, after))
	case *models.LRPEvent_DesiredLrpRemoved:
		return eventLine(pos, "desired-removed", x.DesiredLrpRemoved.GetDesiredLrp().GetDesiredLrpKey().GetProcessGuid(), "")
	case *models.LRPEvent_ActualLrpInstanceCreated:
		lrp := x.ActualLrpInstanceCreated.GetActualLrp()
		return eventLine(pos, "actual-created", instanceName(lrp.GetActualLrpKey()), actualDetail(lrp))
	case *models.LRPEvent_ActualLrpInstanceChanged:
		before, after := x.ActualLrpInstanceChanged.GetBefore(), x.ActualLrpInstanceChanged.GetAfter()
		detail := actualDetail(after)
		if before.GetState() != after.GetState() {
			detail = before.GetState().String() + " -> " + detail
		}
		return eventLine(pos, "actual-changed", instanceName(after.GetActualLrpKey()), detail)
	case *models.LRPEvent_ActualLrpInstanceRemoved:
		lrp := x.ActualLrpInstanceRemoved.GetActualLrp()
		return eventLine(pos, "actual-removed", instanceName(lrp.GetActualLrpKey()), "was "+actualDetail(lrp))
	case *models.LRPEvent_ActualLrpCrashed:
		c := x.ActualLrpCrashed
		detail := fmt.Sprintf("crash #%d", c.GetCrashCount())
		if c.GetCrashReason() != "" {
			detail += ": " + c.GetCrashReason()
		}
		return eventLine(pos, "actual-crashed", instanceName(c.GetActualLrpKey()), detail)
	default:
		return eventLine(pos, "unknown", "", "")
	}
}

func instanceName(k *models.ActualLRPKey) string {
	return fmt.Sprintf("%s/%d", k.GetProcessGuid(), k.GetIndex())
}

// actualDetail is an instance's state and where it is, the facts that
// change as an instance moves through its lifecycle.
func actualDetail(lrp *models.ActualLRP) string {
	parts := []string{lrp.GetState().String()}
	if cell := lrp.GetActualLrpInstanceKey().GetCellId(); cell != "" {
		parts = append(parts, "cell="+cell)
	}
	if addr := lrp.GetActualLrpNetInfo().GetAddress(); addr != "" {
		parts = append(parts, "address="+addr)
	}
	if p := ports(lrp.GetActualLrpNetInfo().GetPorts()); p != "" {
		parts = append(parts, "ports="+p)
	}
	if lrp.GetPresence() != models.ActualLRP_ORDINARY {
		parts = append(parts, lrp.GetPresence().String())
	}
	if lrp.GetPlacementError() != "" {
		parts = append(parts, "placement_error="+strconv.Quote(lrp.GetPlacementError()))
	}
	return strings.Join(parts, " ")
}

// desiredChange names what an update changed; routes and tags are only
// flagged, since their contents do not fit on one line.
func desiredChange(before, after *models.DesiredLRPSchedulingInfo) string {
	var parts []string
	if before.GetInstances() != after.GetInstances() {
		parts = append(parts, fmt.Sprintf("instances %d -> %d", before.GetInstances(), after.GetInstances()))
	}
	if before.GetAnnotation() != after.GetAnnotation() {
		parts = append(parts, "annotation changed")
	}
	if !mapsEqual(before.GetRoutes(), after.GetRoutes()) {
		parts = append(parts, "routes changed")
	}
	if !mapsEqual(before.GetMetricTags(), after.GetMetricTags()) {
		parts = append(parts, "metric tags changed")
	}
	if len(parts) == 0 {
		return "updated"
	}
	return strings.Join(parts, ", ")
}

func mapsEqual[V proto.Message](a, b map[string]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, va := range a {
		vb, ok := b[k]
		if !ok || !proto.Equal(va, vb) {
			return false
		}
	}
	return true
}

func taskEventLine(e positioned) string {
	ev := e.(*models.TaskEvent)
	pos := ev.GetPosition()
	switch x := ev.GetEvent().(type) {
	case *models.TaskEvent_TaskCreated:
		t := x.TaskCreated.GetTask()
		return eventLine(pos, "task-created", t.GetTaskGuid(), t.GetState().String()+" domain="+t.GetDomain())
	case *models.TaskEvent_TaskChanged:
		before, after := x.TaskChanged.GetBefore(), x.TaskChanged.GetAfter()
		detail := taskDetail(after)
		if before.GetState() != after.GetState() {
			detail = before.GetState().String() + " -> " + detail
		}
		return eventLine(pos, "task-changed", after.GetTaskGuid(), detail)
	case *models.TaskEvent_TaskRemoved:
		t := x.TaskRemoved.GetTask()
		return eventLine(pos, "task-removed", t.GetTaskGuid(), "was "+t.GetState().String())
	default:
		return eventLine(pos, "unknown", "", "")
	}
}

func taskDetail(t *models.Task) string {
	parts := []string{t.GetState().String()}
	if t.GetCellId() != "" {
		parts = append(parts, "cell="+t.GetCellId())
	}
	if t.GetFailed() {
		parts = append(parts, "failed="+strconv.Quote(t.GetFailureReason()))
	}
	return strings.Join(parts, " ")
}
