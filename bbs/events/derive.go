// Package events turns the etcd watch on the BBS key space into the LRP and
// Task event streams. Events are derived from each watched change and the
// value it replaced (the watch's prev KV), never from what a handler thought
// it wrote, so a stream cannot drift from what is stored; and every event is
// stamped with its etcd revision, so a client that loses its stream resumes
// from the last position it processed and sees every change exactly once.
//
// derive.go holds the pure part (one etcd event in, stream events out);
// stream.go serves streams (Source) and runs private watches; hub.go shares
// one watch among the subscribers of a Source.
package events

import (
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"

	"github.com/gavel-scheduler/gavel/bbs/db"
	"github.com/gavel-scheduler/gavel/proto/models"
)

// DeriveLRP returns the LRP events one etcd change under keys.LRP() stands
// for, in the order a consumer should apply them. Keys of other kinds yield
// no events. Positions are left unset: numbering belongs to a stream, which
// alone knows which events it keeps.
//
// The watch must carry prev KVs: a change or delete whose previous value is
// missing (only possible when it was compacted away under a lagging watcher)
// is an error rather than an event with a made-up "before".
func DeriveLRP(keys db.Keys, ev *clientv3.Event) ([]*models.LRPEvent, error) {
	key := string(ev.Kv.Key)
	switch keys.Kind(key) {
	case db.KindSchedulingInfo:
		return deriveDesired(key, ev)
	case db.KindActualLRP:
		return deriveActual(key, ev)
	}
	return nil, nil
}

func deriveDesired(key string, ev *clientv3.Event) ([]*models.LRPEvent, error) {
	before, after, err := decodePair(key, ev, func() *models.DesiredLRPSchedulingInfo { return &models.DesiredLRPSchedulingInfo{} })
	if err != nil {
		return nil, err
	}
	switch {
	case before == nil:
		return []*models.LRPEvent{{Event: &models.LRPEvent_DesiredLrpCreated{
			DesiredLrpCreated: &models.DesiredLRPCreatedEvent{DesiredLrp: after},
		}}}, nil
	case after == nil:
		return []*models.LRPEvent{{Event: &models.LRPEvent_DesiredLrpRemoved{
			DesiredLrpRemoved: &models.DesiredLRPRemovedEvent{DesiredLrp: before},
		}}}, nil
	}
	return []*models.LRPEvent{{Event: &models.LRPEvent_DesiredLrpChanged{
		DesiredLrpChanged: &models.DesiredLRPChangedEvent{Before: before, After: after},
	}}}, nil
}

func deriveActual(key string, ev *clientv3.Event) ([]*models.LRPEvent, error) {
	before, after, err := decodePair(key, ev, func() *models.ActualLRP { return &models.ActualLRP{} })
	if err != nil {
		return nil, err
	}
	switch {
	case before == nil:
		return []*models.LRPEvent{instanceCreated(after)}, nil
	case after == nil:
		return []*models.LRPEvent{instanceRemoved(before)}, nil
	}

	var out []*models.LRPEvent
	if after.GetCrashCount() > before.GetCrashCount() {
		// The crash is reported against the instance that crashed, which
		// the row may already have forgotten (a crash that restarts at once
		// leaves the row UNCLAIMED). The keys are copies so that no two
		// events share a message a consumer might edit.
		out = append(out, &models.LRPEvent{Event: &models.LRPEvent_ActualLrpCrashed{
			ActualLrpCrashed: &models.ActualLRPCrashedEvent{
				ActualLrpKey:         proto.CloneOf(after.GetActualLrpKey()),
				ActualLrpInstanceKey: proto.CloneOf(before.GetActualLrpInstanceKey()),
				CrashCount:           after.GetCrashCount(),
				CrashReason:          after.GetCrashReason(),
				Since:                after.GetSince(),
			},
		}})
	}
	if before.GetActualLrpInstanceKey().GetInstanceGuid() != "" && after.GetState() == models.ActualLRP_UNCLAIMED {
		// The instance is gone and the slot waits for a new one: to a
		// consumer keyed by instance that is a removal and a creation,
		// not a change of one instance (diego-notes' event table).
		return append(out, instanceRemoved(before), instanceCreated(after)), nil
	}
	return append(out, &models.LRPEvent{Event: &models.LRPEvent_ActualLrpInstanceChanged{
		ActualLrpInstanceChanged: &models.ActualLRPInstanceChangedEvent{Before: before, After: after},
	}}), nil
}

