package cli

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/gavel-scheduler/gavel/proto/models"
)

func (a *app) createDesiredLRPCommand() *cobra.Command {
	var (
		wait        bool
		waitTimeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "create-desired-lrp SPEC",
		Short: "Desire an LRP from a DesiredLRP JSON spec",
		Long: "Desire an LRP from a DesiredLRP JSON spec. With --wait, show the instances " +
			"coming up until all are RUNNING, or fail with the reason of the first that cannot " +
			"start (placement error, crash).\n\n" + specHelp,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			lrp, err := decodeSpec(args[0], a.stdin, models.DecodeDesiredLRP)
			if err != nil {
				return explain(err, target{})
			}
			if wait && waitTimeout <= 0 {
				return fmt.Errorf("--wait-timeout %s: must be positive", waitTimeout)
			}
			return a.call(cmd, func(ctx context.Context, c models.BBSClient, f format) error {
				if _, err := c.DesireLRP(ctx, &models.DesireLRPRequest{DesiredLrp: lrp}); err != nil {
					return err
				}
				a.confirm(f, "desired LRP %q created (%d instances)", lrp.GetProcessGuid(), lrp.GetInstances())
				if !wait {
					return nil
				}
				wctx, cancel := context.WithTimeout(contextOf(cmd), waitTimeout)
				defer cancel()
				return a.waitForInstances(wctx, c, lrp.GetProcessGuid(), lrp.GetInstances(), f)
			})
		},
	}
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until every instance is RUNNING, showing each change")
	cmd.Flags().DurationVar(&waitTimeout, "wait-timeout", 5*time.Minute, "bound on --wait")
	return cmd
}

func (a *app) updateDesiredLRPCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "update-desired-lrp PROCESS_GUID SPEC",
		Short: "Change a desired LRP's instances, routes, annotation or metric tags",
		Long:  "Apply a DesiredLRPUpdate JSON spec (instances, routes, annotation, metric_tags, image_username, image_password) to a desired LRP; fields left out are unchanged.\n\n" + specHelp,
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			guid := args[0]
			update, err := decodeSpec(args[1], a.stdin, models.DecodeDesiredLRPUpdate)
			if err != nil {
				return explain(err, target{})
			}
			return a.call(cmd, func(ctx context.Context, c models.BBSClient, f format) error {
				if _, err := c.UpdateDesiredLRP(ctx, &models.UpdateDesiredLRPRequest{ProcessGuid: guid, Update: update}); err != nil {
					return err
				}
				a.confirm(f, "desired LRP %q updated", guid)
				return nil
			})
		},
	}
}

func (a *app) deleteDesiredLRPCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "delete-desired-lrp PROCESS_GUID",
		Short: "Remove a desired LRP (its instances are then stopped)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			guid := args[0]
			return a.call(cmd, func(ctx context.Context, c models.BBSClient, f format) error {
				if _, err := c.RemoveDesiredLRP(ctx, &models.RemoveDesiredLRPRequest{ProcessGuid: guid}); err != nil {
					return err
				}
				a.confirm(f, "desired LRP %q deleted", guid)
				return nil
			})
		},
	}
}

func (a *app) desiredLRPsCommand() *cobra.Command {
	var domain string
	cmd := &cobra.Command{
		Use:   "desired-lrps",
		Short: "List desired LRPs",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.call(cmd, func(ctx context.Context, c models.BBSClient, f format) error {
				resp, err := c.ListDesiredLRPs(ctx, &models.ListDesiredLRPsRequest{Domain: domain})
				if err != nil {
					return err
				}
				return printList(a.stdout, f, resp.GetDesiredLrps(), desiredLRPColumns())
			})
		},
	}
	cmd.Flags().StringVarP(&domain, "domain", "d", "", "only LRPs in this domain")
	return cmd
}

func (a *app) desiredLRPCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "desired-lrp PROCESS_GUID",
		Short: "Show one desired LRP in full",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.call(cmd, func(ctx context.Context, c models.BBSClient, f format) error {
				resp, err := c.GetDesiredLRP(ctx, &models.GetDesiredLRPRequest{ProcessGuid: args[0]})
				if err != nil {
					return err
				}
				return printRecord(a.stdout, f, resp.GetDesiredLrp())
			})
		},
	}
}

