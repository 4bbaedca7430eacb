package bbs

import (
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/gavel-scheduler/gavel/internal/clientconfig"
	"github.com/gavel-scheduler/gavel/internal/config"
	"github.com/gavel-scheduler/gavel/proto/models"
)

// Open event streams (on the hub and on a private watch) end with
// Unavailable when the BBS stops, so the graceful stop completes instead of
// waiting out its timeout.
func TestRunnerStopEndsEventStreams(t *testing.T) {
	c := newCluster(t, false)
	bc := c.certs.Components["bbs"]
	cfg := DefaultConfig()
	cfg.ListenAddress = "127.0.0.1:0"
	cfg.CACert, cfg.ServerCert, cfg.ServerKey = c.certs.CACert, bc.Cert, bc.Key
	cfg.ShutdownTimeout = config.Duration(10 * time.Minute)
	r := NewRunner(cfg, c.etcd, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	signals := make(chan os.Signal, 1)
	ready := make(chan struct{})
	exited := make(chan error, 1)
	go func() { exited <- r.Run(signals, ready) }()
	select {
	case <-ready:
	case err := <-exited:
		t.Fatal(err)
	}
	cc := c.certs.Components["client"]
	client := c.dialConfig(&clientconfig.Config{BBSAddress: r.Addr(), CACert: c.certs.CACert, ClientCert: cc.Cert, ClientKey: cc.Key})
	ctx := ctxT(t)
	fresh, err := client.SubscribeLRPEvents(ctx, &models.SubscribeLRPEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	old, err := client.SubscribeTaskEvents(ctx, &models.SubscribeTaskEventsRequest{After: &models.EventPosition{Revision: 1}})
	if err != nil {
		t.Fatal(err)
	}
	// Make sure both streams are open on the server before stopping it.
	if _, err := client.DesireTask(ctx, testTask("probe", "")); err != nil {
		t.Fatal(err)
	}
	if _, err := old.Recv(); err != nil {
		t.Fatal(err)
	}
	signals <- os.Interrupt
	for name, recv := range map[string]func() error{
		"lrp": func() error { _, err := fresh.Recv(); return err },
		"task": func() error {
			for {
				if _, err := old.Recv(); err != nil {
					return err
				}
			}
		},
	} {
		if err := recv(); status.Code(err) != codes.Unavailable {
			t.Errorf("%s stream after stop: %v, want Unavailable", name, err)
		}
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatal("BBS still stopping after a minute: graceful stop waited on open streams")
	}
}
