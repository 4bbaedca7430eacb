// Command gavel is the single gavel binary: the daemons (bbs, later the
// auctioneer, rep, converger, route emitter and garden server), the operator
// CLI, `gavel dev` and `gavel certs`.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/gavel-scheduler/gavel/internal/cli"
)

func main() {
	root := &cobra.Command{
		Use:           "gavel",
		Short:         "gavel: a Diego-style container scheduler",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	cli.Register(root)
	root.AddCommand(certsCommand(), bbsCommand(), auctioneerCommand(), repCommand(), devCommand(), simCommand(), gardenCommand(), routeEmitterCommand(), convergerCommand(), convergeCommand())
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "gavel:", err)
		os.Exit(1)
	}
}