func instanceCreated(lrp *models.ActualLRP) *models.LRPEvent {
	return &models.LRPEvent{Event: &models.LRPEvent_ActualLrpInstanceCreated{
		ActualLrpInstanceCreated: &models.ActualLRPInstanceCreatedEvent{ActualLrp: lrp},
	}}
}

func instanceRemoved(lrp *models.ActualLRP) *models.LRPEvent {
	return &models.LRPEvent{Event: &models.LRPEvent_ActualLrpInstanceRemoved{
		ActualLrpInstanceRemoved: &models.ActualLRPInstanceRemovedEvent{ActualLrp: lrp},
	}}
}

// DeriveTask returns the task events one etcd change under keys.Tasks()
// stands for; keys of other kinds yield none. Positions are left unset.
func DeriveTask(keys db.Keys, ev *clientv3.Event) ([]*models.TaskEvent, error) {
	key := string(ev.Kv.Key)
	if keys.Kind(key) != db.KindTask {
		return nil, nil
	}
	before, after, err := decodePair(key, ev, func() *models.Task { return &models.Task{} })
	if err != nil {
		return nil, err
	}
	switch {
	case before == nil:
		return []*models.TaskEvent{{Event: &models.TaskEvent_TaskCreated{
			TaskCreated: &models.TaskCreatedEvent{Task: after},
		}}}, nil
	case after == nil:
		return []*models.TaskEvent{{Event: &models.TaskEvent_TaskRemoved{
			TaskRemoved: &models.TaskRemovedEvent{Task: before},
		}}}, nil
	}
	return []*models.TaskEvent{{Event: &models.TaskEvent_TaskChanged{
		TaskChanged: &models.TaskChangedEvent{Before: before, After: after},
	}}}, nil
}

// decodePair decodes the record before and after one change: before is nil
// for a creation, after is nil for a deletion.
func decodePair[M proto.Message](key string, ev *clientv3.Event, newM func() M) (before, after M, err error) {
	var zero M
	decode := func(what string, value []byte) (M, error) {
		m := newM()
		if err := proto.Unmarshal(value, m); err != nil {
			return zero, models.NewError(models.TypeDeserialize, "decode %s value of %s: %v", what, key, err)
		}
		return m, nil
	}
	if ev.Type == clientv3.EventTypePut {
		if after, err = decode("new", ev.Kv.Value); err != nil {
			return zero, zero, err
		}
		if ev.IsCreate() {
			return zero, after, nil
		}
	}
	if ev.PrevKv == nil {
		return zero, zero, fmt.Errorf("%s changed at revision %d without its previous value (watch without prev KV, or compacted)", key, ev.Kv.ModRevision)
	}
	if before, err = decode("previous", ev.PrevKv.Value); err != nil {
		return zero, zero, err
	}
	return before, after, nil
}

// MatchesCell reports whether a stream filtered to cellID keeps e. An empty
// cellID keeps everything. Instance events are kept when the instance was or
// is on the cell (so the cell also hears that an instance left it); crash
// events by the instance that crashed. Desired LRP events always pass: a
// cell-local consumer needs the routes and instance counts of what it runs.
func MatchesCell(e *models.LRPEvent, cellID string) bool {
	if cellID == "" {
		return true
	}
	on := func(lrps ...*models.ActualLRP) bool {
		for _, l := range lrps {
			if l.GetActualLrpInstanceKey().GetCellId() == cellID {
				return true
			}
		}
		return false
	}
	switch ev := e.GetEvent().(type) {
	case *models.LRPEvent_ActualLrpInstanceCreated:
		return on(ev.ActualLrpInstanceCreated.GetActualLrp())
	case *models.LRPEvent_ActualLrpInstanceChanged:
		return on(ev.ActualLrpInstanceChanged.GetBefore(), ev.ActualLrpInstanceChanged.GetAfter())
	case *models.LRPEvent_ActualLrpInstanceRemoved:
		return on(ev.ActualLrpInstanceRemoved.GetActualLrp())
	case *models.LRPEvent_ActualLrpCrashed:
		return ev.ActualLrpCrashed.GetActualLrpInstanceKey().GetCellId() == cellID
	}
	return true
}
