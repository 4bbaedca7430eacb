package bbs

import (
	"context"

	"github.com/gavel-scheduler/gavel/bbs/db"
	"github.com/gavel-scheduler/gavel/proto/models"
)

// DesireTask stores a PENDING task and asks for its placement.
func (s *Server) DesireTask(ctx context.Context, req *models.DesireTaskRequest) (*models.TaskLifecycleResponse, error) {
	task, err := s.store.DesireTask(ctx, req.TaskGuid, req.Domain, req.TaskDefinition)
	if err != nil {
		return nil, err
	}
	s.requestTaskAuction(ctx, task)
	s.logger.Info("task desired", "task_guid", task.TaskGuid, "domain", task.Domain)
	return &models.TaskLifecycleResponse{Task: task}, nil
}

// StartTask moves a task to RUNNING on a cell.
func (s *Server) StartTask(ctx context.Context, req *models.StartTaskRequest) (*models.StartTaskResponse, error) {
	_, _, should, err := s.store.StartTask(ctx, req.TaskGuid, req.CellId)
	if err != nil {
		return nil, err
	}
	return &models.StartTaskResponse{ShouldStart: should}, nil
}

// CancelTask completes a task as cancelled and tells its cell to stop it.
func (s *Server) CancelTask(ctx context.Context, req *models.TaskGuidRequest) (*models.TaskLifecycleResponse, error) {
	before, after, err := s.store.CancelTask(ctx, req.TaskGuid)
	if err != nil {
		return nil, err
	}
	s.completed(after)
	if before.State == models.Task_RUNNING && before.CellId != "" {
		s.cancelOnCell(ctx, before)
	}
	return &models.TaskLifecycleResponse{Task: after}, nil
}

// cancelOnCell asks the task's cell to stop it. Failures are logged: the
// rep's sync finds the completed task and removes the container anyway.
func (s *Server) cancelOnCell(ctx context.Context, task *models.Task) {
	if s.cells == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), requestTimeout)
	defer cancel()
	cell, err := s.store.Cell(ctx, task.CellId)
	if err != nil {
		return
	}
	if err := s.cells.CancelTask(ctx, cell, task.TaskGuid); err != nil {
		s.logger.Warn("cancel task on cell", "task_guid", task.TaskGuid, "cell_id", task.CellId, "error", err)
	}
}

// completed hands a just-completed task to the callback worker.
func (s *Server) completed(task *models.Task) {
	if s.callbacks != nil && task.GetTaskDefinition().GetCompletionCallbackUrl() != "" {
		s.callbacks.Submit(task)
	}
}

// FailTask completes a task as failed.
func (s *Server) FailTask(ctx context.Context, req *models.FailTaskRequest) (*models.TaskLifecycleResponse, error) {
	_, after, err := s.store.FailTask(ctx, req.TaskGuid, req.FailureReason)
	if err != nil {
		return nil, err
	}
	s.completed(after)
	return &models.TaskLifecycleResponse{Task: after}, nil
}

// RejectTask sends a task back to PENDING (or fails it after too many
// rejections).
func (s *Server) RejectTask(ctx context.Context, req *models.RejectTaskRequest) (*models.TaskLifecycleResponse, error) {
	_, after, err := s.store.RejectTask(ctx, req.TaskGuid, req.RejectionReason)
	if err != nil {
		return nil, err
	}
	if after.State == models.Task_COMPLETED {
		s.completed(after)
	}
	return &models.TaskLifecycleResponse{Task: after}, nil
}

// CompleteTask records a task's outcome.
func (s *Server) CompleteTask(ctx context.Context, req *models.CompleteTaskRequest) (*models.TaskLifecycleResponse, error) {
	_, after, err := s.store.CompleteTask(ctx, req.TaskGuid, req.CellId, req.Failed, req.FailureReason, req.Result)
	if err != nil {
		return nil, err
	}
	s.completed(after)
	return &models.TaskLifecycleResponse{Task: after}, nil
}

// ResolvingTask marks a completed task as being resolved.
func (s *Server) ResolvingTask(ctx context.Context, req *models.TaskGuidRequest) (*models.TaskLifecycleResponse, error) {
	_, after, err := s.store.ResolvingTask(ctx, req.TaskGuid)
	if err != nil {
		return nil, err
	}
	return &models.TaskLifecycleResponse{Task: after}, nil
}

// DeleteTask deletes a resolving task.
func (s *Server) DeleteTask(ctx context.Context, req *models.TaskGuidRequest) (*models.TaskLifecycleResponse, error) {
	if _, err := s.store.DeleteTask(ctx, req.TaskGuid); err != nil {
		return nil, err
	}
	return &models.TaskLifecycleResponse{}, nil
}

// ListTasks lists tasks.
func (s *Server) ListTasks(ctx context.Context, req *models.ListTasksRequest) (*models.ListTasksResponse, error) {
	tasks, rev, err := s.store.Tasks(ctx, db.TaskFilter{Domain: req.Domain, CellID: req.CellId})
	if err != nil {
		return nil, err
	}
	return &models.ListTasksResponse{Tasks: tasks, Revision: rev}, nil
}

// GetTask returns one task.
func (s *Server) GetTask(ctx context.Context, req *models.TaskGuidRequest) (*models.GetTaskResponse, error) {
	t, err := s.store.Task(ctx, req.TaskGuid)
	if err != nil {
		return nil, err
	}
	return &models.GetTaskResponse{Task: t}, nil
}
