package rep

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"sync"

	"github.com/gavel-scheduler/gavel/executor"
	"github.com/gavel-scheduler/gavel/proto/models"
)

// instanceInfo is what an instance reports to the BBS beside its network
// info: its internal routes and its resolved metric tags.
type instanceInfo struct {
	routes []*models.ActualLRPInternalRoute
	tags   map[string]string
}

// internalRouteJSON is one internal route as kept in a container tag.
type internalRouteJSON struct {
	Hostname string `json:"hostname"`
}

// desiredInstanceInfo is what the instance at index, named instanceGuid,
// of d carries. Bad internal-router entries are skipped (err names them);
// the BBS and the converger read the routes the same way, so they agree.
func desiredInstanceInfo(d *models.DesiredLRP, index int32, instanceGuid string) (instanceInfo, error) {
	routes, err := d.InternalRoutes()
	return instanceInfo{routes: routes, tags: d.InstanceMetricTags(index, instanceGuid)}, err
}

// containerTags writes the info as the container's tags, so that it
// survives a rep restart with the container.
func (i instanceInfo) containerTags() executor.Tags {
	routes := make([]internalRouteJSON, len(i.routes))
	for n, r := range i.routes {
		routes[n] = internalRouteJSON{Hostname: r.GetHostname()}
	}
	tags := i.tags
	if tags == nil {
		tags = map[string]string{}
	}
	r, _ := json.Marshal(routes) // strings always encode
	t, _ := json.Marshal(tags)
	return executor.Tags{TagInternalRoutes: string(r), TagMetricTags: string(t)}
}

// containerInstanceInfo reads the info the rep wrote on c when it ran it.
// A container run before these tags existed (or not yet run) has none.
func containerInstanceInfo(c executor.Container) instanceInfo {
	var info instanceInfo
	var routes []internalRouteJSON
	if json.Unmarshal([]byte(c.Tags[TagInternalRoutes]), &routes) == nil {
		for _, r := range routes {
			if r.Hostname != "" {
				info.routes = append(info.routes, &models.ActualLRPInternalRoute{Hostname: r.Hostname})
			}
		}
	}
	var tags map[string]string
	if json.Unmarshal([]byte(c.Tags[TagMetricTags]), &tags) == nil && len(tags) > 0 {
		info.tags = tags
	}
	return info
}

// overrides are the instance infos UpdateLRPInstance gave, by instance
// guid; they take the place of what the container's tags say. The executor
// cannot change a container's tags, so they live only in this rep process:
// after a restart the rep reports the tags' values again until the
// converger, seeing the drift from the desired LRP on its next pass, sends
// UpdateLRPInstance anew. It is safe for concurrent use.
type overrides struct {
	mu sync.Mutex // guards m
	m  map[string]instanceInfo
}

func newOverrides() *overrides { return &overrides{m: map[string]instanceInfo{}} }

func (o *overrides) set(guid string, info instanceInfo) {
	o.mu.Lock()
	defer o.mu.Unlock()
	routes := make([]*models.ActualLRPInternalRoute, len(info.routes))
	for i, r := range info.routes {
		routes[i] = &models.ActualLRPInternalRoute{Hostname: r.GetHostname()}
	}
	o.m[guid] = instanceInfo{routes: routes, tags: maps.Clone(info.tags)}
}

func (o *overrides) get(guid string) (instanceInfo, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	info, ok := o.m[guid]
	return info, ok
}

func (o *overrides) drop(guid string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.m, guid)
}

// retain drops the overrides of every container not in have.
func (o *overrides) retain(have map[string]bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for guid := range o.m {
		if !have[guid] {
			delete(o.m, guid)
		}
	}
}

// info is what the instance in c reports now: the override if it was
// updated, else what its tags say.
func (o *overrides) info(c executor.Container) instanceInfo {
	if info, ok := o.get(c.Guid); ok {
		return info
	}
	return containerInstanceInfo(c)
}

// UpdateLRP implements LRPUpdater for a real cell: the instance's new
// internal routes and metric tags replace what its container was run with,
// and its StartActualLRP is sent again at once with them (queued like any
// other operation on the container, so it never races the container's
// lifecycle); it returns once that has run. Every later StartActualLRP
// (each bulk sync) and EvacuateRunningActualLRP carries them too.
func (c *Cell) UpdateLRP(ctx context.Context, req *models.UpdateLRPInstanceRequest) error {
	guid := req.GetActualLrpInstanceKey().GetInstanceGuid()
	ctr, err := c.exec.GetContainer(ctx, guid)
	if errors.Is(err, executor.ErrContainerNotFound) {
		return models.NewError(models.TypeResourceNotFound, "no instance %q on cell %s", guid, c.cfg.CellID)
	}
	if err != nil {
		return fmt.Errorf("update instance %s: %w", guid, err)
	}
	key, _, ok := lrpKeys(ctr, c.cfg.CellID)
	want := req.GetActualLrpKey()
	if ctr.Tags[TagLifecycle] != LifecycleLRP || !ok || key.ProcessGuid != want.GetProcessGuid() || key.Index != want.GetIndex() {
		return models.NewError(models.TypeInvalidRequest, "container %q on cell %s is not instance %s/%d",
			guid, c.cfg.CellID, want.GetProcessGuid(), want.GetIndex())
	}
	c.proc.overrides.set(guid, instanceInfo{routes: req.GetActualLrpInternalRoutes(), tags: req.GetMetricTags()})
	c.logger.Info("instance updated", "process_guid", key.ProcessGuid, "index", key.Index, "instance_guid", guid,
		"internal_routes", len(req.GetActualLrpInternalRoutes()), "metric_tags", len(req.GetMetricTags()))
	select {
	case <-c.queue.pushWait(guid, func(ctx context.Context) { c.proc.process(ctx, guid) }):
		return nil
	case <-ctx.Done():
		// Recorded; the queued start still goes out.
		return ctx.Err()
	}
}
