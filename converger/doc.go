// Package converger repairs drift between desired and actual state: missing
// and extra instances, crashed instances due for a restart, instances on
// lost cells (kept as SUSPECT while replaced), stale auctions, running
// instances whose internal routes or metric tags no longer match their
// desired LRP, and tasks that are stuck, orphaned by a lost cell or waiting
// for their result to be collected (diego-facts §6).
//
// It calculates, then acts. Calculate is a pure function from a Snapshot
// (everything read at one etcd revision, plus the converger's memory of the
// cells) to a Plan; Executor carries a Plan out through the BBS's guarded
// convergence calls, asks the reps (at their presences' addresses) to
// update drifted instances, and sends every start request of the pass to
// the elected auctioneer as one batch. A mass-failure guard holds back every
// replacement for cells that vanish together in larger numbers than a
// failure explains, until they return or an operator confirms the loss.
//
// Process runs the converger as a daemon: active/standby through an etcd
// election, a pass every interval, and an early pass when a cell's presence
// disappears from etcd or gossip reports a cell dead.
package converger
