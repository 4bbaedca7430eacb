package cli

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/gavel-scheduler/gavel/internal/clientconfig"
	"github.com/gavel-scheduler/gavel/proto/models"
)

func (a *app) routesCommand() *cobra.Command {
	var address, processGUID string
	cmd := &cobra.Command{
		Use:   "routes",
		Short: "List the route emitter's routing table: each hostname (or TCP port) and its endpoints",
		Long: "Ask the route emitter (route_emitter_address in the client config, or " +
			"--route-emitter-address) for the routes it serves to Envoy: one line per " +
			"hostname (or TCP external port) with the instances traffic goes to. Evacuating " +
			"instances are marked; Envoy gets them as DRAINING. Route entries the emitter " +
			"refused are listed on stderr.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := a.format()
			if err != nil {
				return err
			}
			if a.timeout <= 0 {
				return fmt.Errorf("--timeout %s: must be positive", a.timeout)
			}
			cfg, path, err := clientconfig.Resolve(a.configPath)
			if err != nil {
				return err
			}
			if address == "" {
				address = cfg.RouteEmitterAddress
			}
			if address == "" {
				return fmt.Errorf("no route emitter address: set route_emitter_address in %s or pass --route-emitter-address", path)
			}
			creds := grpc.WithTransportCredentials(insecure.NewCredentials())
			if !cfg.Insecure {
				tc, err := cfg.TLSConfig()
				if err != nil {
					return err
				}
				// The emitter's certificate names its own hosts, not the BBS's.
				tc.ServerName = ""
				creds = grpc.WithTransportCredentials(credentials.NewTLS(tc))
			}
			conn, err := grpc.NewClient(address, creds)
			if err != nil {
				return fmt.Errorf("route emitter %s: %w", address, err)
			}
			defer conn.Close()
			ctx, cancel := context.WithTimeout(contextOf(cmd), a.timeout)
			defer cancel()
			resp, err := models.NewRouteEmitterClient(conn).ListRoutes(ctx, &models.ListRoutesRequest{ProcessGuid: processGUID})
			if err != nil {
				msg := err.Error()
				if st, ok := status.FromError(err); ok {
					msg = st.Code().String() + ": " + st.Message()
				}
				return &cliError{msg: fmt.Sprintf("route emitter at %s: %s", address, msg), err: err}
			}
			for _, p := range resp.GetProblems() {
				fmt.Fprintf(a.stderr, "gavel: %s: invalid route %s: %s\n", p.GetProcessGuid(), p.GetField(), p.GetReason())
			}
			return printList(a.stdout, f, routeRows(resp), routeColumns())
		},
	}
	cmd.Flags().StringVar(&address, "route-emitter-address", "", "route emitter address (default: route_emitter_address from the client config)")
	cmd.Flags().StringVarP(&processGUID, "process-guid", "p", "", "only this LRP's routes")
	return cmd
}

// routeRows splits the table into one row per route (hostname and path,
// or TCP port), each with its entry's endpoints: hostname → endpoints.
func routeRows(resp *models.ListRoutesResponse) []*models.RoutingTableEntry {
	var rows []*models.RoutingTableEntry
	for _, e := range resp.GetEntries() {
		for _, r := range e.GetHttpRoutes() {
			row := proto.CloneOf(e)
			row.HttpRoutes, row.TcpRoutes = []*models.RoutingHTTPRoute{r}, nil
			rows = append(rows, row)
		}
		for _, r := range e.GetTcpRoutes() {
			row := proto.CloneOf(e)
			row.HttpRoutes, row.TcpRoutes = nil, []*models.RoutingTCPRoute{r}
			rows = append(rows, row)
		}
	}
	return rows
}

func routeColumns() []column[*models.RoutingTableEntry] {
	type re = *models.RoutingTableEntry
	return []column[re]{
		{"ROUTE", func(e re) string {
			if hr := e.GetHttpRoutes(); len(hr) > 0 {
				return hr[0].GetHostname() + hr[0].GetPath()
			}
			if tr := e.GetTcpRoutes(); len(tr) > 0 {
				return "tcp:" + strconv.FormatUint(uint64(tr[0].GetExternalPort()), 10)
			}
			return ""
		}},
		{"PROCESS_GUID", re.GetProcessGuid},
		{"PORT", func(e re) string { return strconv.FormatUint(uint64(e.GetContainerPort()), 10) }},
		{"ENDPOINTS", func(e re) string {
			if len(e.GetEndpoints()) == 0 {
				return "none"
			}
			parts := make([]string, len(e.GetEndpoints()))
			for i, ep := range e.GetEndpoints() {
				parts[i] = ep.GetAddress() + ":" + strconv.FormatUint(uint64(ep.GetPort()), 10)
				if ep.GetEvacuating() {
					parts[i] += "(evacuating)"
				}
			}
			return strings.Join(parts, ",")
		}},
	}
}
