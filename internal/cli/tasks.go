package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/gavel-scheduler/gavel/proto/models"
)

func (a *app) createTaskCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "create-task SPEC",
		Short: "Desire a task from a JSON spec (task_guid, domain, task_definition)",
		Long:  "Desire a task from a JSON spec with task_guid, domain and task_definition.\n\n" + specHelp,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req, err := decodeSpec(args[0], a.stdin, models.DecodeDesireTaskRequest)
			if err != nil {
				return explain(err, target{})
			}
			return a.call(cmd, func(ctx context.Context, c models.BBSClient, f format) error {
				if _, err := c.DesireTask(ctx, req); err != nil {
					return err
				}
				a.confirm(f, "task %q created", req.GetTaskGuid())
				return nil
			})
		},
	}
}

func (a *app) tasksCommand() *cobra.Command {
	var req models.ListTasksRequest
	cmd := &cobra.Command{
		Use:   "tasks",
		Short: "List tasks",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.call(cmd, func(ctx context.Context, c models.BBSClient, f format) error {
				resp, err := c.ListTasks(ctx, &req)
				if err != nil {
					return err
				}
				return printList(a.stdout, f, resp.GetTasks(), taskColumns())
			})
		},
	}
	cmd.Flags().StringVarP(&req.Domain, "domain", "d", "", "only tasks in this domain")
	cmd.Flags().StringVarP(&req.CellId, "cell-id", "c", "", "only tasks on this cell")
	return cmd
}

func (a *app) taskCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "task TASK_GUID",
		Short: "Show one task in full",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.call(cmd, func(ctx context.Context, c models.BBSClient, f format) error {
				resp, err := c.GetTask(ctx, &models.TaskGuidRequest{TaskGuid: args[0]})
				if err != nil {
					return err
				}
				return printRecord(a.stdout, f, resp.GetTask())
			})
		},
	}
}

func (a *app) cancelTaskCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "cancel-task TASK_GUID",
		Short: "Cancel a task (it completes as failed)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			guid := args[0]
			return a.call(cmd, func(ctx context.Context, c models.BBSClient, f format) error {
				if _, err := c.CancelTask(ctx, &models.TaskGuidRequest{TaskGuid: guid}); err != nil {
					return err
				}
				a.confirm(f, "task %q cancelled", guid)
				return nil
			})
		},
	}
}

func (a *app) deleteTaskCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "delete-task TASK_GUID",
		Short: "Resolve and delete a completed task",
		Long: "Delete a completed task: mark it RESOLVING, then delete it. A task already " +
			"RESOLVING (a client died half-way) is just deleted. Pending or running tasks " +
			"are refused; cancel them first.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			guid := args[0]
			return a.call(cmd, func(ctx context.Context, c models.BBSClient, f format) error {
				if err := resolveAndDeleteTask(ctx, c, guid); err != nil {
					return err
				}
				a.confirm(f, "task %q deleted", guid)
				return nil
			})
		},
	}
}

// resolveAndDeleteTask walks a task through the two steps Diego requires to
// delete it. It reads the state first so a task that is still running gets
// a clear refusal instead of a transition error from the BBS.
func resolveAndDeleteTask(ctx context.Context, c models.BBSClient, guid string) error {
	resp, err := c.GetTask(ctx, &models.TaskGuidRequest{TaskGuid: guid})
	if err != nil {
		return err
	}
	switch state := resp.GetTask().GetState(); state {
	case models.Task_COMPLETED:
		if _, err := c.ResolvingTask(ctx, &models.TaskGuidRequest{TaskGuid: guid}); err != nil {
			return err
		}
	case models.Task_RESOLVING:
	default:
		return fmt.Errorf("task %q is %s: only COMPLETED tasks can be deleted (cancel-task it first)", guid, state)
	}
	_, err = c.DeleteTask(ctx, &models.TaskGuidRequest{TaskGuid: guid})
	return err
}
