package routeemitter

import (
	"cmp"
	"maps"
	"slices"
	"strings"

	"github.com/gavel-scheduler/gavel/proto/models"
)

// Key identifies a routing table entry: one container port of one LRP.
// Each key becomes one Envoy cluster.
type Key struct {
	ProcessGUID   string
	ContainerPort uint32
}

func compareKeys(a, b Key) int {
	if c := strings.Compare(a.ProcessGUID, b.ProcessGUID); c != 0 {
		return c
	}
	return cmp.Compare(a.ContainerPort, b.ContainerPort)
}

// Tag is a record's modification tag.
type Tag struct {
	Epoch string
	Index uint32
}

func tagOf(m *models.ModificationTag) Tag {
	return Tag{Epoch: m.GetEpoch(), Index: m.GetIndex()}
}

// SucceededBy reports whether o is a later version than t, by Diego's rule:
// a different epoch (the record was recreated) or a larger index. An
// unknown (empty) epoch on either side counts as later, so a record without
// a tag is never stuck.
func (t Tag) SucceededBy(o Tag) bool {
	if t.Epoch == "" || o.Epoch == "" {
		return true
	}
	return t.Epoch != o.Epoch || t.Index < o.Index
}

// newerThan reports whether t is a strictly later version of the same
// record (same epoch) than o: the one case in which an event about o must
// not undo what t says.
func (t Tag) newerThan(o Tag) bool {
	return t.Epoch != "" && t.Epoch == o.Epoch && t.Index > o.Index
}

// EndpointID identifies an endpoint within an entry. The presence is part
// of it, so an instance's EVACUATING copy and the ORDINARY row that
// replaces it (or a SUSPECT row and its replacement) coexist.
type EndpointID struct {
	InstanceGUID string
	Presence     models.ActualLRP_Presence
}

// Endpoint is one RUNNING instance's address for one container port.
type Endpoint struct {
	InstanceGUID     string
	Index            int32
	CellID           string
	Presence         models.ActualLRP_Presence
	Address          string // where traffic goes: the host, or the container with direct instance routes
	Port             uint32
	AvailabilityZone string
	Tag              Tag
}

// ID is the endpoint's identity in its entry.
func (e Endpoint) ID() EndpointID {
	return EndpointID{InstanceGUID: e.InstanceGUID, Presence: e.Presence}
}

// Evacuating reports whether this is the copy a draining cell keeps
// running until the replacement instance runs elsewhere.
func (e Endpoint) Evacuating() bool { return e.Presence == models.ActualLRP_EVACUATING }

func compareEndpoints(a, b Endpoint) int {
	if a.Index != b.Index {
		return cmp.Compare(a.Index, b.Index)
	}
	if a.Presence != b.Presence {
		return cmp.Compare(a.Presence, b.Presence)
	}
	return strings.Compare(a.InstanceGUID, b.InstanceGUID)
}

// Desired is what the table keeps of a DesiredLRP: its identity, instance
// count, version and parsed routes.
type Desired struct {
	ProcessGUID string
	Domain      string
	LogGUID     string
	Instances   int32
	Tag         Tag
	Routes      map[uint32]PortRoutes
	// Errors lists the route entries that were refused.
	Errors []RouteError
}

// DesiredFrom parses a scheduling info's routes. It never fails: bad route
// entries are left out and listed in Errors.
func DesiredFrom(si *models.DesiredLRPSchedulingInfo) *Desired {
	routes, errs := ParseRoutes(si.GetRoutes())
	k := si.GetDesiredLrpKey()
	return &Desired{
		ProcessGUID: k.GetProcessGuid(),
		Domain:      k.GetDomain(),
		LogGUID:     k.GetLogGuid(),
		Instances:   si.GetInstances(),
		Tag:         tagOf(si.GetModificationTag()),
		Routes:      routes,
		Errors:      errs,
	}
}

// Entry is the routing table row of one key. Entries are values: the table
// replaces an entry instead of changing it, so a Diff can hold the entry
// before and after a change, and a reader holding one sees it whole.
type Entry struct {
	Key
	// Known is set once the DesiredLRP is known; Domain, LogGUID,
	// Instances and Routes come from it.
	Known     bool
	Domain    string
	LogGUID   string
	Instances int32
	Routes    PortRoutes
	// Endpoints holds every RUNNING, routable instance that maps this
	// port, whatever its index; Routable filters by the instance count.
	Endpoints map[EndpointID]Endpoint
}

