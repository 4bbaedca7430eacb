package bbs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/gavel-scheduler/gavel/internal/clientconfig"
	"github.com/gavel-scheduler/gavel/proto/models"
)

// Two reps, each talking to its own BBS process over the same etcd, race to
// claim the same instance: exactly one wins, every round.
func TestClaimRaceExactlyOneWinsThroughGRPC(t *testing.T) {
	c := newCluster(t, false)
	reps := []models.BBSClient{c.dial(c.start(bbsOptions{})), c.dial(c.start(bbsOptions{}))}
	ctx := ctxT(t)
	const rounds = 1000
	if _, err := reps[0].DesireLRP(ctx, &models.DesireLRPRequest{DesiredLrp: testDesired("race", rounds)}); err != nil {
		t.Fatal(err)
	}
	for i := range int32(rounds) {
		var wg sync.WaitGroup
		start := make(chan struct{})
		errs := make([]error, len(reps))
		for j, rep := range reps {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, errs[j] = rep.ClaimActualLRP(ctx, &models.ClaimActualLRPRequest{
					ProcessGuid: "race", Index: i,
					ActualLrpInstanceKey: &models.ActualLRPInstanceKey{InstanceGuid: fmt.Sprintf("inst-%d-%d", i, j), CellId: fmt.Sprintf("cell-%d", j)},
				})
			}()
		}
		close(start)
		wg.Wait()
		winner := -1
		for j, err := range errs {
			switch {
			case err == nil:
				if winner >= 0 {
					t.Fatalf("round %d: both reps won", i)
				}
				winner = j
			case errors.Is(models.FromStatus(err), models.ErrActualLRPCannotBeClaimed):
			default:
				t.Fatalf("round %d: rep %d: %v", i, j, err)
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: nobody won", i)
		}
		resp, err := reps[0].ListActualLRPs(ctx, &models.ListActualLRPsRequest{ProcessGuid: "race", Index: &i})
		if err != nil || len(resp.ActualLrps) != 1 {
			t.Fatalf("round %d: list: %v %v", i, resp, err)
		}
		if got, want := resp.ActualLrps[0].CellID(), fmt.Sprintf("cell-%d", winner); got != want {
			t.Fatalf("round %d: stored claim on %s, winner %s", i, got, want)
		}
	}
}

func TestPlaintextRefusedUnlessInsecure(t *testing.T) {
	c := newCluster(t, false)
	secure := c.start(bbsOptions{})
	ctx := ctxT(t)

	plain := func(addr string) error {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return err
		}
		defer conn.Close()
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_, err = models.NewBBSClient(conn).ListDomains(cctx, &models.ListDomainsRequest{})
		return err
	}
	if err := plain(secure.addr); err == nil {
		t.Fatal("plaintext call to a TLS BBS succeeded")
	}
	// The same server answers a client that presents its certificate...
	withCert := c.dialConfig(&clientconfig.Config{BBSAddress: secure.addr, CACert: c.certs.CACert, Insecure: false,
		ClientCert: c.certs.Components["client"].Cert, ClientKey: c.certs.Components["client"].Key})
	if _, err := withCert.ListDomains(ctx, &models.ListDomainsRequest{}); err != nil {
		t.Fatalf("mTLS call failed: %v", err)
	}
	// ...and refuses TLS without a client certificate.
	tc, err := (&clientconfig.Config{BBSAddress: secure.addr, CACert: c.certs.CACert, ClientCert: c.certs.Components["client"].Cert, ClientKey: c.certs.Components["client"].Key}).TLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	tc.Certificates = nil
	tc.GetClientCertificate = nil
	if conn, err := tlsDial(secure.addr, tc); err == nil {
		// The handshake may complete on the client side before the server
		// checks the certificate; the first read then fails.
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, rerr := conn.Read(make([]byte, 1))
		conn.Close()
		if rerr == nil {
			t.Fatal("TLS without a client certificate was accepted")
		}
	}

	open := c.start(bbsOptions{insecure: true})
	if err := plain(open.addr); err != nil {
		t.Fatalf("plaintext call to an --insecure BBS: %v", err)
	}
}

func TestHealthService(t *testing.T) {
	c := newCluster(t, false)
	b := c.start(bbsOptions{})
	cc := c.certs.Components["client"]
	conn, err := (&clientconfig.Config{BBSAddress: b.addr, CACert: c.certs.CACert, ClientCert: cc.Cert, ClientKey: cc.Key}).Dial(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(ctxT(t), &healthpb.HealthCheckRequest{Service: HealthService})
	if err != nil || resp.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health: %v %v", resp, err)
	}
}

// The callback receiver is down at first: the BBS keeps retrying until it
// comes up, delivers the result, and deletes the task.
func TestTaskCompletionCallbackRetriedUntilDelivered(t *testing.T) {
	c := newCluster(t, false)
	b := c.start(bbsOptions{callbacks: CallbackConfig{InitialBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, Attempts: 100}})
	client := c.dial(b)
	ctx := ctxT(t)

	// Reserve a port with nothing listening on it yet.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()

	if _, err := client.DesireTask(ctx, testTask("cb-task", "http://"+addr+"/done")); err != nil {
		t.Fatal(err)
	}
	if _, err := client.StartTask(ctx, &models.StartTaskRequest{TaskGuid: "cb-task", CellId: "cell-1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.CompleteTask(ctx, &models.CompleteTaskRequest{TaskGuid: "cb-task", CellId: "cell-1", Result: "42\n"}); err != nil {
		t.Fatal(err)
	}
	// The receiver is down: the task must be RESOLVING while the BBS retries.
	waitFor(t, "task RESOLVING while receiver is down", func() bool {
		r, err := client.GetTask(ctx, &models.TaskGuidRequest{TaskGuid: "cb-task"})
		return err == nil && r.Task.State == models.Task_RESOLVING
	})

	bodies := make(chan string, 4)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		bodies <- string(body)
		w.WriteHeader(http.StatusOK)
	})}
	lis, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("re-listen on %s: %v", addr, err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() { srv.Close() })

	select {
	case body := <-bodies:
		for _, want := range []string{`"task_guid":"cb-task"`, `"result":"42\n"`} {
			if !strings.Contains(body, want) {
				t.Errorf("callback body %s lacks %s", body, want)
			}
		}
	case <-ctx.Done():
		t.Fatal("callback never delivered")
	}
	waitFor(t, "task deleted after delivery", func() bool {
		_, err := client.GetTask(ctx, &models.TaskGuidRequest{TaskGuid: "cb-task"})
		return status.Code(err) == codes.NotFound
	})
}

