package auctioneer

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// LRPPlacement is an instance won by a cell.
type LRPPlacement struct {
	LRP    LRP
	CellID string
}

// TaskPlacement is a task won by a cell.
type TaskPlacement struct {
	Task   Task
	CellID string
}

// LRPFailure is an instance no cell could take: the stage that stopped it
// (Category, for metrics) and the message for the BBS (Reason).
type LRPFailure struct {
	LRP      LRP
	Category Reason
	Reason   string
}

// TaskFailure is a task no cell could take, as LRPFailure.
type TaskFailure struct {
	Task     Task
	Category Reason
	Reason   string
}

// Plan is the outcome of scheduling one batch: what goes where, what could
// not be placed and why. Nothing has been sent to a cell yet.
type Plan struct {
	LRPs        []LRPPlacement
	Tasks       []TaskPlacement
	FailedLRPs  []LRPFailure
	FailedTasks []TaskFailure
}

// Schedule places a batch on cells, in memory: index-0 instances first (so
// every app gets one instance before anything gets a second), then tasks,
// then the other instances; larger work first within each group. Each
// placement reserves its resources on a copy of the cell, so later work sees
// it. The cells passed in are not modified.
func Schedule(cells []*Cell, lrps []LRP, tasks []Task) Plan {
	s := newScheduler(cells)
	var plan Plan
	first, rest := orderLRPs(lrps)
	for i := range first {
		s.placeLRP(&first[i], &plan)
	}
	for _, t := range orderTasks(tasks) {
		s.placeTask(&t, &plan)
	}
	for i := range rest {
		s.placeLRP(&rest[i], &plan)
	}
	return plan
}

// orderLRPs splits instances into index 0 and the rest, each sorted by
// index, then memory descending (then guid, so a batch always schedules the
// same way).
func orderLRPs(lrps []LRP) (first, rest []LRP) {
	sorted := slices.Clone(lrps)
	slices.SortStableFunc(sorted, func(a, b LRP) int {
		return cmp.Or(cmp.Compare(a.Index, b.Index), cmp.Compare(b.MemoryMB, a.MemoryMB), strings.Compare(a.ProcessGuid, b.ProcessGuid))
	})
	split := 0
	for split < len(sorted) && sorted[split].Index == 0 {
		split++
	}
	return sorted[:split], sorted[split:]
}

func orderTasks(tasks []Task) []Task {
	sorted := slices.Clone(tasks)
	slices.SortStableFunc(sorted, func(a, b Task) int {
		return cmp.Or(cmp.Compare(b.MemoryMB, a.MemoryMB), strings.Compare(a.TaskGuid, b.TaskGuid))
	})
	return sorted
}

// zone is the cells of one zone, with instance counts per process guid kept
// up to date as work is reserved (counting by scanning cells per instance
// would make a batch quadratic).
type zone struct {
	name   string
	cells  []int // indices into scheduler.cells
	counts map[string]int
}

type scheduler struct {
	cells []*Cell
	zones []*zone
	// static caches, per distinct constraint, the outcome of the filters
	// that do not depend on resources (evacuating, rootfs, drivers, tags)
	// for every cell: a batch has few distinct constraints and many
	// instances, and these checks were most of the per-cell cost.
	static map[string][]Reason
}

// staticReasons returns, for each cell, why it can never take work with
// this constraint (ReasonNone when it can, resources permitting).
func (s *scheduler) staticReasons(con *Constraint) []Reason {
	key := con.RootFS + "\x00" + strings.Join(con.PlacementTags, "\x01") + "\x00" + strings.Join(con.VolumeDrivers, "\x01")
	if rs, ok := s.static[key]; ok {
		return rs
	}
	r := parseRootFS(con.RootFS)
	rs := make([]Reason, len(s.cells))
	for i, c := range s.cells {
		rs[i] = staticFilter(c, r, con)
	}
	s.static[key] = rs
	return rs
}

func newScheduler(in []*Cell) *scheduler {
	s := &scheduler{static: map[string][]Reason{}}
	byName := map[string]*zone{}
	for i, c := range in {
		cp := *c
		cp.LRPs = make(map[string]int, len(c.LRPs))
		for k, v := range c.LRPs {
			cp.LRPs[k] = v
		}
		s.cells = append(s.cells, &cp)
		z := byName[cp.Zone]
		if z == nil {
			z = &zone{name: cp.Zone, counts: map[string]int{}}
			byName[cp.Zone] = z
			s.zones = append(s.zones, z)
		}
		z.cells = append(z.cells, i)
		for guid, n := range cp.LRPs {
			z.counts[guid] += n
		}
	}
	slices.SortFunc(s.zones, func(a, b *zone) int { return strings.Compare(a.name, b.name) })
	return s
}

// tally records why cells refused one piece of work.
type tally struct {
	reasons  map[Reason]int
	memory   int
	disk     int
	slots    int
	resource int
}

func (t *tally) add(r Reason, s Shortfall) {
	if t.reasons == nil {
		t.reasons = map[Reason]int{}
	}
	t.reasons[r]++
	if r == ReasonResources {
		t.resource++
		if s.Memory {
			t.memory++
		}
		if s.Disk {
			t.disk++
		}
		if s.Containers {
			t.slots++
		}
	}
}

