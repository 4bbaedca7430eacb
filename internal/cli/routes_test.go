package cli

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc"

	"github.com/gavel-scheduler/gavel/internal/clientconfig"
	"github.com/gavel-scheduler/gavel/proto/models"
)

// fakeRouteEmitter answers ListRoutes from a fixed response.
type fakeRouteEmitter struct {
	models.UnimplementedRouteEmitterServer
	resp *models.ListRoutesResponse
	last *models.ListRoutesRequest
}

func (f *fakeRouteEmitter) ListRoutes(_ context.Context, req *models.ListRoutesRequest) (*models.ListRoutesResponse, error) {
	f.last = req
	return f.resp, nil
}

func serveRouteEmitter(t *testing.T, f *fakeRouteEmitter) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	models.RegisterRouteEmitterServer(srv, f)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

func TestRoutes(t *testing.T) {
	f := &fakeRouteEmitter{resp: &models.ListRoutesResponse{
		Entries: []*models.RoutingTableEntry{
			{ProcessGuid: "web", ContainerPort: 8080, Cluster: "web_8080",
				HttpRoutes: []*models.RoutingHTTPRoute{{Hostname: "web.example.com"}, {Hostname: "web.example.com", Path: "/api"}},
				Endpoints: []*models.RoutingEndpoint{{InstanceGuid: "i0", Address: "10.0.0.1", Port: 61000},
					{InstanceGuid: "i1", Address: "10.0.0.2", Port: 61001, Evacuating: true}}},
			{ProcessGuid: "db", ContainerPort: 5432, TcpRoutes: []*models.RoutingTCPRoute{{ExternalPort: 61500}}},
		},
		Problems: []*models.RoutingProblem{{ProcessGuid: "bad", Field: "routes.cf-router[0].port", Reason: "0 is not a port (1-65535)"}},
	}}
	addr := serveRouteEmitter(t, f)
	path := filepath.Join(t.TempDir(), "client.json")
	if err := clientconfig.Write(path, &clientconfig.Config{BBSAddress: "127.0.0.1:1", Insecure: true, RouteEmitterAddress: addr}); err != nil {
		t.Fatal(err)
	}
	r := execute(t, invocation{config: path, terminal: true, args: []string{"routes"}})
	if r.err != nil {
		t.Fatal(r.err)
	}
	want := "ROUTE                PROCESS_GUID  PORT  ENDPOINTS\n" +
		"web.example.com      web           8080  10.0.0.1:61000,10.0.0.2:61001(evacuating)\n" +
		"web.example.com/api  web           8080  10.0.0.1:61000,10.0.0.2:61001(evacuating)\n" +
		"tcp:61500            db            5432  none\n"
	if r.stdout != want {
		t.Errorf("stdout =\n%s\nwant\n%s", r.stdout, want)
	}
	if !strings.Contains(r.stderr, "bad: invalid route routes.cf-router[0].port") {
		t.Errorf("stderr %q does not name the refused route", r.stderr)
	}

	// JSON lines: one route per line, filtered by process.
	r = execute(t, invocation{config: path, args: []string{"routes", "-p", "db"}})
	if r.err != nil {
		t.Fatal(r.err)
	}
	if f.last.GetProcessGuid() != "db" || strings.Count(r.stdout, "\n") != 3 || !strings.Contains(r.stdout, `"external_port":61500`) {
		t.Errorf("json output %q (request %v)", r.stdout, f.last)
	}
}

func TestRoutesNeedsAnAddress(t *testing.T) {
	path := writeConfig(t, "127.0.0.1:1")
	r := execute(t, invocation{config: path, args: []string{"routes"}})
	if r.err == nil || !strings.Contains(r.err.Error(), "route_emitter_address") {
		t.Fatalf("err %v", r.err)
	}
	r = execute(t, invocation{config: path, args: []string{"routes", "--route-emitter-address", "127.0.0.1:1", "--timeout", "2s"}})
	if r.err == nil || !strings.Contains(r.err.Error(), "route emitter at 127.0.0.1:1") {
		t.Fatalf("unreachable emitter: %v", r.err)
	}
}
