package db

import (
	"context"
	"errors"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"

	"github.com/gavel-scheduler/gavel/proto/models"
)

// TaskFilter selects tasks; empty fields match everything.
type TaskFilter struct {
	Domain string
	CellID string
}

func notFoundTask(guid string) error {
	return models.NewError(models.TypeResourceNotFound, "task %q not found", guid)
}

// taskMutateFunc decides the next value of a task (nil deletes it), or
// returns errNoChange or a domain error. It must not modify cur.
type taskMutateFunc func(cur *models.Task) (*models.Task, error)

// mutateTask applies fn to one task in a transaction guarded by its
// ModRevision, retrying on a lost race with the value read back.
func (s *Store) mutateTask(ctx context.Context, guid string, fn taskMutateFunc) (before, after *models.Task, err error) {
	key := s.keys.Task(guid)
	resp, err := s.client.Get(ctx, key)
	if err != nil {
		return nil, nil, fmt.Errorf("read task %s: %w", guid, err)
	}
	kvs := resp.Kvs
	for range maxAttempts {
		if len(kvs) == 0 {
			return nil, nil, notFoundTask(guid)
		}
		cur, err := decode[models.Task](kvs[0])
		if err != nil {
			return nil, nil, err
		}
		next, err := fn(cur)
		if errors.Is(err, errNoChange) {
			return cur, cur, nil
		}
		if err != nil {
			return cur, nil, err
		}
		op := clientv3.OpDelete(key)
		if next != nil {
			next.UpdatedAt = s.nowNanos()
			op = clientv3.OpPut(key, string(marshal(next)))
		}
		out := s.batch.commit(ctx,
			[]clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", kvs[0].ModRevision)},
			[]clientv3.Op{op}, []clientv3.Op{clientv3.OpGet(key)})
		if out.err != nil {
			return nil, nil, fmt.Errorf("write task %s: %w", guid, out.err)
		}
		if out.succeeded {
			return cur, next, nil
		}
		kvs = out.responses[0].GetResponseRange().Kvs
	}
	return nil, nil, conflictErr(key)
}

func clone(t *models.Task) *models.Task { return proto.Clone(t).(*models.Task) }

// DesireTask stores a new PENDING task.
func (s *Store) DesireTask(ctx context.Context, guid, domain string, def *models.TaskDefinition) (*models.Task, error) {
	now := s.nowNanos()
	task := &models.Task{
		TaskGuid:       guid,
		Domain:         domain,
		TaskDefinition: def,
		CreatedAt:      now,
		UpdatedAt:      now,
		State:          models.Task_PENDING,
	}
	key := s.keys.Task(guid)
	resp, err := s.client.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string(marshal(task)))).Commit()
	if err != nil {
		return nil, fmt.Errorf("desire task %s: %w", guid, err)
	}
	if !resp.Succeeded {
		return nil, models.NewError(models.TypeResourceExists, "task %q already exists", guid)
	}
	return task, nil
}