// HasRoutes reports whether the entry has any route, which is what makes
// it a cluster.
func (e *Entry) HasRoutes() bool { return e != nil && !e.Routes.Empty() }

// Routable returns the endpoints to send traffic to, in a stable order:
// those whose index is within the desired instance count (instances above
// it are on their way out).
func (e *Entry) Routable() []Endpoint {
	if e == nil {
		return nil
	}
	out := make([]Endpoint, 0, len(e.Endpoints))
	for _, ep := range e.Endpoints {
		if e.routable(ep) {
			out = append(out, ep)
		}
	}
	slices.SortFunc(out, compareEndpoints)
	return out
}

func (e *Entry) routable(ep Endpoint) bool { return !e.Known || ep.Index < e.Instances }

// counts returns the route and routable endpoint counts the entry adds to
// the table's totals; an entry without routes serves nothing.
func (e *Entry) counts() (routes, endpoints int) {
	if !e.HasRoutes() {
		return 0, 0
	}
	for _, ep := range e.Endpoints {
		if e.routable(ep) {
			endpoints++
		}
	}
	return len(e.Routes.HTTP) + len(e.Routes.TCP), endpoints
}

// Equal compares two entries (nil is the absent entry).
func (e *Entry) Equal(o *Entry) bool {
	if e == nil || o == nil {
		return e == o
	}
	return e.Key == o.Key && e.Known == o.Known && e.Domain == o.Domain && e.LogGUID == o.LogGUID &&
		e.Instances == o.Instances && e.Routes.Equal(o.Routes) && maps.Equal(e.Endpoints, o.Endpoints)
}

func (e *Entry) empty() bool { return e.Routes.Empty() && len(e.Endpoints) == 0 }

func (e *Entry) clone() *Entry {
	c := *e
	c.Endpoints = maps.Clone(e.Endpoints)
	if c.Endpoints == nil {
		c.Endpoints = map[EndpointID]Endpoint{}
	}
	return &c
}

// Change is one entry before and after an update; nil means absent.
type Change struct {
	Key
	Before, After *Entry
}

// RoutesChanged reports whether the change touches routes (and so the
// cluster, route configuration or listeners), not only endpoints.
func (c Change) RoutesChanged() bool {
	var b, a PortRoutes
	if c.Before != nil {
		b = c.Before.Routes
	}
	if c.After != nil {
		a = c.After.Routes
	}
	return !b.Equal(a)
}

// Diff lists the entries an update changed, in key order.
type Diff []Change

// Options tune how instances become endpoints.
type Options struct {
	// DirectInstanceRoutes sends traffic to the container address and
	// port (instead of the host's) for instances that state no preference.
	DirectInstanceRoutes bool
	// CellID keeps only instances on this cell (local mode); desired LRPs
	// are then kept only for processes with an instance here.
	CellID string
}

// Table is the routing table. It is a plain value with no I/O: the
// emitter applies BBS events and sync results to it, and every update
// returns the Diff it made. It is not safe for concurrent use; the emitter
// guards it.
type Table struct {
	opts    Options
	entries map[Key]*Entry
	desired map[string]*Desired
	// byGUID indexes the ports with an entry, per process guid.
	byGUID map[string]map[uint32]struct{}
	// http holds the keys with HTTP routes; tcp the keys with a TCP route
	// on each external port.
	http map[Key]struct{}
	tcp  map[uint32]map[Key]struct{}
	// gone remembers the tag each endpoint was removed at, so that a
	// stale event about it cannot bring it back. A sync builds a new
	// table, which bounds how long these are kept.
	gone map[EndpointID]Tag
	// routes and endpoints are running totals for the metrics; invalid
	// counts desired LRPs with refused routes.
	routes, endpoints, invalid int
}

// NewTable returns an empty table.
func NewTable(opts Options) *Table {
	return &Table{
		opts:    opts,
		entries: map[Key]*Entry{},
		desired: map[string]*Desired{},
		byGUID:  map[string]map[uint32]struct{}{},
		http:    map[Key]struct{}{},
		tcp:     map[uint32]map[Key]struct{}{},
		gone:    map[EndpointID]Tag{},
	}
}

