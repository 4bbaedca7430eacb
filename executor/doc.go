// Package executor is the library a cell's rep embeds to run work in
// containers. It owns the container store and its resource accounting
// (memory, disk, container slots), reservations and their expiry, the
// container lifecycle RESERVED → INITIALIZING → CREATED → RUNNING →
// COMPLETED driven by action steps (package steps) and health checks
// (package checks) in a Garden container, per-container log capture
// (package logs), container events to subscribers, and the restore of
// containers a previous executor left in Garden.
//
// The executor knows nothing of the BBS: the rep turns its events and
// containers into BBS calls. It talks to Garden through GardenClient, which
// garden.Client satisfies.
//
// A rep restart loses nothing: every fact the store keeps about a created
// container is mirrored into its Garden properties, processes have IDs
// derived from the action tree, and New adopts the containers it finds,
// re-attaching to their processes. Reservations, which have no Garden
// container yet, are the exception: they are lost and the BBS re-auctions
// the work.
package executor