// message explains a failed placement: the most specific stage any cell
// reached wins (resources, then placement tags, volume drivers, rootfs).
// It returns that stage and the message.
func (t *tally) message(cells int, con *Constraint) (Reason, string) {
	cellsWord := func(n int) string {
		if n == 1 {
			return "1 cell"
		}
		return fmt.Sprintf("%d cells", n)
	}
	switch {
	case cells == 0:
		return ReasonNoCells, "no cells available"
	case t.resource > 0:
		var parts []string
		if t.slots > 0 {
			parts = append(parts, "containers on "+cellsWord(t.slots))
		}
		if t.disk > 0 {
			parts = append(parts, "disk on "+cellsWord(t.disk))
		}
		if t.memory > 0 {
			parts = append(parts, "memory on "+cellsWord(t.memory))
		}
		return ReasonResources, "insufficient resources: " + strings.Join(parts, ", ")
	case t.reasons[ReasonPlacementTags] > 0:
		return ReasonPlacementTags, placementTagsMessage(con.PlacementTags)
	case t.reasons[ReasonVolumeDrivers] > 0:
		return ReasonVolumeDrivers, "found no compatible cell with required volume drivers"
	case t.reasons[ReasonRootFS] > 0:
		return ReasonRootFS, "found no compatible cell for required rootfs"
	default:
		return ReasonEvacuating, "found no compatible cell: every cell is evacuating"
	}
}

func placementTagsMessage(tags []string) string {
	quoted := make([]string, len(tags))
	for i, t := range tags {
		quoted[i] = fmt.Sprintf("%q", t)
	}
	switch len(tags) {
	case 0:
		return "found no compatible cell with no placement tags"
	case 1:
		return "found no compatible cell with placement tag " + quoted[0]
	default:
		return "found no compatible cell with placement tags " + strings.Join(quoted[:len(quoted)-1], ", ") + " and " + quoted[len(quoted)-1]
	}
}

// placeLRP picks the best cell in the zones holding the fewest instances of
// the process (zones tied on that count are pooled), falling through to
// busier zones only when the emptier ones have no room.
func (s *scheduler) placeLRP(lrp *LRP, plan *Plan) {
	static := s.staticReasons(&lrp.Constraint)
	order := slices.Clone(s.zones)
	slices.SortStableFunc(order, func(a, b *zone) int {
		return cmp.Compare(a.counts[lrp.ProcessGuid], b.counts[lrp.ProcessGuid])
	})
	var best *Cell
	var bestZone *zone
	bestScore := 0.0
	var why tally
	for i, z := range order {
		for _, i := range z.cells {
			c := s.cells[i]
			if reason, short := resourceFilter(c, static[i], lrp.MemoryMB, lrp.DiskMB); reason != ReasonNone {
				why.add(reason, short)
				continue
			}
			if score := ScoreLRP(c, lrp); best == nil || score < bestScore {
				best, bestZone, bestScore = c, z, score
			}
		}
		last := i+1 == len(order)
		if best != nil && (last || order[i+1].counts[lrp.ProcessGuid] != z.counts[lrp.ProcessGuid]) {
			break
		}
	}
	if best == nil {
		cat, msg := why.message(len(s.cells), &lrp.Constraint)
		plan.FailedLRPs = append(plan.FailedLRPs, LRPFailure{LRP: *lrp, Category: cat, Reason: msg})
		return
	}
	reserve(best, lrp.MemoryMB, lrp.DiskMB)
	best.LRPs[lrp.ProcessGuid]++
	bestZone.counts[lrp.ProcessGuid]++
	plan.LRPs = append(plan.LRPs, LRPPlacement{LRP: *lrp, CellID: best.ID})
}

// placeTask picks the best cell for a task; tasks are not zone-balanced.
func (s *scheduler) placeTask(task *Task, plan *Plan) {
	static := s.staticReasons(&task.Constraint)
	var best *Cell
	bestScore := 0.0
	var why tally
	for i, c := range s.cells {
		if reason, short := resourceFilter(c, static[i], task.MemoryMB, task.DiskMB); reason != ReasonNone {
			why.add(reason, short)
			continue
		}
		if score := ScoreTask(c, task); best == nil || score < bestScore {
			best, bestScore = c, score
		}
	}
	if best == nil {
		cat, msg := why.message(len(s.cells), &task.Constraint)
		plan.FailedTasks = append(plan.FailedTasks, TaskFailure{Task: *task, Category: cat, Reason: msg})
		return
	}
	reserve(best, task.MemoryMB, task.DiskMB)
	best.Tasks++
	plan.Tasks = append(plan.Tasks, TaskPlacement{Task: *task, CellID: best.ID})
}

// reserve takes the work's resources on c and counts one more starting
// container.
func reserve(c *Cell, memoryMB, diskMB int32) {
	take(c, memoryMB, diskMB)
	c.StartingContainers++
}

// take subtracts memory, disk and one container slot from c's available
// resources.
func take(c *Cell, memoryMB, diskMB int32) {
	c.Available.MemoryMB -= memoryMB
	c.Available.DiskMB -= diskMB
	c.Available.Containers--
}