// BuildTable builds a table from a full listing, as a sync does: the
// desired LRPs' scheduling infos and the actual LRPs.
//
// It gives the table that applying every actual LRP in turn would, but
// gathers each entry's endpoints first and stores each entry once: a sync
// of 100k instances would otherwise copy every entry once per endpoint.
func BuildTable(opts Options, desired []*models.DesiredLRPSchedulingInfo, actuals []*models.ActualLRP) *Table {
	t := NewTable(opts)
	for _, si := range desired {
		t.SetDesired(DesiredFrom(si))
	}
	byKey := map[Key]map[EndpointID]Endpoint{}
	var keys []Key
	for _, a := range actuals {
		if opts.CellID != "" && a.GetActualLrpInstanceKey().GetCellId() != opts.CellID {
			continue
		}
		for _, pe := range t.endpointsOf(a) {
			k := Key{ProcessGUID: a.GetActualLrpKey().GetProcessGuid(), ContainerPort: pe.port}
			eps := byKey[k]
			if eps == nil {
				eps = map[EndpointID]Endpoint{}
				byKey[k] = eps
				keys = append(keys, k)
			}
			id := pe.ep.ID()
			if stored, ok := eps[id]; ok && stored.Tag.newerThan(pe.ep.Tag) {
				continue
			}
			eps[id] = pe.ep
		}
	}
	var db diffBuilder // a fresh table has nothing to diff against
	for _, k := range keys {
		e := t.base(k)
		maps.Copy(e.Endpoints, byKey[k])
		t.set(&db, k, e)
	}
	return t
}

// Entry returns the entry of k, or nil.
func (t *Table) Entry(k Key) *Entry { return t.entries[k] }

// Desired returns what the table knows of a DesiredLRP, or nil.
func (t *Table) Desired(guid string) *Desired { return t.desired[guid] }

// Knows reports whether the table holds anything of a process.
func (t *Table) Knows(guid string) bool {
	return t.desired[guid] != nil || len(t.byGUID[guid]) > 0
}

func (t *Table) countInvalid(d *Desired, n int) {
	if d != nil && len(d.Errors) > 0 {
		t.invalid += n
	}
}

// InvalidRouteLRPs counts the desired LRPs with at least one refused route.
func (t *Table) InvalidRouteLRPs() int { return t.invalid }

// Len is the number of entries.
func (t *Table) Len() int { return len(t.entries) }

// Counts returns the number of routes (HTTP and TCP) and of routable
// endpoints of entries with routes.
func (t *Table) Counts() (routes, endpoints int) { return t.routes, t.endpoints }

// Entries returns every entry in key order.
func (t *Table) Entries() []*Entry {
	out := slices.Collect(maps.Values(t.entries))
	slices.SortFunc(out, func(a, b *Entry) int { return compareKeys(a.Key, b.Key) })
	return out
}

// DesiredLRPs returns the desired LRPs in process guid order.
func (t *Table) DesiredLRPs() []*Desired {
	out := slices.Collect(maps.Values(t.desired))
	slices.SortFunc(out, func(a, b *Desired) int { return strings.Compare(a.ProcessGUID, b.ProcessGUID) })
	return out
}

// HTTPEntries returns the entries with HTTP routes, in key order.
func (t *Table) HTTPEntries() []*Entry { return t.collect(t.http) }

// TCPEntries returns the entries with a TCP route on an external port, in
// key order.
func (t *Table) TCPEntries(externalPort uint32) []*Entry { return t.collect(t.tcp[externalPort]) }

func (t *Table) collect(keys map[Key]struct{}) []*Entry {
	out := make([]*Entry, 0, len(keys))
	for k := range keys {
		out = append(out, t.entries[k])
	}
	slices.SortFunc(out, func(a, b *Entry) int { return compareKeys(a.Key, b.Key) })
	return out
}

