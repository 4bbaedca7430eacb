package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/gavel-scheduler/gavel/internal/gossip"
	"github.com/gavel-scheduler/gavel/internal/tlsutil"
)

// certsCommand is `gavel certs`: create (or complete) a certificate
// directory with a CA and one certificate per component. The work is
// tlsutil.WriteDir; this file only maps flags and reports the result.
func certsCommand() *cobra.Command {
	var (
		dir        string
		hosts      []string
		validity   time.Duration
		caValidity time.Duration
	)
	cmd := &cobra.Command{
		Use:   "certs --dir DIR [--host H ...]",
		Short: "Create a CA and mutual-TLS certificates for every gavel component",
		Long: `Create a certificate authority and one certificate per component (bbs,
auctioneer, rep, converger, route-emitter, garden, client) in DIR. Each
certificate is valid as both server and client and names every --host as a
subject alternative name, plus the component's own name.

Running it again is safe: an existing CA is reused and existing certificates
are kept, so only missing files are created. To reissue a certificate (for
example with new hosts), delete its .crt and .key and run the command again.
Copy ca.crt and a component's .crt/.key to each machine that runs it; ca.key
stays with whoever issues certificates. gossip.key encrypts the gossip pool of
cells and auctioneers: give the same file to each of them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				return errors.New("--dir is required")
			}
			caExisted, err := certFileExists(tlsutil.PathsFor(dir).CACert)
			if err != nil {
				return err
			}
			paths, err := tlsutil.WriteDir(dir, hosts,
				tlsutil.WithValidity(validity), tlsutil.WithCAValidity(caValidity))
			if err != nil {
				return err
			}
			if err := printCertPaths(cmd, paths, caExisted); err != nil {
				return err
			}
			keyPath := filepath.Join(dir, "gossip.key")
			created, err := gossip.WriteKeyFile(keyPath)
			if err != nil {
				return err
			}
			state := "kept"
			if created {
				state = "created"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "gossip key %s (%s): pass it as gossip_key_file to every auctioneer and rep\n", keyPath, state)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", "", "directory to hold the CA and certificates (created if missing)")
	f.StringSliceVar(&hosts, "host", tlsutil.DefaultHosts(),
		"IP address or DNS name the certificates are valid for; repeat or comma-separate (replaces the default)")
	f.DurationVar(&validity, "validity", tlsutil.DefaultCertValidity, "lifetime of newly issued component certificates")
	f.DurationVar(&caValidity, "ca-validity", tlsutil.DefaultCAValidity, "lifetime of the CA, when a new one is created")
	return cmd
}

func printCertPaths(cmd *cobra.Command, paths tlsutil.Paths, caExisted bool) error {
	out := cmd.OutOrStdout()
	abs, err := filepath.Abs(paths.Dir)
	if err != nil {
		abs = paths.Dir
	}
	state := "created"
	if caExisted {
		state = "reused"
	}
	fmt.Fprintf(out, "certificates in %s (CA %s)\n", abs, state)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "ca\t%s\t%s\n", paths.CACert, paths.CAKey)
	for _, name := range tlsutil.Components() {
		c := paths.Components[name]
		fmt.Fprintf(tw, "%s\t%s\t%s\n", name, c.Cert, c.Key)
	}
	return tw.Flush()
}

func certFileExists(path string) (bool, error) {
	_, err := os.Stat(path)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	default:
		return false, err
	}
}
