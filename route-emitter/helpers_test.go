package routeemitter

import (
	"encoding/json"
	"fmt"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/gavel-scheduler/gavel/proto/models"
)

// routesJSON turns {"cf-router": [...]} written as JSON into a DesiredLRP
// routes map.
func routesJSON(t testing.TB, s string) map[string]*structpb.Value {
	t.Helper()
	if s == "" {
		return nil
	}
	var raw map[string]any
	if err := json.Unmarshal([]byte(s), &raw); err != nil {
		t.Fatalf("routes %s: %v", s, err)
	}
	out := map[string]*structpb.Value{}
	for k, v := range raw {
		pv, err := structpb.NewValue(v)
		if err != nil {
			t.Fatalf("routes %s: %v", s, err)
		}
		out[k] = pv
	}
	return out
}

// httpRoutes is the cf-router JSON of hostnames on one port.
func httpRoutes(port int, hosts ...string) string {
	b, _ := json.Marshal(hosts)
	return fmt.Sprintf(`{"cf-router": [{"hostnames": %s, "port": %d}]}`, b, port)
}

func schedInfo(t testing.TB, guid string, instances int32, tag uint32, routes string) *models.DesiredLRPSchedulingInfo {
	return &models.DesiredLRPSchedulingInfo{
		DesiredLrpKey:   &models.DesiredLRPKey{ProcessGuid: guid, Domain: "apps", LogGuid: "log-" + guid},
		Instances:       instances,
		Routes:          routesJSON(t, routes),
		ModificationTag: &models.ModificationTag{Epoch: "d-" + guid, Index: tag},
	}
}

// lrp describes an actual LRP row for tests.
type lrp struct {
	guid     string
	index    int32
	state    models.ActualLRP_State
	presence models.ActualLRP_Presence
	instance string
	cell     string
	tag      uint32
	routable *bool
	ports    [][2]uint32 // container, host
	addr     string
}

func (l lrp) build() *models.ActualLRP {
	a := &models.ActualLRP{
		ActualLrpKey:    &models.ActualLRPKey{ProcessGuid: l.guid, Index: l.index, Domain: "apps"},
		State:           l.state,
		Presence:        l.presence,
		ModificationTag: &models.ModificationTag{Epoch: "a-" + l.guid + "-" + l.instance, Index: l.tag},
		Routable:        l.routable,
	}
	if l.instance != "" && l.state != models.ActualLRP_UNCLAIMED && l.state != models.ActualLRP_CRASHED {
		a.ActualLrpInstanceKey = &models.ActualLRPInstanceKey{InstanceGuid: l.instance, CellId: l.cell}
	}
	if l.state == models.ActualLRP_RUNNING {
		addr := l.addr
		if addr == "" {
			addr = "10.0.0.1"
		}
		net := &models.ActualLRPNetInfo{Address: addr, InstanceAddress: "172.16.0.9"}
		for _, p := range l.ports {
			net.Ports = append(net.Ports, &models.PortMapping{ContainerPort: p[0], HostPort: p[1]})
		}
		a.ActualLrpNetInfo = net
	}
	return a
}

// running is a RUNNING ORDINARY instance mapping container port 8080 to
// hostPort on 10.0.0.1.
func running(guid string, index int32, instance string, tag uint32, hostPort uint32) lrp {
	return lrp{guid: guid, index: index, state: models.ActualLRP_RUNNING, instance: instance, cell: "cell-1",
		tag: tag, ports: [][2]uint32{{8080, hostPort}}}
}

func (l lrp) with(f func(*lrp)) lrp { f(&l); return l }

func created(a *models.ActualLRP) *models.LRPEvent {
	return &models.LRPEvent{Event: &models.LRPEvent_ActualLrpInstanceCreated{
		ActualLrpInstanceCreated: &models.ActualLRPInstanceCreatedEvent{ActualLrp: a}}}
}

func changed(before, after *models.ActualLRP) *models.LRPEvent {
	return &models.LRPEvent{Event: &models.LRPEvent_ActualLrpInstanceChanged{
		ActualLrpInstanceChanged: &models.ActualLRPInstanceChangedEvent{Before: before, After: after}}}
}

func removed(a *models.ActualLRP) *models.LRPEvent {
	return &models.LRPEvent{Event: &models.LRPEvent_ActualLrpInstanceRemoved{
		ActualLrpInstanceRemoved: &models.ActualLRPInstanceRemovedEvent{ActualLrp: a}}}
}

func desiredCreated(si *models.DesiredLRPSchedulingInfo) *models.LRPEvent {
	return &models.LRPEvent{Event: &models.LRPEvent_DesiredLrpCreated{
		DesiredLrpCreated: &models.DesiredLRPCreatedEvent{DesiredLrp: si}}}
}

func desiredChanged(before, after *models.DesiredLRPSchedulingInfo) *models.LRPEvent {
	return &models.LRPEvent{Event: &models.LRPEvent_DesiredLrpChanged{
		DesiredLrpChanged: &models.DesiredLRPChangedEvent{Before: before, After: after}}}
}

func desiredRemoved(si *models.DesiredLRPSchedulingInfo) *models.LRPEvent {
	return &models.LRPEvent{Event: &models.LRPEvent_DesiredLrpRemoved{
		DesiredLrpRemoved: &models.DesiredLRPRemovedEvent{DesiredLrp: si}}}
}

func boolp(b bool) *bool { return proto.Bool(b) }