func (a *app) schedulingInfosCommand() *cobra.Command {
	var domain string
	cmd := &cobra.Command{
		Use:   "desired-lrp-scheduling-infos",
		Short: "List the scheduling part of desired LRPs (no actions or env)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.call(cmd, func(ctx context.Context, c models.BBSClient, f format) error {
				resp, err := c.ListDesiredLRPSchedulingInfos(ctx, &models.ListDesiredLRPsRequest{Domain: domain})
				if err != nil {
					return err
				}
				return printList(a.stdout, f, resp.GetDesiredLrpSchedulingInfos(), schedulingInfoColumns())
			})
		},
	}
	cmd.Flags().StringVarP(&domain, "domain", "d", "", "only LRPs in this domain")
	return cmd
}

func (a *app) actualLRPsCommand() *cobra.Command {
	var (
		req   models.ListActualLRPsRequest
		index int32
	)
	cmd := &cobra.Command{
		Use:   "actual-lrps",
		Short: "List actual LRPs (instances), filtered by domain, cell, process guid or index",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// index is optional on the wire: 0 is a real index, so only a
			// flag the user actually set becomes a filter.
			if cmd.Flags().Changed("index") {
				if index < 0 {
					return fmt.Errorf("--index %d: must be 0 or more", index)
				}
				req.Index = &index
			}
			return a.call(cmd, func(ctx context.Context, c models.BBSClient, f format) error {
				resp, err := c.ListActualLRPs(ctx, &req)
				if err != nil {
					return err
				}
				return printList(a.stdout, f, resp.GetActualLrps(), actualLRPColumns(a.now()))
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&req.Domain, "domain", "d", "", "only instances in this domain")
	fl.StringVarP(&req.CellId, "cell-id", "c", "", "only instances on this cell")
	fl.StringVarP(&req.ProcessGuid, "process-guid", "p", "", "only instances of this process guid")
	fl.Int32VarP(&index, "index", "i", 0, "only instances with this index")
	return cmd
}

func (a *app) retireActualLRPCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "retire-actual-lrp PROCESS_GUID INDEX",
		Short: "Retire one instance: stop it, or remove it if it is not running",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			guid := args[0]
			index, err := parseIndex(args[1])
			if err != nil {
				return err
			}
			return a.call(cmd, func(ctx context.Context, c models.BBSClient, f format) error {
				key, err := findActualLRPKey(ctx, c, guid, index)
				if err != nil {
					return err
				}
				if _, err := c.RetireActualLRP(ctx, &models.RetireActualLRPRequest{ActualLrpKey: key}); err != nil {
					return err
				}
				a.confirm(f, "actual LRP %s/%d retired", guid, index)
				return nil
			})
		},
	}
}

// findActualLRPKey completes an instance's key with its domain, which the
// retire call needs and the operator should not have to type.
func findActualLRPKey(ctx context.Context, c models.BBSClient, guid string, index int32) (*models.ActualLRPKey, error) {
	resp, err := c.ListActualLRPs(ctx, &models.ListActualLRPsRequest{ProcessGuid: guid, Index: &index})
	if err != nil {
		return nil, err
	}
	var found *models.ActualLRPKey
	for _, lrp := range resp.GetActualLrps() {
		k := lrp.GetActualLrpKey()
		if k.GetProcessGuid() != guid || k.GetIndex() != index {
			continue
		}
		// Prefer the ordinary row; an evacuating twin has the same key.
		if found == nil || lrp.GetPresence() == models.ActualLRP_ORDINARY {
			found = k
		}
	}
	if found == nil {
		return nil, fmt.Errorf("actual LRP %s/%d not found", guid, index)
	}
	return found, nil
}

func parseIndex(s string) (int32, error) {
	i, err := strconv.ParseInt(s, 10, 32)
	if err != nil || i < 0 {
		return 0, fmt.Errorf("INDEX %q: must be a number, 0 or more", s)
	}
	return int32(i), nil
}