func TestTaskRejectionsFailAfterMaxRetries(t *testing.T) {
	c := newCluster(t, false)
	client := c.dial(c.start(bbsOptions{}))
	ctx := ctxT(t)
	if _, err := client.DesireTask(ctx, testTask("picky", "")); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		r, err := client.RejectTask(ctx, &models.RejectTaskRequest{TaskGuid: "picky", RejectionReason: "insufficient resources"})
		if err != nil || r.Task.State != models.Task_PENDING || r.Task.RejectionCount != int32(i) {
			t.Fatalf("rejection %d: %v %v", i, r, err)
		}
	}
	r, err := client.RejectTask(ctx, &models.RejectTaskRequest{TaskGuid: "picky", RejectionReason: "insufficient resources"})
	if err != nil || r.Task.State != models.Task_COMPLETED || !r.Task.Failed || r.Task.FailureReason != "insufficient resources" {
		t.Fatalf("fourth rejection: %v %v", r, err)
	}
}

func TestCancelAndResolveTask(t *testing.T) {
	c := newCluster(t, false)
	client := c.dial(c.start(bbsOptions{}))
	ctx := ctxT(t)
	if _, err := client.DesireTask(ctx, testTask("t1", "")); err != nil {
		t.Fatal(err)
	}
	r, err := client.CancelTask(ctx, &models.TaskGuidRequest{TaskGuid: "t1"})
	if err != nil || r.Task.State != models.Task_COMPLETED || r.Task.FailureReason != "task was cancelled" {
		t.Fatalf("cancel: %v %v", r, err)
	}
	if _, err := client.ResolvingTask(ctx, &models.TaskGuidRequest{TaskGuid: "t1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.DeleteTask(ctx, &models.TaskGuidRequest{TaskGuid: "t1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.GetTask(ctx, &models.TaskGuidRequest{TaskGuid: "t1"}); status.Code(err) != codes.NotFound {
		t.Fatalf("deleted task: %v", err)
	}
}

func TestScaleAndRemoveDesiredLRP(t *testing.T) {
	c := newCluster(t, false)
	client := c.dial(c.start(bbsOptions{}))
	ctx := ctxT(t)
	if _, err := client.DesireLRP(ctx, &models.DesireLRPRequest{DesiredLrp: testDesired("web", 3)}); err != nil {
		t.Fatal(err)
	}
	count := func() int {
		r, err := client.ListActualLRPs(ctx, &models.ListActualLRPsRequest{ProcessGuid: "web"})
		if err != nil {
			t.Fatal(err)
		}
		return len(r.ActualLrps)
	}
	five := int32(5)
	if _, err := client.UpdateDesiredLRP(ctx, &models.UpdateDesiredLRPRequest{ProcessGuid: "web", Update: &models.DesiredLRPUpdate{Instances: &five}}); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 5 {
		t.Fatalf("after scale up: %d instances", n)
	}
	two := int32(2)
	if _, err := client.UpdateDesiredLRP(ctx, &models.UpdateDesiredLRPRequest{ProcessGuid: "web", Update: &models.DesiredLRPUpdate{Instances: &two}}); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 2 {
		t.Fatalf("after scale down: %d instances", n)
	}
	got, err := client.GetDesiredLRP(ctx, &models.GetDesiredLRPRequest{ProcessGuid: "web"})
	if err != nil || got.DesiredLrp.Instances != 2 || got.DesiredLrp.ModificationTag.GetIndex() != 2 {
		t.Fatalf("desired after updates: %v %v", got, err)
	}
	if _, err := client.RemoveDesiredLRP(ctx, &models.RemoveDesiredLRPRequest{ProcessGuid: "web"}); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 0 {
		t.Fatalf("after remove: %d instances", n)
	}
}

// A subscriber that resumes from a compacted revision is told to list again.
func TestCompactedResumeIsOutOfRange(t *testing.T) {
	c := newCluster(t, false)
	client := c.dial(c.start(bbsOptions{}))
	ctx := ctxT(t)
	var rev int64
	for i := range 5 {
		if _, err := client.DesireLRP(ctx, &models.DesireLRPRequest{DesiredLrp: testDesired(fmt.Sprintf("c%d", i), 1)}); err != nil {
			t.Fatal(err)
		}
		r, err := client.ListDesiredLRPs(ctx, &models.ListDesiredLRPsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if i == 1 {
			rev = r.Revision
		}
	}
	cur, err := c.etcd.Get(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.etcd.Compact(ctx, cur.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	stream, err := client.SubscribeLRPEvents(ctx, &models.SubscribeLRPEventsRequest{After: &models.EventPosition{Revision: rev}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = stream.Recv()
	if status.Code(err) != codes.OutOfRange || !strings.Contains(status.Convert(err).Message(), "list again") {
		t.Fatalf("resume from compacted revision: %v", err)
	}
}

// waitFor polls cond until it holds or a minute passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
