package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/gavel-scheduler/gavel/proto/models"
)

func (a *app) domainsCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "domains",
		Short: "List fresh domains",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.call(cmd, func(ctx context.Context, c models.BBSClient, f format) error {
				resp, err := c.ListDomains(ctx, &models.ListDomainsRequest{})
				if err != nil {
					return err
				}
				return printList(a.stdout, f, resp.GetDomains(), domainColumns(a.now()))
			})
		},
	}
}

func (a *app) setDomainCommand() *cobra.Command {
	var ttl int64
	cmd := &cobra.Command{
		Use:   "set-domain DOMAIN",
		Short: "Mark a domain fresh, for --ttl seconds (0: forever)",
		Long: "Mark a domain fresh. While a domain is fresh, convergence may remove " +
			"actual LRPs it has no desired LRP for; a stale domain is left alone.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			domain := args[0]
			if ttl < 0 {
				return fmt.Errorf("--ttl %d: must be 0 (forever) or more seconds", ttl)
			}
			return a.call(cmd, func(ctx context.Context, c models.BBSClient, f format) error {
				if _, err := c.UpsertDomain(ctx, &models.UpsertDomainRequest{Domain: domain, Ttl: ttl}); err != nil {
					return err
				}
				if ttl == 0 {
					a.confirm(f, "domain %q is fresh with no expiry", domain)
				} else {
					a.confirm(f, "domain %q is fresh for %ds", domain, ttl)
				}
				return nil
			})
		},
	}
	cmd.Flags().Int64VarP(&ttl, "ttl", "t", 0, "seconds the domain stays fresh (0: forever)")
	return cmd
}

func (a *app) cellsCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "cells",
		Short: "List cell presences",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.call(cmd, func(ctx context.Context, c models.BBSClient, f format) error {
				resp, err := c.ListCells(ctx, &models.ListCellsRequest{})
				if err != nil {
					return err
				}
				return printList(a.stdout, f, resp.GetCells(), cellColumns())
			})
		},
	}
}

func (a *app) cellCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "cell CELL_ID",
		Short: "Show one cell presence in full",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.call(cmd, func(ctx context.Context, c models.BBSClient, f format) error {
				resp, err := c.GetCell(ctx, &models.GetCellRequest{CellId: args[0]})
				if err != nil {
					return err
				}
				return printRecord(a.stdout, f, resp.GetCell())
			})
		},
	}
}