// Apply applies one BBS LRP event and returns what it changed. Crash
// events change nothing here (the instance change that comes with them
// does).
func (t *Table) Apply(ev *models.LRPEvent) Diff {
	switch e := ev.GetEvent().(type) {
	case *models.LRPEvent_DesiredLrpCreated:
		return t.setDesiredEvent(e.DesiredLrpCreated.GetDesiredLrp())
	case *models.LRPEvent_DesiredLrpChanged:
		return t.setDesiredEvent(e.DesiredLrpChanged.GetAfter())
	case *models.LRPEvent_DesiredLrpRemoved:
		d := e.DesiredLrpRemoved.GetDesiredLrp()
		return t.RemoveDesired(d.GetDesiredLrpKey().GetProcessGuid(), tagOf(d.GetModificationTag()))
	case *models.LRPEvent_ActualLrpInstanceCreated:
		return t.ApplyActual(nil, e.ActualLrpInstanceCreated.GetActualLrp())
	case *models.LRPEvent_ActualLrpInstanceChanged:
		return t.ApplyActual(e.ActualLrpInstanceChanged.GetBefore(), e.ActualLrpInstanceChanged.GetAfter())
	case *models.LRPEvent_ActualLrpInstanceRemoved:
		return t.ApplyActual(e.ActualLrpInstanceRemoved.GetActualLrp(), nil)
	}
	return nil
}

func (t *Table) setDesiredEvent(si *models.DesiredLRPSchedulingInfo) Diff {
	guid := si.GetDesiredLrpKey().GetProcessGuid()
	if t.opts.CellID != "" && !t.Knows(guid) {
		// Local mode follows only the processes it runs an instance of.
		return nil
	}
	return t.SetDesired(DesiredFrom(si))
}

// SetDesired records a created or changed DesiredLRP: its routes replace
// the old ones port by port and its instance count applies to every
// entry of the process. A version that does not succeed the stored one is
// ignored, so a stale event never rolls routes back.
func (t *Table) SetDesired(d *Desired) Diff {
	if old := t.desired[d.ProcessGUID]; old != nil && !old.Tag.SucceededBy(d.Tag) {
		return nil
	}
	t.countInvalid(t.desired[d.ProcessGUID], -1)
	t.countInvalid(d, 1)
	var db diffBuilder
	ports := maps.Clone(t.byGUID[d.ProcessGUID])
	if ports == nil {
		ports = map[uint32]struct{}{}
	}
	for p := range d.Routes {
		ports[p] = struct{}{}
	}
	t.desired[d.ProcessGUID] = d
	for p := range ports {
		k := Key{ProcessGUID: d.ProcessGUID, ContainerPort: p}
		e := t.base(k)
		e.Known, e.Domain, e.LogGUID, e.Instances = true, d.Domain, d.LogGUID, d.Instances
		e.Routes = d.Routes[p]
		t.set(&db, k, e)
	}
	return db.diff()
}

// RemoveDesired drops a DesiredLRP's routes. The instances stay in the
// table until their own removal events arrive, but serve nothing without
// routes. A removal of an older version than the stored one is ignored.
func (t *Table) RemoveDesired(guid string, tag Tag) Diff {
	old := t.desired[guid]
	if old == nil || old.Tag.newerThan(tag) {
		return nil
	}
	t.countInvalid(old, -1)
	delete(t.desired, guid)
	var db diffBuilder
	for p := range maps.Clone(t.byGUID[guid]) {
		k := Key{ProcessGUID: guid, ContainerPort: p}
		e := t.base(k)
		e.Known, e.Domain, e.LogGUID, e.Instances, e.Routes = false, "", "", 0, PortRoutes{}
		t.set(&db, k, e)
	}
	return db.diff()
}

