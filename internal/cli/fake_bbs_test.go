package cli

import (
	"context"
	"net"
	"path/filepath"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/gavel-scheduler/gavel/internal/clientconfig"
	"github.com/gavel-scheduler/gavel/proto/models"
)

// fakeBBS is a hand-written BBS that records every request and answers from
// fixed data. Methods a test does not set up answer Unimplemented.
type fakeBBS struct {
	models.UnimplementedBBSServer

	mu       sync.Mutex
	calls    []string        // method names, in order
	requests []proto.Message // requests, parallel to calls

	desired []*models.DesiredLRP
	actual  []*models.ActualLRP
	tasks   map[string]*models.Task
	// taskEvents are sent to every SubscribeTaskEvents stream whose After
	// lies before them; the stream then stays open until the client leaves.
	taskEvents []*models.TaskEvent
	cells      []*models.CellPresence
}

func (f *fakeBBS) record(method string, req proto.Message) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, method)
	f.requests = append(f.requests, proto.Clone(req))
}

// Calls returns the methods called so far.
func (f *fakeBBS) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// Last returns the last request sent to method, or nil.
func (f *fakeBBS) Last(method string) proto.Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := len(f.calls) - 1; i >= 0; i-- {
		if f.calls[i] == method {
			return f.requests[i]
		}
	}
	return nil
}

func (f *fakeBBS) DesireLRP(_ context.Context, req *models.DesireLRPRequest) (*models.DesireLRPResponse, error) {
	f.record("DesireLRP", req)
	return &models.DesireLRPResponse{}, nil
}

func (f *fakeBBS) ListDesiredLRPs(_ context.Context, req *models.ListDesiredLRPsRequest) (*models.ListDesiredLRPsResponse, error) {
	f.record("ListDesiredLRPs", req)
	var out []*models.DesiredLRP
	for _, d := range f.desired {
		if req.GetDomain() == "" || d.GetDomain() == req.GetDomain() {
			out = append(out, d)
		}
	}
	return &models.ListDesiredLRPsResponse{DesiredLrps: out, Revision: 42}, nil
}

func (f *fakeBBS) GetDesiredLRP(_ context.Context, req *models.GetDesiredLRPRequest) (*models.GetDesiredLRPResponse, error) {
	f.record("GetDesiredLRP", req)
	for _, d := range f.desired {
		if d.GetProcessGuid() == req.GetProcessGuid() {
			return &models.GetDesiredLRPResponse{DesiredLrp: d}, nil
		}
	}
	return nil, models.ToStatus(models.NewError(models.TypeResourceNotFound, "desired LRP %q not found", req.GetProcessGuid())).Err()
}

func (f *fakeBBS) ListDesiredLRPSchedulingInfos(_ context.Context, req *models.ListDesiredLRPsRequest) (*models.ListDesiredLRPSchedulingInfosResponse, error) {
	f.record("ListDesiredLRPSchedulingInfos", req)
	return &models.ListDesiredLRPSchedulingInfosResponse{}, nil
}

func (f *fakeBBS) ListActualLRPs(_ context.Context, req *models.ListActualLRPsRequest) (*models.ListActualLRPsResponse, error) {
	f.record("ListActualLRPs", req)
	var out []*models.ActualLRP
	for _, a := range f.actual {
		k := a.GetActualLrpKey()
		if (req.GetProcessGuid() == "" || k.GetProcessGuid() == req.GetProcessGuid()) &&
			(req.Index == nil || k.GetIndex() == req.GetIndex()) {
			out = append(out, a)
		}
	}
	return &models.ListActualLRPsResponse{ActualLrps: out}, nil
}

func (f *fakeBBS) RetireActualLRP(_ context.Context, req *models.RetireActualLRPRequest) (*models.ActualLRPLifecycleResponse, error) {
	f.record("RetireActualLRP", req)
	return &models.ActualLRPLifecycleResponse{}, nil
}

func (f *fakeBBS) ListTasks(_ context.Context, req *models.ListTasksRequest) (*models.ListTasksResponse, error) {
	f.record("ListTasks", req)
	return &models.ListTasksResponse{}, nil
}

func (f *fakeBBS) GetTask(_ context.Context, req *models.TaskGuidRequest) (*models.GetTaskResponse, error) {
	f.record("GetTask", req)
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.tasks[req.GetTaskGuid()]
	if !ok {
		return nil, models.ToStatus(models.NewError(models.TypeResourceNotFound, "task %q not found", req.GetTaskGuid())).Err()
	}
	return &models.GetTaskResponse{Task: t}, nil
}

func (f *fakeBBS) ResolvingTask(_ context.Context, req *models.TaskGuidRequest) (*models.TaskLifecycleResponse, error) {
	f.record("ResolvingTask", req)
	return &models.TaskLifecycleResponse{}, nil
}

func (f *fakeBBS) DeleteTask(_ context.Context, req *models.TaskGuidRequest) (*models.TaskLifecycleResponse, error) {
	f.record("DeleteTask", req)
	return &models.TaskLifecycleResponse{}, nil
}

func (f *fakeBBS) CancelTask(_ context.Context, req *models.TaskGuidRequest) (*models.TaskLifecycleResponse, error) {
	f.record("CancelTask", req)
	return &models.TaskLifecycleResponse{}, nil
}

func (f *fakeBBS) UpsertDomain(_ context.Context, req *models.UpsertDomainRequest) (*models.UpsertDomainResponse, error) {
	f.record("UpsertDomain", req)
	return &models.UpsertDomainResponse{}, nil
}

func (f *fakeBBS) SubscribeTaskEvents(req *models.SubscribeTaskEventsRequest, stream grpc.ServerStreamingServer[models.TaskEvent]) error {
	f.record("SubscribeTaskEvents", req)
	after := req.GetAfter()
	f.mu.Lock()
	events := append([]*models.TaskEvent(nil), f.taskEvents...)
	f.mu.Unlock()
	for _, ev := range events {
		p := ev.GetPosition()
		if after != nil && (p.GetRevision() < after.GetRevision() ||
			(p.GetRevision() == after.GetRevision() && p.GetSeq() <= after.GetSeq())) {
			continue
		}
		if err := stream.Send(ev); err != nil {
			return err
		}
	}
	<-stream.Context().Done()
	return stream.Context().Err()
}

func (f *fakeBBS) ListCells(_ context.Context, req *models.ListCellsRequest) (*models.ListCellsResponse, error) {
	f.record("ListCells", req)
	return &models.ListCellsResponse{Cells: f.cells}, nil
}

func (f *fakeBBS) GetCell(_ context.Context, req *models.GetCellRequest) (*models.GetCellResponse, error) {
	f.record("GetCell", req)
	for _, c := range f.cells {
		if c.CellId == req.CellId {
			return &models.GetCellResponse{Cell: c}, nil
		}
	}
	return nil, models.ToStatus(models.NewError(models.TypeResourceNotFound, "cell %q is not present", req.CellId)).Err()
}

// serve starts f on a 127.0.0.1 listener (on addr, or a free port when addr
// is empty) and returns the address and a stop function.
func serve(t *testing.T, f *fakeBBS, addr string) (string, func()) {
	t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	models.RegisterBBSServer(srv, f)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lis)
	}()
	stop := func() {
		srv.Stop()
		<-done
	}
	t.Cleanup(stop)
	return lis.Addr().String(), stop
}

// writeConfig writes a plaintext client config for addr and returns its path.
func writeConfig(t *testing.T, addr string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "client.json")
	if err := clientconfig.Write(path, &clientconfig.Config{BBSAddress: addr, Insecure: true}); err != nil {
		t.Fatal(err)
	}
	return path
}
