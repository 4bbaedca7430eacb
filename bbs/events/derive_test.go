package events

import (
	"strings"
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/gavel-scheduler/gavel/bbs/db"
	"github.com/gavel-scheduler/gavel/proto/models"

	"github.com/google/go-cmp/cmp"
)

var testKeys = db.NewKeys("/test")

// putEvent is the watch event of a put at rev; prev nil makes it a creation.
func putEvent(key string, prev, cur []byte, rev int64) *clientv3.Event {
	ev := &clientv3.Event{
		Type: clientv3.EventTypePut,
		Kv:   &mvccpb.KeyValue{Key: []byte(key), Value: cur, CreateRevision: rev, ModRevision: rev, Version: 1},
	}
	if prev != nil {
		ev.Kv.CreateRevision = rev - 10
		ev.Kv.Version = 2
		ev.PrevKv = &mvccpb.KeyValue{Key: []byte(key), Value: prev, CreateRevision: rev - 10, ModRevision: rev - 1, Version: 1}
	}
	return ev
}

func deleteEvent(key string, prev []byte, rev int64) *clientv3.Event {
	ev := &clientv3.Event{
		Type: clientv3.EventTypeDelete,
		Kv:   &mvccpb.KeyValue{Key: []byte(key), ModRevision: rev},
	}
	if prev != nil {
		ev.PrevKv = &mvccpb.KeyValue{Key: []byte(key), Value: prev, CreateRevision: rev - 10, ModRevision: rev - 1, Version: 1}
	}
	return ev
}