// Task returns one task.
func (s *Store) Task(ctx context.Context, guid string) (*models.Task, error) {
	resp, err := s.client.Get(ctx, s.keys.Task(guid))
	if err != nil {
		return nil, fmt.Errorf("read task %s: %w", guid, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, notFoundTask(guid)
	}
	return decode[models.Task](resp.Kvs[0])
}

// Tasks lists tasks matching f, with the revision they were read at.
func (s *Store) Tasks(ctx context.Context, f TaskFilter) ([]*models.Task, int64, error) {
	resp, err := s.client.Get(ctx, s.keys.Tasks(), clientv3.WithPrefix())
	if err != nil {
		return nil, 0, fmt.Errorf("list tasks: %w", err)
	}
	out := make([]*models.Task, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		t, err := decode[models.Task](kv)
		if err != nil {
			s.logger.Warn("skipping undecodable task", "key", string(kv.Key), "error", err)
			continue
		}
		if (f.Domain == "" || t.Domain == f.Domain) && (f.CellID == "" || t.CellId == f.CellID) {
			out = append(out, t)
		}
	}
	return out, resp.Header.Revision, nil
}

// StartTask moves a PENDING task to RUNNING on a cell. shouldStart is false
// (with no error) when the task already runs on that cell.
func (s *Store) StartTask(ctx context.Context, guid, cellID string) (before, after *models.Task, shouldStart bool, err error) {
	before, after, err = s.mutateTask(ctx, guid, func(cur *models.Task) (*models.Task, error) {
		if cur.State == models.Task_RUNNING && cur.CellId == cellID {
			return nil, errNoChange
		}
		if err := cur.ValidateTransitionTo(models.Task_RUNNING); err != nil {
			return nil, err
		}
		next := clone(cur)
		next.State = models.Task_RUNNING
		next.CellId = cellID
		return next, nil
	})
	return before, after, err == nil && before != nil && before.State == models.Task_PENDING, err
}

// completed returns cur moved to COMPLETED with the given outcome.
func (s *Store) completed(cur *models.Task, failed bool, reason, result string) *models.Task {
	next := clone(cur)
	next.State = models.Task_COMPLETED
	next.Failed = failed
	next.FailureReason = models.Truncate(reason, models.MaxReasonLength)
	next.Result = result
	next.FirstCompletedAt = s.nowNanos()
	next.CellId = ""
	return next
}

// CancelTask completes a PENDING or RUNNING task as failed ("task was
// cancelled"). before keeps the cell the task ran on, so the caller can tell
// that cell's rep.
func (s *Store) CancelTask(ctx context.Context, guid string) (before, after *models.Task, err error) {
	return s.failTask(ctx, guid, "task was cancelled")
}

// FailTask completes a PENDING or RUNNING task as failed.
func (s *Store) FailTask(ctx context.Context, guid, reason string) (before, after *models.Task, err error) {
	return s.failTask(ctx, guid, reason)
}

func (s *Store) failTask(ctx context.Context, guid, reason string) (before, after *models.Task, err error) {
	return s.mutateTask(ctx, guid, func(cur *models.Task) (*models.Task, error) {
		if err := cur.ValidateCancelOrFail(); err != nil {
			return nil, err
		}
		return s.completed(cur, true, reason, ""), nil
	})
}

// RejectTask sends a PENDING or RUNNING task back to PENDING with the reason,
// counting the rejection; once it has been rejected MaxTaskRetries times
// before, this rejection completes it as failed with the reason instead.
func (s *Store) RejectTask(ctx context.Context, guid, reason string) (before, after *models.Task, err error) {
	return s.mutateTask(ctx, guid, func(cur *models.Task) (*models.Task, error) {
		if err := cur.ValidateReject(); err != nil {
			return nil, err
		}
		if cur.RejectionCount >= s.maxTaskRetries {
			next := s.completed(cur, true, reason, "")
			next.RejectionCount++
			next.RejectionReason = models.Truncate(reason, models.MaxReasonLength)
			return next, nil
		}
		next := clone(cur)
		next.State = models.Task_PENDING
		next.CellId = ""
		next.RejectionCount++
		next.RejectionReason = models.Truncate(reason, models.MaxReasonLength)
		return next, nil
	})
}

// CompleteTask records a RUNNING task's outcome, reported by the cell it
// runs on.
func (s *Store) CompleteTask(ctx context.Context, guid, cellID string, failed bool, reason, result string) (before, after *models.Task, err error) {
	return s.mutateTask(ctx, guid, func(cur *models.Task) (*models.Task, error) {
		if cur.State == models.Task_RUNNING && cur.CellId != cellID {
			return nil, models.NewError(models.TypeRunningOnDifferentCell,
				"task %s runs on cell %q, not %q", guid, cur.CellId, cellID)
		}
		if err := cur.ValidateTransitionTo(models.Task_COMPLETED); err != nil {
			return nil, err
		}
		return s.completed(cur, failed, reason, result), nil
	})
}

// ResolvingTask marks a COMPLETED task as being resolved (its result is
// being handed to the client), so only one resolver acts on it.
func (s *Store) ResolvingTask(ctx context.Context, guid string) (before, after *models.Task, err error) {
	return s.mutateTask(ctx, guid, func(cur *models.Task) (*models.Task, error) {
		if err := cur.ValidateTransitionTo(models.Task_RESOLVING); err != nil {
			return nil, err
		}
		next := clone(cur)
		next.State = models.Task_RESOLVING
		return next, nil
	})
}

// UnresolveTask puts a RESOLVING task back to COMPLETED, when its resolver
// gave up, so a later pass can try again.
func (s *Store) UnresolveTask(ctx context.Context, guid string) (before, after *models.Task, err error) {
	return s.mutateTask(ctx, guid, func(cur *models.Task) (*models.Task, error) {
		if cur.State != models.Task_RESOLVING {
			return nil, models.NewError(models.TypeInvalidStateTransition, "task %s: cannot go from %s to COMPLETED", guid, cur.State)
		}
		next := clone(cur)
		next.State = models.Task_COMPLETED
		return next, nil
	})
}

// DeleteTask deletes a RESOLVING task.
func (s *Store) DeleteTask(ctx context.Context, guid string) (before *models.Task, err error) {
	before, _, err = s.mutateTask(ctx, guid, func(cur *models.Task) (*models.Task, error) {
		if cur.State != models.Task_RESOLVING {
			return nil, models.NewError(models.TypeInvalidStateTransition,
				"task %s: only a RESOLVING task can be deleted, it is %s", guid, cur.State)
		}
		return nil, nil
	})
	return before, err
}
