package auctioneer

// Scoring weights (Diego's defaults). Lower scores win.
const (
	// StartingContainerWeight penalises cells busy starting containers.
	StartingContainerWeight = 0.25
	// LocalityOffset per instance of the same process (or per task) on the
	// cell dominates every other term: spreading an app beats balancing.
	LocalityOffset = 1000.0
)

// resourceScore is the mean used fraction of memory, disk and containers
// after placing memoryMB/diskMB and one container, plus the starting
// container penalty. It allocates nothing.
func resourceScore(c *Cell, memoryMB, diskMB int32) float64 {
	frac := func(avail, req, total int32) float64 {
		if total <= 0 {
			return 1
		}
		return 1 - float64(avail-req)/float64(total)
	}
	used := frac(c.Available.MemoryMB, memoryMB, c.Total.MemoryMB) +
		frac(c.Available.DiskMB, diskMB, c.Total.DiskMB) +
		frac(c.Available.Containers, 1, c.Total.Containers)
	return used/3 + float64(c.StartingContainers)*StartingContainerWeight
}

// ScoreLRP scores placing an instance of lrp on c (the cell's proxy memory
// counts toward it).
func ScoreLRP(c *Cell, lrp *LRP) float64 {
	return resourceScore(c, lrp.MemoryMB+c.ProxyMemoryMB, lrp.DiskMB) +
		LocalityOffset*float64(c.LRPs[lrp.ProcessGuid])
}

// ScoreTask scores placing task on c.
func ScoreTask(c *Cell, task *Task) float64 {
	return resourceScore(c, task.MemoryMB, task.DiskMB) + LocalityOffset*float64(c.Tasks)
}
