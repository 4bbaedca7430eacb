package auctioneer

import (
	"net/url"
	"slices"
	"strings"
)

// Reason names why a cell cannot take a piece of work. Filters run in
// Diego's order and each refusal carries one of these, so a failed placement
// explains itself.
type Reason string

// The reasons, in the order the filters run.
const (
	ReasonNone          Reason = ""
	ReasonEvacuating    Reason = "cell is evacuating"
	ReasonRootFS        Reason = "rootfs"
	ReasonVolumeDrivers Reason = "volume drivers"
	ReasonPlacementTags Reason = "placement tags"
	ReasonResources     Reason = "resources"
	// ReasonNoCells: no cell answered at all.
	ReasonNoCells Reason = "no cells"
	// ReasonRefused: the winning cell refused the work when it was sent
	// (its state had changed since the auction read it), more times than
	// the auctioneer retries.
	ReasonRefused Reason = "refused by cell"
)

// Shortfall lists the resources a cell lacks for a piece of work.
type Shortfall struct {
	Memory, Disk, Containers bool
}

// Any reports whether anything is short.
func (s Shortfall) Any() bool { return s.Memory || s.Disk || s.Containers }

// rootFS is a parsed rootfs URL. Parse it once per piece of work, not once
// per cell: parsing in the inner loop was a large share of auction time in
// profiles of Diego-style auctions.
type rootFS struct {
	scheme, stack string
	ok            bool
}

func parseRootFS(raw string) rootFS {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		return rootFS{}
	}
	stack := u.Opaque
	if stack == "" {
		stack = strings.TrimPrefix(u.Host+u.Path, "/")
	}
	return rootFS{scheme: u.Scheme, stack: stack, ok: true}
}

// matchRootFS: the cell has a provider for the scheme, and it either runs
// anything or has the named stack.
func matchRootFS(c *Cell, r rootFS) bool {
	if !r.ok {
		return false
	}
	p, found := c.RootFSProviders[r.scheme]
	if !found {
		return false
	}
	return p.Arbitrary || slices.Contains(p.Stacks, r.stack)
}

// matchVolumeDrivers: the cell has every driver the work mounts.
func matchVolumeDrivers(c *Cell, drivers []string) bool {
	for _, d := range drivers {
		if !slices.Contains(c.VolumeDrivers, d) {
			return false
		}
	}
	return true
}

// matchPlacementTags: with D the work's tags, R the cell's required and O
// its optional tags, R ⊆ D and D ⊆ R ∪ O. A cell with required tags never
// takes untagged work.
func matchPlacementTags(c *Cell, tags []string) bool {
	for _, r := range c.PlacementTags {
		if !slices.Contains(tags, r) {
			return false
		}
	}
	for _, t := range tags {
		if !slices.Contains(c.PlacementTags, t) && !slices.Contains(c.OptionalPlacementTags, t) {
			return false
		}
	}
	return true
}

// shortfall says what the cell lacks for memory and disk and one container.
func shortfall(c *Cell, memoryMB, diskMB int32) Shortfall {
	return Shortfall{
		Memory:     c.Available.MemoryMB < memoryMB,
		Disk:       c.Available.DiskMB < diskMB,
		Containers: c.Available.Containers < 1,
	}
}

// staticFilter runs the filters that depend only on the cell's fixed
// properties, in Diego's order.
func staticFilter(c *Cell, r rootFS, con *Constraint) Reason {
	switch {
	case c.Evacuating:
		return ReasonEvacuating
	case !matchRootFS(c, r):
		return ReasonRootFS
	case !matchVolumeDrivers(c, con.VolumeDrivers):
		return ReasonVolumeDrivers
	case !matchPlacementTags(c, con.PlacementTags):
		return ReasonPlacementTags
	}
	return ReasonNone
}

// resourceFilter finishes filtering after the static filters: a static
// refusal stands, otherwise the cell must have the resources.
func resourceFilter(c *Cell, static Reason, memoryMB, diskMB int32) (Reason, Shortfall) {
	if static != ReasonNone {
		return static, Shortfall{}
	}
	if s := shortfall(c, memoryMB, diskMB); s.Any() {
		return ReasonResources, s
	}
	return ReasonNone, Shortfall{}
}
