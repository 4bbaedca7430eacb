// Package rep is the cell agent. It answers the auctioneer (State: what
// the cell has and holds; Perform: reserve the work it won), stops
// instances and cancels tasks for the BBS, announces the cell in the gossip
// pool and keeps its presence in etcd (through the BBS) under a lease.
//
// The rep reaches the cell's containers through the Containers interface.
// MemoryContainers holds reservations in memory and runs nothing: it is the
// simulated cell of `gavel sim --grpc` and of the auction's tests; a cell
// that runs work uses the executor.
package rep
