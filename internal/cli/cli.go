// Package cli is gavel's operator CLI: cfdot-style commands that read and
// change BBS state (desired and actual LRPs, tasks, domains, cells) and follow
// its event streams. It owns turning specs into requests, turning records
// into tables or JSON lines, and turning gRPC errors into text a person can
// act on; the BBS itself is reached only through the generated client.
package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/gavel-scheduler/gavel/internal/clientconfig"
	"github.com/gavel-scheduler/gavel/proto/models"
)

// groupID gathers the BBS commands under one heading in `gavel help`.
const groupID = "bbs-client"

// Register adds the operator commands to root, with the persistent flags
// they share: --config, -o/--output and --timeout.
func Register(root *cobra.Command) {
	a := &app{
		stdout:     os.Stdout,
		stderr:     os.Stderr,
		stdin:      os.Stdin,
		isTerminal: term.IsTerminal(int(os.Stdout.Fd())),
		now:        time.Now,
	}
	a.register(root)
}

// app is the CLI's environment. Everything a command touches outside the
// BBS (streams, terminal detection, the clock) is a field so tests can run
// commands in-process and compare exact output.
type app struct {
	stdout     io.Writer
	stderr     io.Writer
	stdin      io.Reader
	isTerminal bool // whether stdout is a terminal, decides table vs JSON lines
	now        func() time.Time

	// Persistent flag values, filled in by cobra.
	configPath string
	output     string
	timeout    time.Duration

	// reconnect bounds the wait between attempts to resume an event stream;
	// zero values mean the defaults (tests shorten them).
	reconnectMin, reconnectMax time.Duration
}

func (a *app) register(root *cobra.Command) {
	pf := root.PersistentFlags()
	pf.StringVar(&a.configPath, "config", "", "client config file (default $"+clientconfig.EnvConfig+", else "+displayDefaultPath()+")")
	pf.StringVarP(&a.output, "output", "o", "", "output format: table or json (default table on a terminal, json lines otherwise)")
	pf.DurationVar(&a.timeout, "timeout", 30*time.Second, "deadline for each command's BBS calls (event streams have none)")

	root.AddGroup(&cobra.Group{ID: groupID, Title: "BBS commands:"})
	for _, c := range []*cobra.Command{
		a.createDesiredLRPCommand(),
		a.updateDesiredLRPCommand(),
		a.deleteDesiredLRPCommand(),
		a.desiredLRPsCommand(),
		a.desiredLRPCommand(),
		a.schedulingInfosCommand(),
		a.actualLRPsCommand(),
		a.retireActualLRPCommand(),
		a.createTaskCommand(),
		a.tasksCommand(),
		a.taskCommand(),
		a.cancelTaskCommand(),
		a.deleteTaskCommand(),
		a.domainsCommand(),
		a.setDomainCommand(),
		a.cellsCommand(),
		a.cellCommand(),
		a.cellStatesCommand(),
		a.cellStateCommand(),
		a.evacuateCommand(),
		a.logsCommand(),
		a.lrpEventsCommand(),
		a.taskEventsCommand(),
		a.routesCommand(),
	} {
		c.GroupID = groupID
		root.AddCommand(c)
	}
}

// displayDefaultPath is the default config path as help text shows it.
func displayDefaultPath() string {
	return "~/.gavel/dev/" + clientconfig.FileName
}

// format is the resolved output format of one command run.
type format int

const (
	formatJSON  format = iota // one JSON object per line, for programs
	formatTable               // aligned columns and short confirmations, for people
)

// format applies the -o flag, falling back to what suits stdout.
func (a *app) format() (format, error) { return resolveFormat(a.output, a.isTerminal) }

// resolveFormat is the one rule for table versus JSON output: -o wins,
// otherwise a table on a terminal and JSON lines elsewhere.
func resolveFormat(output string, isTerminal bool) (format, error) {
	switch output {
	case "":
		if isTerminal {
			return formatTable, nil
		}
		return formatJSON, nil
	case "table":
		return formatTable, nil
	case "json":
		return formatJSON, nil
	default:
		return 0, fmt.Errorf("--output %q: must be table or json", output)
	}
}

// WantsJSON tells another gavel command registered under the same root
// whether to print JSON, by the CLI's own rule for -o and stdout.
func WantsJSON(cmd *cobra.Command) (bool, error) {
	output, _ := cmd.Flags().GetString("output")
	f, err := resolveFormat(output, term.IsTerminal(int(os.Stdout.Fd())))
	return f == formatJSON, err
}

// confirm tells a person at a terminal that a change went through. Scripts
// get silence and the exit status, as with cfdot.
func (a *app) confirm(f format, msg string, args ...any) {
	if f == formatTable && a.isTerminal {
		fmt.Fprintf(a.stdout, msg+"\n", args...)
	}
}

// bbsCall is the body of a command: it runs with a connected client under
// the command's deadline and prints in the resolved format.
type bbsCall func(ctx context.Context, c models.BBSClient, f format) error

// call resolves the config, connects, runs fn under --timeout and passes any
// error through explain, so no command formats a gRPC error itself.
func (a *app) call(cmd *cobra.Command, fn bbsCall) error {
	f, err := a.format()
	if err != nil {
		return err
	}
	if a.timeout <= 0 {
		return fmt.Errorf("--timeout %s: must be positive", a.timeout)
	}
	ctx, cancel := context.WithTimeout(contextOf(cmd), a.timeout)
	defer cancel()
	return a.withClient(ctx, func(ctx context.Context, c models.BBSClient, t target) error {
		return explain(fn(ctx, c, f), t)
	})
}

// withClient dials the BBS named by the client config and hands fn a client
// and the target description errors need.
func (a *app) withClient(ctx context.Context, fn func(context.Context, models.BBSClient, target) error) error {
	cfg, path, err := clientconfig.Resolve(a.configPath)
	if err != nil {
		return err
	}
	conn, err := cfg.Dial(ctx)
	if err != nil {
		return fmt.Errorf("client config %s: %w", path, err)
	}
	defer conn.Close()
	return fn(ctx, models.NewBBSClient(conn), target{addr: cfg.BBSAddress, configPath: path, timeout: a.timeout})
}

// contextOf returns the command's context, or Background when the command
// was run without one (cobra leaves it nil outside ExecuteContext).
func contextOf(cmd *cobra.Command) context.Context {
	if ctx := cmd.Context(); ctx != nil {
		return ctx
	}
	return context.Background()
}