// ApplyActual applies one instance change: before is nil for a created
// row, after is nil for a removed one. The endpoints of before that after
// no longer has are removed, and after's are added or updated, unless the
// table holds a strictly newer version of the row (a stale event).
func (t *Table) ApplyActual(before, after *models.ActualLRP) Diff {
	if t.opts.CellID != "" {
		// Keep only the side that is on this cell: an instance that left
		// the cell is a removal here.
		if before.GetActualLrpInstanceKey().GetCellId() != t.opts.CellID {
			before = nil
		}
		if after.GetActualLrpInstanceKey().GetCellId() != t.opts.CellID {
			after = nil
		}
	}
	removed := t.endpointsOf(before)
	added := t.endpointsOf(after)
	if len(removed) == 0 && len(added) == 0 {
		return nil
	}
	tag := tagOf(before.GetModificationTag())
	if after != nil {
		tag = tagOf(after.GetModificationTag())
	}
	var db diffBuilder
	for _, r := range removed {
		if slices.ContainsFunc(added, func(a portEndpoint) bool { return a.port == r.port && a.ep.ID() == r.ep.ID() }) {
			continue
		}
		k := Key{ProcessGUID: before.GetActualLrpKey().GetProcessGuid(), ContainerPort: r.port}
		cur := t.entries[k]
		if cur == nil {
			continue
		}
		stored, ok := cur.Endpoints[r.ep.ID()]
		if !ok || stored.Tag.newerThan(tag) {
			continue
		}
		e := cur.clone()
		delete(e.Endpoints, r.ep.ID())
		t.set(&db, k, e)
		if g, ok := t.gone[r.ep.ID()]; !ok || tag.newerThan(g) {
			t.gone[r.ep.ID()] = tag
		}
	}
	var revived []EndpointID
	for _, a := range added {
		k := Key{ProcessGUID: after.GetActualLrpKey().GetProcessGuid(), ContainerPort: a.port}
		cur := t.entries[k]
		if cur != nil {
			if stored, ok := cur.Endpoints[a.ep.ID()]; ok && (stored == a.ep || stored.Tag.newerThan(a.ep.Tag)) {
				continue
			}
		}
		if g, ok := t.gone[a.ep.ID()]; ok && (g == a.ep.Tag || g.newerThan(a.ep.Tag)) {
			// Removed at this version or a later one: a late event.
			continue
		}
		e := t.base(k)
		e.Endpoints[a.ep.ID()] = a.ep
		t.set(&db, k, e)
		revived = append(revived, a.ep.ID())
	}
	for _, id := range revived {
		delete(t.gone, id)
	}
	return db.diff()
}

type portEndpoint struct {
	port uint32
	ep   Endpoint
}

// endpointsOf returns the endpoints a row stands for: one per port mapping
// of a RUNNING instance whose readiness (routable) is unset or true.
func (t *Table) endpointsOf(lrp *models.ActualLRP) []portEndpoint {
	if lrp == nil || lrp.GetState() != models.ActualLRP_RUNNING || (lrp.Routable != nil && !lrp.GetRoutable()) {
		return nil
	}
	ik := lrp.GetActualLrpInstanceKey()
	if ik.GetInstanceGuid() == "" {
		return nil
	}
	net := lrp.GetActualLrpNetInfo()
	direct := net.GetPreferredAddress() == models.ActualLRPNetInfo_INSTANCE ||
		(net.GetPreferredAddress() == models.ActualLRPNetInfo_UNKNOWN && t.opts.DirectInstanceRoutes)
	out := make([]portEndpoint, 0, len(net.GetPorts()))
	for _, pm := range net.GetPorts() {
		addr, port := net.GetAddress(), pm.GetHostPort()
		if direct {
			addr, port = net.GetInstanceAddress(), pm.GetContainerPort()
		}
		if pm.GetContainerPort() == 0 || addr == "" || port == 0 {
			continue
		}
		out = append(out, portEndpoint{port: pm.GetContainerPort(), ep: Endpoint{
			InstanceGUID:     ik.GetInstanceGuid(),
			Index:            lrp.GetActualLrpKey().GetIndex(),
			CellID:           ik.GetCellId(),
			Presence:         lrp.GetPresence(),
			Address:          addr,
			Port:             port,
			AvailabilityZone: lrp.GetAvailabilityZone(),
			Tag:              tagOf(lrp.GetModificationTag()),
		}})
	}
	return out
}

// base returns a private copy of k's entry to modify, or a new entry
// filled from the DesiredLRP when there is none.
func (t *Table) base(k Key) *Entry {
	if cur := t.entries[k]; cur != nil {
		return cur.clone()
	}
	e := &Entry{Key: k, Endpoints: map[EndpointID]Endpoint{}}
	if d := t.desired[k.ProcessGUID]; d != nil {
		e.Known, e.Domain, e.LogGUID, e.Instances = true, d.Domain, d.LogGUID, d.Instances
		e.Routes = d.Routes[k.ContainerPort]
	}
	return e
}

