// Package rep is the cell agent. It answers the auctioneer (State: what
// the cell has and holds; Perform: reserve the work it won), stops and
// updates instances and cancels tasks for the BBS and the converger,
// announces the cell in the gossip pool and keeps its presence in etcd
// (through the BBS) under a lease.
//
// An instance reports its internal routes and resolved metric tags in
// every StartActualLRP. The rep computes them from the desired LRP when it
// runs the instance and keeps them in the container's tags; an
// UpdateLRPInstance replaces them in the rep's memory only (the executor
// cannot retag a container), so after a rep restart the instance reports
// its original values until the converger's next pass sees the drift and
// updates it again.
//
// The rep reaches the cell's containers through the Containers interface.
// MemoryContainers holds reservations in memory and runs nothing: it is the
// simulated cell of `gavel sim --grpc` and of the auction's tests; a cell
// that runs work uses the executor.
package rep
