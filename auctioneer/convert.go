package auctioneer

import (
	"slices"

	"github.com/gavel-scheduler/gavel/proto/models"
)

// fixedSetSchemes name rootfs providers that offer listed stacks only;
// a cell's provider of any other scheme runs any image.
var fixedSetSchemes = []string{"preloaded", "preloaded+layer"}

// CellFromState turns a rep's report into what an auction works with.
func CellFromState(st *models.CellState) *Cell {
	c := &Cell{
		ID: st.CellId, Zone: st.Zone, Index: int(st.CellIndex),
		RootFSProviders:       make(map[string]RootFSProvider, len(st.RootfsProviders)),
		PlacementTags:         st.PlacementTags,
		OptionalPlacementTags: st.OptionalPlacementTags,
		VolumeDrivers:         st.VolumeDrivers,
		Total:                 resources(st.Total),
		Available:             resources(st.Available),
		StartingContainers:    int(st.StartingContainerCount),
		ProxyMemoryMB:         st.ProxyMemoryAllocationMb,
		LRPs:                  make(map[string]int),
		Tasks:                 len(st.Tasks),
		Evacuating:            st.Evacuating,
	}
	for _, p := range st.RootfsProviders {
		if slices.Contains(fixedSetSchemes, p.Name) {
			c.RootFSProviders[p.Name] = RootFSProvider{Stacks: p.Properties}
		} else {
			c.RootFSProviders[p.Name] = RootFSProvider{Arbitrary: true}
		}
	}
	for _, l := range st.Lrps {
		c.LRPs[l.ProcessGuid]++
	}
	return c
}

func resources(c *models.CellCapacity) Resources {
	return Resources{MemoryMB: c.GetMemoryMb(), DiskMB: c.GetDiskMb(), Containers: c.GetContainers()}
}

func constraint(c *models.PlacementConstraint) Constraint {
	return Constraint{RootFS: c.GetRootfs(), PlacementTags: c.GetPlacementTags(), VolumeDrivers: c.GetVolumeDrivers()}
}

func (c Constraint) proto() *models.PlacementConstraint {
	return &models.PlacementConstraint{Rootfs: c.RootFS, PlacementTags: c.PlacementTags, VolumeDrivers: c.VolumeDrivers}
}

// LRPsFromRequest expands a start request into one LRP per index.
func LRPsFromRequest(r *models.LRPStartRequest) []LRP {
	out := make([]LRP, len(r.Indices))
	con := constraint(r.PlacementConstraint)
	for i, idx := range r.Indices {
		out[i] = LRP{ProcessGuid: r.ProcessGuid, Index: idx, Domain: r.Domain, Constraint: con,
			MemoryMB: r.Resource.GetMemoryMb(), DiskMB: r.Resource.GetDiskMb(), MaxPids: r.Resource.GetMaxPids()}
	}
	return out
}

// TaskFromRequest is the task a start request asks to place.
func TaskFromRequest(r *models.TaskStartRequest) Task {
	return Task{TaskGuid: r.TaskGuid, Domain: r.Domain, Constraint: constraint(r.PlacementConstraint),
		MemoryMB: r.Resource.GetMemoryMb(), DiskMB: r.Resource.GetDiskMb(), MaxPids: r.Resource.GetMaxPids()}
}

func (l *LRP) work() *models.LRPWork {
	return &models.LRPWork{ProcessGuid: l.ProcessGuid, Index: l.Index, Domain: l.Domain, PlacementConstraint: l.Constraint.proto(),
		Resource: &models.Resource{MemoryMb: l.MemoryMB, DiskMb: l.DiskMB, MaxPids: l.MaxPids}}
}

func (t *Task) work() *models.TaskWork {
	return &models.TaskWork{TaskGuid: t.TaskGuid, Domain: t.Domain, PlacementConstraint: t.Constraint.proto(),
		Resource: &models.Resource{MemoryMb: t.MemoryMB, DiskMb: t.DiskMB, MaxPids: t.MaxPids}}
}

// key names an instance within a batch: the first request for it wins.
func (l *LRP) key() lrpKey { return lrpKey{l.ProcessGuid, l.Index} }

type lrpKey struct {
	guid  string
	index int32
}
