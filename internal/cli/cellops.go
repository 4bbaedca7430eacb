package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/gavel-scheduler/gavel/proto/models"
)

func (a *app) evacuateCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "evacuate CELL_ID",
		Short: "Evacuate a cell: it takes no more work and hands its instances over to other cells",
		Long: "Evacuate a cell (as SIGUSR2 to its rep does). It leaves the auction pool at once; " +
			"each running instance keeps serving (as EVACUATING) until its replacement runs " +
			"elsewhere, then is stopped. Tasks finish where they are. Follow it with " +
			"gavel actual-lrps -c CELL_ID.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.callReps(cmd, func(ctx context.Context, c models.BBSClient, reps repDialer, f format) error {
				cell, err := c.GetCell(ctx, &models.GetCellRequest{CellId: args[0]})
				if err != nil {
					return err
				}
				rep, conn, err := reps.dial(cell.Cell)
				if err != nil {
					return err
				}
				defer conn.Close()
				resp, err := rep.Evacuate(ctx, &models.EvacuateRequest{})
				if err != nil {
					return fmt.Errorf("cell %s: %w", args[0], err)
				}
				if resp.AlreadyEvacuating {
					a.confirm(f, "cell %s was already evacuating", args[0])
				} else {
					a.confirm(f, "cell %s is evacuating", args[0])
				}
				return nil
			})
		},
	}
}

func (a *app) logsCommand() *cobra.Command {
	var (
		follow bool
		tail   int32
		index  int32
	)
	cmd := &cobra.Command{
		Use:   "logs PROCESS_GUID",
		Short: "Show (or follow, -f) the output of an LRP's instances",
		Long: "Show the output of every running instance of an LRP (or of one, with --index), " +
			"from each cell's log buffer, each line prefixed with the instance index and the " +
			"log source. -f keeps following until interrupted.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if tail < 0 {
				return fmt.Errorf("--tail %d: must not be negative", tail)
			}
			guid := args[0]
			return a.callReps(cmd, func(ctx context.Context, c models.BBSClient, reps repDialer, _ format) error {
				req := &models.ListActualLRPsRequest{ProcessGuid: guid}
				if cmd.Flags().Changed("index") {
					req.Index = &index
				}
				list, err := c.ListActualLRPs(ctx, req)
				if err != nil {
					return err
				}
				var instances []*models.ActualLRP
				for _, l := range list.ActualLrps {
					if l.InstanceGuid() != "" {
						instances = append(instances, l)
					}
				}
				if len(instances) == 0 {
					return fmt.Errorf("no instance of %q is on a cell now", guid)
				}
				slices.SortFunc(instances, func(x, y *models.ActualLRP) int { return int(x.Index() - y.Index()) })
				if follow {
					// Following has no deadline (--timeout bounds the
					// lookups above): only the interrupt ends it.
					ctx = contextOf(cmd)
				}
				return a.streamLogs(ctx, c, reps, instances, follow, tail)
			})
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&follow, "follow", "f", false, "keep following new output")
	f.Int32Var(&tail, "tail", 100, "lines per instance to start from (0: all the cell holds)")
	f.Int32VarP(&index, "index", "i", 0, "only this instance index")
	return cmd
}

// streamLogs prints each instance's lines, one writer at a time.
func (a *app) streamLogs(ctx context.Context, c models.BBSClient, reps repDialer, instances []*models.ActualLRP, follow bool, tail int32) error {
	var mu sync.Mutex // serialises writes to stdout
	var wg sync.WaitGroup
	errs := make([]error, len(instances))
	for i, inst := range instances {
		wg.Go(func() {
			errs[i] = a.instanceLogs(ctx, c, reps, inst, follow, tail, &mu)
		})
	}
	wg.Wait()
	var failed []error
	for _, err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) && status.Code(err) != codes.Canceled {
			failed = append(failed, err)
		}
	}
	return errors.Join(failed...)
}

func (a *app) instanceLogs(ctx context.Context, c models.BBSClient, reps repDialer, inst *models.ActualLRP, follow bool, tail int32, mu *sync.Mutex) error {
	cell, err := c.GetCell(ctx, &models.GetCellRequest{CellId: inst.CellID()})
	if err != nil {
		return fmt.Errorf("instance %d: cell %s: %w", inst.Index(), inst.CellID(), err)
	}
	rep, conn, err := reps.dial(cell.Cell)
	if err != nil {
		return err
	}
	defer conn.Close()
	stream, err := rep.Logs(ctx, &models.LogsRequest{Guid: inst.InstanceGuid(), Tail: tail, Follow: follow})
	if err != nil {
		return fmt.Errorf("instance %d: %w", inst.Index(), err)
	}
	for {
		line, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("instance %d on %s: %w", inst.Index(), inst.CellID(), err)
		}
		mu.Lock()
		fmt.Fprintf(a.stdout, "[%d %s] %s\n", inst.Index(), line.Source, line.Text)
		mu.Unlock()
	}
}

// waitForInstances follows the instances of guid until all want are
// RUNNING, printing each change, or fails at the first that cannot start
// (placement error, CRASHED).
func (a *app) waitForInstances(ctx context.Context, c models.BBSClient, guid string, want int32, f format) error {
	seen := map[int32]string{}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		list, err := c.ListActualLRPs(ctx, &models.ListActualLRPsRequest{ProcessGuid: guid})
		if err != nil {
			return err
		}
		running := int32(0)
		for _, l := range list.ActualLrps {
			if l.Presence != models.ActualLRP_ORDINARY || l.Index() >= want {
				continue
			}
			state := actualState(l)
			if l.State == models.ActualLRP_RUNNING {
				running++
				state += " on " + l.CellID()
			}
			if seen[l.Index()] != state {
				seen[l.Index()] = state
				if f == formatJSON {
					if err := writeJSONLine(a.stdout, l); err != nil {
						return err
					}
				} else {
					fmt.Fprintf(a.stdout, "%s/%d %s\n", guid, l.Index(), state)
				}
			}
			switch {
			case l.State == models.ActualLRP_UNCLAIMED && l.PlacementError != "":
				return fmt.Errorf("instance %d cannot be placed: %s", l.Index(), l.PlacementError)
			case l.State == models.ActualLRP_CRASHED:
				return fmt.Errorf("instance %d crashed: %s", l.Index(), l.CrashReason)
			}
		}
		if running == want {
			if f == formatTable {
				fmt.Fprintf(a.stdout, "%s: all %d instances running\n", guid, want)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d of %d instances running when the wait ended: %w", running, want, ctx.Err())
		case <-tick.C:
		}
	}
}
