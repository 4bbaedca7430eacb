package auctioneer

// Resources are a cell's memory, disk and container slots.
type Resources struct {
	MemoryMB   int32 `json:"memory_mb"`
	DiskMB     int32 `json:"disk_mb"`
	Containers int32 `json:"containers"`
}

// RootFSProvider says which rootfs URLs of one scheme a cell can run: any
// (Arbitrary, as for docker:// images) or only the named stacks (as for
// preloaded:STACK).
type RootFSProvider struct {
	Arbitrary bool
	Stacks    []string
}

// Cell is what an auction knows of one cell: its last reported state, and
// what this auction has reserved on it since.
type Cell struct {
	ID    string
	Zone  string
	Index int
	// RootFSProviders maps a rootfs URL scheme to what the cell offers.
	RootFSProviders       map[string]RootFSProvider
	PlacementTags         []string
	OptionalPlacementTags []string
	VolumeDrivers         []string
	Total                 Resources
	Available             Resources
	// StartingContainers counts containers not yet running.
	StartingContainers int
	// ProxyMemoryMB is added to an LRP's memory when scoring (0 when the
	// cell runs no per-container proxy).
	ProxyMemoryMB int32
	// LRPs counts instances on the cell by process guid.
	LRPs map[string]int
	// Tasks counts tasks on the cell.
	Tasks      int
	Evacuating bool
}

// Constraint is what a piece of work needs from a cell beyond resources.
type Constraint struct {
	RootFS        string
	PlacementTags []string
	VolumeDrivers []string
}

// LRP is one instance to place.
type LRP struct {
	ProcessGuid string
	Index       int32
	Domain      string
	Constraint  Constraint
	MemoryMB    int32
	DiskMB      int32
	// MaxPids is carried to the cell; scheduling does not use it.
	MaxPids int32
}

// Task is one task to place.
type Task struct {
	TaskGuid   string
	Domain     string
	Constraint Constraint
	MemoryMB   int32
	DiskMB     int32
	MaxPids    int32
}
