package routeemitter

import (
	"context"

	"github.com/gavel-scheduler/gavel/proto/models"
)

// RoutesResponse renders a table for the read API: every entry with
// routes (optionally of one process) and every refused route entry.
func RoutesResponse(t *Table, processGUID, cellID string) *models.ListRoutesResponse {
	resp := &models.ListRoutesResponse{CellId: cellID}
	for _, e := range t.Entries() {
		if !e.HasRoutes() || (processGUID != "" && e.ProcessGUID != processGUID) {
			continue
		}
		out := &models.RoutingTableEntry{
			ProcessGuid:   e.ProcessGUID,
			ContainerPort: e.ContainerPort,
			Domain:        e.Domain,
			LogGuid:       e.LogGUID,
			Cluster:       ClusterName(e.Key),
		}
		for _, r := range e.Routes.HTTP {
			out.HttpRoutes = append(out.HttpRoutes, &models.RoutingHTTPRoute{Hostname: r.Hostname, Path: r.Path})
		}
		for _, r := range e.Routes.TCP {
			out.TcpRoutes = append(out.TcpRoutes, &models.RoutingTCPRoute{RouterGroupGuid: r.RouterGroupGUID, ExternalPort: r.ExternalPort})
		}
		for _, ep := range e.Routable() {
			out.Endpoints = append(out.Endpoints, &models.RoutingEndpoint{
				InstanceGuid:     ep.InstanceGUID,
				Index:            ep.Index,
				CellId:           ep.CellID,
				Address:          ep.Address,
				Port:             ep.Port,
				Evacuating:       ep.Evacuating(),
				Presence:         ep.Presence,
				AvailabilityZone: ep.AvailabilityZone,
			})
		}
		resp.Entries = append(resp.Entries, out)
	}
	for _, d := range t.DesiredLRPs() {
		if processGUID != "" && d.ProcessGUID != processGUID {
			continue
		}
		for _, re := range d.Errors {
			resp.Problems = append(resp.Problems, &models.RoutingProblem{ProcessGuid: d.ProcessGUID, Field: re.Field, Reason: re.Reason})
		}
	}
	return resp
}

// routesServer is the RouteEmitter gRPC service.
type routesServer struct {
	models.UnimplementedRouteEmitterServer
	p *Process
}

func (s routesServer) ListRoutes(_ context.Context, req *models.ListRoutesRequest) (*models.ListRoutesResponse, error) {
	em, reason := s.p.serving()
	if em == nil {
		return nil, models.NewError(models.TypeUnavailable, "%s", reason)
	}
	var resp *models.ListRoutesResponse
	em.View(func(t *Table) { resp = RoutesResponse(t, req.GetProcessGuid(), s.p.cfg.CellID) })
	return resp, nil
}
