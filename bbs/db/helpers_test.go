package db

import (
	"context"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/gavel-scheduler/gavel/internal/etcdembed"
	"github.com/gavel-scheduler/gavel/proto/models"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newTestStore(t testing.TB) (*Store, *clientv3.Client, *clock) {
	t.Helper()
	_, client := etcdembed.StartForTestOpts(t, etcdembed.Options{NoFsync: true})
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	return New(client, Config{Now: c.Now}), client, c
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func desired(guid string, instances int32) *models.DesiredLRP {
	return &models.DesiredLRP{
		ProcessGuid: guid,
		Domain:      "apps",
		LogGuid:     guid,
		Instances:   instances,
		Rootfs:      "preloaded:cflinuxfs4",
		MemoryMb:    128,
		DiskMb:      256,
		Ports:       []uint32{8080},
		Action: &models.Action{Kind: &models.Action_Run{Run: &models.RunAction{
			Path: "/bin/sh", Args: []string{"-c", "httpd -f -p 8080"}, User: "root",
		}}},
	}
}

func ik(guid, cell string) *models.ActualLRPInstanceKey {
	return &models.ActualLRPInstanceKey{InstanceGuid: guid, CellId: cell}
}

func netInfo(port uint32) *models.ActualLRPNetInfo {
	return &models.ActualLRPNetInfo{
		Address:         "127.0.0.1",
		InstanceAddress: "10.254.0.2",
		Ports:           []*models.PortMapping{{ContainerPort: 8080, HostPort: port}},
	}
}

func startReq(guid string, index int32, key *models.ActualLRPInstanceKey, port uint32) *models.StartActualLRPRequest {
	return &models.StartActualLRPRequest{
		ActualLrpKey:         &models.ActualLRPKey{ProcessGuid: guid, Index: index, Domain: "apps"},
		ActualLrpInstanceKey: key,
		ActualLrpNetInfo:     netInfo(port),
	}
}

func mustActual(t testing.TB, s *Store, guid string, index int32, p models.ActualLRP_Presence) *models.ActualLRP {
	t.Helper()
	a, err := s.ActualLRP(context.Background(), guid, index, p)
	if err != nil {
		t.Fatalf("read %s/%d/%s: %v", guid, index, p, err)
	}
	return a
}