// set stores e as k's entry (an empty entry is deleted), keeps the indexes
// and totals in step, and records the change.
func (t *Table) set(db *diffBuilder, k Key, e *Entry) {
	old := t.entries[k]
	if e != nil && e.empty() {
		e = nil
	}
	if old == nil && e == nil {
		return
	}
	db.record(k, old, e)
	if old != nil {
		r, n := old.counts()
		t.routes, t.endpoints = t.routes-r, t.endpoints-n
		delete(t.http, k)
		for _, tr := range old.Routes.TCP {
			if s := t.tcp[tr.ExternalPort]; s != nil {
				delete(s, k)
				if len(s) == 0 {
					delete(t.tcp, tr.ExternalPort)
				}
			}
		}
	}
	if e == nil {
		delete(t.entries, k)
		if ports := t.byGUID[k.ProcessGUID]; ports != nil {
			delete(ports, k.ContainerPort)
			if len(ports) == 0 {
				delete(t.byGUID, k.ProcessGUID)
			}
		}
		return
	}
	t.entries[k] = e
	ports := t.byGUID[k.ProcessGUID]
	if ports == nil {
		ports = map[uint32]struct{}{}
		t.byGUID[k.ProcessGUID] = ports
	}
	ports[k.ContainerPort] = struct{}{}
	r, n := e.counts()
	t.routes, t.endpoints = t.routes+r, t.endpoints+n
	if len(e.Routes.HTTP) > 0 {
		t.http[k] = struct{}{}
	}
	for _, tr := range e.Routes.TCP {
		s := t.tcp[tr.ExternalPort]
		if s == nil {
			s = map[Key]struct{}{}
			t.tcp[tr.ExternalPort] = s
		}
		s[k] = struct{}{}
	}
}

// diffBuilder gathers the changes of one update, keeping each key's first
// "before" and last "after".
type diffBuilder struct {
	changes []Change
	at      map[Key]int
}

func (b *diffBuilder) record(k Key, before, after *Entry) {
	if i, ok := b.at[k]; ok {
		b.changes[i].After = after
		return
	}
	if b.at == nil {
		b.at = map[Key]int{}
	}
	b.at[k] = len(b.changes)
	b.changes = append(b.changes, Change{Key: k, Before: before, After: after})
}

func (b *diffBuilder) diff() Diff {
	out := b.changes[:0]
	for _, c := range b.changes {
		if !c.Before.Equal(c.After) {
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		return nil
	}
	slices.SortFunc(out, func(a, b Change) int { return compareKeys(a.Key, b.Key) })
	return out
}

// MergeDiffs joins the diffs of consecutive updates into one, as if they
// were a single update.
func MergeDiffs(first, second Diff) Diff {
	if len(first) == 0 {
		return second
	}
	if len(second) == 0 {
		return first
	}
	var db diffBuilder
	for _, c := range first {
		db.record(c.Key, c.Before, c.After)
	}
	for _, c := range second {
		db.record(c.Key, c.Before, c.After)
	}
	return db.diff()
}

// DiffTables lists the entries that differ between two tables, as a full
// sync's swap emits them.
func DiffTables(old, new *Table) Diff {
	var db diffBuilder
	for k, o := range old.entries {
		if n := new.entries[k]; !o.Equal(n) {
			db.record(k, o, n)
		}
	}
	for k, n := range new.entries {
		if _, ok := old.entries[k]; !ok {
			db.record(k, nil, n)
		}
	}
	return db.diff()
}

// RetainStale carries into t (a freshly built table) what old had for
// processes whose domain is not fresh: Diego's guard against unregistering
// the routes of apps whose desired state may merely be out of date. For
// those processes a sync only adds; events still remove.
func (t *Table) RetainStale(old *Table, fresh map[string]bool) {
	var db diffBuilder
	for guid, d := range old.desired {
		if fresh[d.Domain] || t.desired[guid] != nil {
			continue
		}
		t.desired[guid] = d
		t.countInvalid(d, 1)
	}
	for k, o := range old.entries {
		if !o.Known || fresh[o.Domain] {
			continue
		}
		n := t.entries[k]
		if n == nil {
			t.set(&db, k, o)
			continue
		}
		if n.Known && n.Domain != o.Domain {
			continue
		}
		merged := n.clone()
		if !merged.Known {
			merged.Known, merged.Domain, merged.LogGUID, merged.Instances, merged.Routes = true, o.Domain, o.LogGUID, o.Instances, o.Routes
		}
		for id, ep := range o.Endpoints {
			if _, ok := merged.Endpoints[id]; !ok {
				merged.Endpoints[id] = ep
			}
		}
		t.set(&db, k, merged)
	}
}