func mustMarshal(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func schedInfo(guid string, instances int32) *models.DesiredLRPSchedulingInfo {
	return &models.DesiredLRPSchedulingInfo{
		DesiredLrpKey: &models.DesiredLRPKey{ProcessGuid: guid, Domain: "d"},
		Instances:     instances,
	}
}

// actual builds an actual LRP row; an empty cell means no instance.
func actual(guid string, index int32, state models.ActualLRP_State, cell string, crashes int32) *models.ActualLRP {
	l := &models.ActualLRP{
		ActualLrpKey: &models.ActualLRPKey{ProcessGuid: guid, Index: index, Domain: "d"},
		State:        state,
		CrashCount:   crashes,
		Since:        1000 + int64(crashes),
	}
	if cell != "" {
		l.ActualLrpInstanceKey = &models.ActualLRPInstanceKey{InstanceGuid: "ig-" + cell, CellId: cell}
	}
	if crashes > 0 {
		l.CrashReason = "boom"
	}
	return l
}

func created(l *models.ActualLRP) *models.LRPEvent { return instanceCreated(l) }
func removed(l *models.ActualLRP) *models.LRPEvent { return instanceRemoved(l) }
func changed(before, after *models.ActualLRP) *models.LRPEvent {
	return &models.LRPEvent{Event: &models.LRPEvent_ActualLrpInstanceChanged{
		ActualLrpInstanceChanged: &models.ActualLRPInstanceChangedEvent{Before: before, After: after},
	}}
}
func crashed(before, after *models.ActualLRP) *models.LRPEvent {
	return &models.LRPEvent{Event: &models.LRPEvent_ActualLrpCrashed{ActualLrpCrashed: &models.ActualLRPCrashedEvent{
		ActualLrpKey:         after.GetActualLrpKey(),
		ActualLrpInstanceKey: before.GetActualLrpInstanceKey(),
		CrashCount:           after.GetCrashCount(),
		CrashReason:          after.GetCrashReason(),
		Since:                after.GetSince(),
	}}}
}

func TestDeriveLRP(t *testing.T) {
	var (
		aKey    = testKeys.ActualLRP("web", 0, models.ActualLRP_ORDINARY)
		dKey    = testKeys.SchedulingInfo("web")
		d1      = schedInfo("web", 1)
		d2      = schedInfo("web", 3)
		unclaim = actual("web", 0, models.ActualLRP_UNCLAIMED, "", 0)
		claimed = actual("web", 0, models.ActualLRP_CLAIMED, "cell-a", 0)
		running = actual("web", 0, models.ActualLRP_RUNNING, "cell-a", 0)
		// A crash with an immediate restart: the row goes straight back to
		// UNCLAIMED, instance cleared, count up.
		restarted = actual("web", 0, models.ActualLRP_UNCLAIMED, "", 1)
		// A crash that waits for convergence: CRASHED, instance cleared.
		crashedRow = actual("web", 0, models.ActualLRP_CRASHED, "", 3)
		running2   = actual("web", 0, models.ActualLRP_RUNNING, "cell-a", 2)
		// Convergence restarts a CRASHED row: count kept, still no instance.
		restartOfCrashed = actual("web", 0, models.ActualLRP_UNCLAIMED, "", 3)
		placeErr         = func() *models.ActualLRP {
			l := actual("web", 0, models.ActualLRP_UNCLAIMED, "", 0)
			l.PlacementError = "insufficient resources"
			return l
		}()
		resetCount = actual("web", 0, models.ActualLRP_UNCLAIMED, "", 1)
		running5   = actual("web", 0, models.ActualLRP_RUNNING, "cell-a", 5)
		runningB   = actual("web", 0, models.ActualLRP_RUNNING, "cell-b", 0)
	)
	m := func(p proto.Message) []byte { return mustMarshal(t, p) }

	tests := []struct {
		name    string
		ev      *clientv3.Event
		want    []*models.LRPEvent
		wantErr string
	}{
		{
			name: "desired created",
			ev:   putEvent(dKey, nil, m(d1), 5),
			want: []*models.LRPEvent{{Event: &models.LRPEvent_DesiredLrpCreated{DesiredLrpCreated: &models.DesiredLRPCreatedEvent{DesiredLrp: d1}}}},
		},
		{
			name: "desired changed",
			ev:   putEvent(dKey, m(d1), m(d2), 5),
			want: []*models.LRPEvent{{Event: &models.LRPEvent_DesiredLrpChanged{DesiredLrpChanged: &models.DesiredLRPChangedEvent{Before: d1, After: d2}}}},
		},
		{
			name: "desired removed",
			ev:   deleteEvent(dKey, m(d2), 5),
			want: []*models.LRPEvent{{Event: &models.LRPEvent_DesiredLrpRemoved{DesiredLrpRemoved: &models.DesiredLRPRemovedEvent{DesiredLrp: d2}}}},
		},
		{
			name: "actual created",
			ev:   putEvent(aKey, nil, m(unclaim), 5),
			want: []*models.LRPEvent{created(unclaim)},
		},
		{
			name: "unclaimed to claimed is a change",
			ev:   putEvent(aKey, m(unclaim), m(claimed), 5),
			want: []*models.LRPEvent{changed(unclaim, claimed)},
		},
		{
			name: "claimed to running is a change",
			ev:   putEvent(aKey, m(claimed), m(running), 5),
			want: []*models.LRPEvent{changed(claimed, running)},
		},
		{
			name: "unclaimed to unclaimed without an instance is a change",
			ev:   putEvent(aKey, m(unclaim), m(placeErr), 5),
			want: []*models.LRPEvent{changed(unclaim, placeErr)},
		},
		{
			name: "instance cleared without a crash is removed then created",
			ev:   putEvent(aKey, m(running), m(unclaim), 5),
			want: []*models.LRPEvent{removed(running), created(unclaim)},
		},
		{
			name: "crash with immediate restart is crashed, removed, created",
			ev:   putEvent(aKey, m(running), m(restarted), 5),
			want: []*models.LRPEvent{crashed(running, restarted), removed(running), created(restarted)},
		},
		{
			name: "crash into CRASHED is crashed then changed",
			ev:   putEvent(aKey, m(running2), m(crashedRow), 5),
			want: []*models.LRPEvent{crashed(running2, crashedRow), changed(running2, crashedRow)},
		},
		{
			name: "restart of a CRASHED row is a change: no instance to remove",
			ev:   putEvent(aKey, m(crashedRow), m(restartOfCrashed), 5),
			want: []*models.LRPEvent{changed(crashedRow, restartOfCrashed)},
		},
		{
			name: "crash count reset is not a crash",
			ev:   putEvent(aKey, m(running5), m(resetCount), 5),
			want: []*models.LRPEvent{removed(running5), created(resetCount)},
		},
		{
			name: "moving cells while running is a change",
			ev:   putEvent(aKey, m(running), m(runningB), 5),
			want: []*models.LRPEvent{changed(running, runningB)},
		},
		{
			name: "actual removed",
			ev:   deleteEvent(aKey, m(running), 5),
			want: []*models.LRPEvent{removed(running)},
		},
		{
			name: "run info yields nothing",
			ev:   putEvent(testKeys.RunInfo("web"), nil, []byte("anything"), 5),
		},
		{
			name: "task key yields nothing",
			ev:   putEvent(testKeys.Task("t"), nil, []byte("anything"), 5),
		},
		{
			name:    "undecodable new value names the key",
			ev:      putEvent(aKey, nil, []byte{0xff, 0xff}, 5),
			wantErr: aKey,
		},
		{
			name:    "undecodable previous value names the key",
			ev:      putEvent(dKey, []byte{0xff, 0xff}, m(d1), 5),
			wantErr: dKey,
		},
		{
			name:    "change without prev kv is refused",
			ev:      func() *clientv3.Event { e := putEvent(aKey, m(unclaim), m(claimed), 5); e.PrevKv = nil; return e }(),
			wantErr: aKey,
		},
		{
			name:    "delete without prev kv is refused",
			ev:      deleteEvent(dKey, nil, 5),
			wantErr: dKey,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DeriveLRP(testKeys, tt.ev)
			checkErr(t, err, tt.wantErr)
			if diff := cmp.Diff(tt.want, got, protocmp.Transform()); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDeriveLRPEventsShareNoMessages(t *testing.T) {
	// The crash event's keys are copies, so a consumer that edits one
	// event cannot change another.
	running := actual("web", 0, models.ActualLRP_RUNNING, "cell-a", 0)
	after := actual("web", 0, models.ActualLRP_UNCLAIMED, "", 1)
	got, err := DeriveLRP(testKeys, putEvent(testKeys.ActualLRP("web", 0, 0), mustMarshal(t, running), mustMarshal(t, after), 5))
	if err != nil {
		t.Fatal(err)
	}
	crash := got[0].GetActualLrpCrashed()
	rm := got[1].GetActualLrpInstanceRemoved().GetActualLrp()
	if crash.GetActualLrpInstanceKey() == rm.GetActualLrpInstanceKey() {
		t.Error("crashed and removed events share the instance key message")
	}
}

func TestDeriveTask(t *testing.T) {
	key := testKeys.Task("t1")
	pending := &models.Task{TaskGuid: "t1", Domain: "d", State: models.Task_PENDING}
	running := &models.Task{TaskGuid: "t1", Domain: "d", State: models.Task_RUNNING, CellId: "cell-a"}
	m := func(p proto.Message) []byte { return mustMarshal(t, p) }

	tests := []struct {
		name    string
		ev      *clientv3.Event
		want    []*models.TaskEvent
		wantErr string
	}{
		{
			name: "created",
			ev:   putEvent(key, nil, m(pending), 5),
			want: []*models.TaskEvent{{Event: &models.TaskEvent_TaskCreated{TaskCreated: &models.TaskCreatedEvent{Task: pending}}}},
		},
		{
			name: "changed",
			ev:   putEvent(key, m(pending), m(running), 5),
			want: []*models.TaskEvent{{Event: &models.TaskEvent_TaskChanged{TaskChanged: &models.TaskChangedEvent{Before: pending, After: running}}}},
		},
		{
			name: "removed",
			ev:   deleteEvent(key, m(running), 5),
			want: []*models.TaskEvent{{Event: &models.TaskEvent_TaskRemoved{TaskRemoved: &models.TaskRemovedEvent{Task: running}}}},
		},
		{
			name: "actual LRP key yields nothing",
			ev:   putEvent(testKeys.ActualLRP("web", 0, 0), nil, []byte("x"), 5),
		},
		{
			name:    "undecodable value names the key",
			ev:      putEvent(key, m(pending), []byte{0xff}, 5),
			wantErr: key,
		},
		{
			name:    "delete without prev kv is refused",
			ev:      deleteEvent(key, nil, 5),
			wantErr: key,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DeriveTask(testKeys, tt.ev)
			checkErr(t, err, tt.wantErr)
			if diff := cmp.Diff(tt.want, got, protocmp.Transform()); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
		})
	}
}

func checkErr(t *testing.T, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Fatalf("unexpected error: %v", err)
	case want != "" && err == nil:
		t.Fatalf("no error, want one containing %q", want)
	case want != "" && !strings.Contains(err.Error(), want):
		t.Fatalf("error %q does not contain %q", err, want)
	}
}

func TestMatchesCell(t *testing.T) {
	onA := actual("web", 0, models.ActualLRP_RUNNING, "cell-a", 0)
	onB := actual("web", 0, models.ActualLRP_RUNNING, "cell-b", 0)
	none := actual("web", 0, models.ActualLRP_UNCLAIMED, "", 0)
	desired := &models.LRPEvent{Event: &models.LRPEvent_DesiredLrpChanged{DesiredLrpChanged: &models.DesiredLRPChangedEvent{Before: schedInfo("web", 1), After: schedInfo("web", 2)}}}

	tests := []struct {
		name string
		ev   *models.LRPEvent
		cell string
		want bool
	}{
		{"no filter keeps everything", created(onB), "", true},
		{"created on the cell", created(onA), "cell-a", true},
		{"created elsewhere", created(onB), "cell-a", false},
		{"created without instance", created(none), "cell-a", false},
		{"changed onto the cell", changed(none, onA), "cell-a", true},
		{"changed off the cell", changed(onA, onB), "cell-a", true},
		{"changed elsewhere", changed(none, onB), "cell-a", false},
		{"removed from the cell", removed(onA), "cell-a", true},
		{"removed elsewhere", removed(onB), "cell-a", false},
		{"crashed on the cell", crashed(onA, none), "cell-a", true},
		{"crashed elsewhere", crashed(onB, none), "cell-a", false},
		{"desired always passes", desired, "cell-a", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := MatchesCell(tt.ev, tt.cell); got != tt.want {
				t.Errorf("MatchesCell = %v, want %v", got, tt.want)
			}
		})
	}
}
