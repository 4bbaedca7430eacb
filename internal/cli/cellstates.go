package cli

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/gavel-scheduler/gavel/internal/clientconfig"
	"github.com/gavel-scheduler/gavel/proto/models"
)

func (a *app) cellStatesCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "cell-states",
		Short: "Show the state each live cell's rep reports (resources, work held, evacuating)",
		Long: "Ask the rep of every present cell for its state, in parallel. Cells that do " +
			"not answer are named on stderr and make the command exit non-zero; the others " +
			"are still shown.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.callReps(cmd, func(ctx context.Context, c models.BBSClient, reps repDialer, f format) error {
				resp, err := c.ListCells(ctx, &models.ListCellsRequest{})
				if err != nil {
					return err
				}
				cells := resp.GetCells()
				states := make([]*models.CellState, len(cells))
				errs := make([]error, len(cells))
				var wg sync.WaitGroup
				for i, cell := range cells {
					wg.Add(1)
					go func() {
						defer wg.Done()
						states[i], errs[i] = reps.state(ctx, cell)
					}()
				}
				wg.Wait()
				var answered []*models.CellState
				var failed []string
				for i, st := range states {
					if errs[i] != nil {
						failed = append(failed, cells[i].CellId)
						fmt.Fprintf(a.stderr, "gavel: %v\n", errs[i])
						continue
					}
					answered = append(answered, st)
				}
				slices.SortFunc(answered, func(x, y *models.CellState) int { return strings.Compare(x.CellId, y.CellId) })
				if err := printList(a.stdout, f, answered, cellStateColumns()); err != nil {
					return err
				}
				if len(failed) > 0 {
					return fmt.Errorf("%d of %d cells did not answer: %s", len(failed), len(cells), strings.Join(failed, ", "))
				}
				return nil
			})
		},
	}
}

func (a *app) cellStateCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "cell-state CELL_ID",
		Short: "Show one cell's rep state in full, with the instances and tasks it holds",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.callReps(cmd, func(ctx context.Context, c models.BBSClient, reps repDialer, f format) error {
				resp, err := c.GetCell(ctx, &models.GetCellRequest{CellId: args[0]})
				if err != nil {
					return err
				}
				st, err := reps.state(ctx, resp.GetCell())
				if err != nil {
					return err
				}
				return printRecord(a.stdout, f, st)
			})
		},
	}
}

// repDialer reaches reps with the CLI's own credentials (the same CA and
// client certificate as for the BBS).
type repDialer struct {
	creds grpc.DialOption
}

// dial connects to the cell's rep; close the connection when done.
func (d repDialer) dial(cell *models.CellPresence) (models.RepClient, *grpc.ClientConn, error) {
	conn, err := grpc.NewClient(cell.RepAddress, d.creds)
	if err != nil {
		return nil, nil, fmt.Errorf("cell %s: rep %s: %w", cell.CellId, cell.RepAddress, err)
	}
	return models.NewRepClient(conn), conn, nil
}

func (d repDialer) state(ctx context.Context, cell *models.CellPresence) (*models.CellState, error) {
	rep, conn, err := d.dial(cell)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	st, err := rep.State(ctx, &models.CellStateRequest{})
	if err != nil {
		return nil, fmt.Errorf("cell %s: rep at %s did not answer: %w", cell.CellId, cell.RepAddress, err)
	}
	return st, nil
}

// callReps is call for commands that also talk to reps.
func (a *app) callReps(cmd *cobra.Command, fn func(ctx context.Context, c models.BBSClient, reps repDialer, f format) error) error {
	cfg, _, err := clientconfig.Resolve(a.configPath)
	if err != nil {
		return err
	}
	creds := grpc.WithTransportCredentials(insecure.NewCredentials())
	if !cfg.Insecure {
		tc, err := cfg.TLSConfig()
		if err != nil {
			return err
		}
		// Reps' certificates name their own hosts, not the BBS's.
		tc.ServerName = ""
		creds = grpc.WithTransportCredentials(credentials.NewTLS(tc))
	}
	return a.call(cmd, func(ctx context.Context, c models.BBSClient, f format) error {
		return fn(ctx, c, repDialer{creds: creds}, f)
	})
}

func cellStateColumns() []column[*models.CellState] {
	type cs = *models.CellState
	used := func(total, avail int32, unit string) string {
		return strconv.Itoa(int(total-avail)) + "/" + strconv.Itoa(int(total)) + unit
	}
	return []column[cs]{
		{"CELL_ID", cs.GetCellId},
		{"ZONE", cs.GetZone},
		{"MEMORY_USED", func(c cs) string { return used(c.GetTotal().GetMemoryMb(), c.GetAvailable().GetMemoryMb(), "MB") }},
		{"DISK_USED", func(c cs) string { return used(c.GetTotal().GetDiskMb(), c.GetAvailable().GetDiskMb(), "MB") }},
		{"CONTAINERS", func(c cs) string { return used(c.GetTotal().GetContainers(), c.GetAvailable().GetContainers(), "") }},
		{"LRPS", func(c cs) string { return strconv.Itoa(len(c.GetLrps())) }},
		{"TASKS", func(c cs) string { return strconv.Itoa(len(c.GetTasks())) }},
		{"STARTING", func(c cs) string { return strconv.Itoa(int(c.GetStartingContainerCount())) }},
		{"EVACUATING", func(c cs) string { return strconv.FormatBool(c.GetEvacuating()) }},
	}
}
