// Package routeemitter turns running LRP instances into Envoy ingress
// configuration. It owns the routing table (routes from each DesiredLRP's
// cf-router and tcp-router entries, endpoints from RUNNING, routable
// ActualLRPs, keyed by process guid and container port), the pure function
// from that table to xDS resources, the consumer that keeps the table in
// step with the BBS (its LRP event stream plus a periodic full sync), and
// the xDS server (ADS, state-of-the-world and delta) Envoy connects to.
//
// The pieces line up from pure to I/O:
//
//	routes.go     route JSON of a DesiredLRP → typed routes (with field errors)
//	table.go      the routing table and its updates, each returning a Diff
//	resources.go  table (or the part a Diff touched) → Envoy resources
//	xds.go        resources → go-control-plane caches → ADS streams
//	emitter.go    BBS lists and events → table updates → xDS pushes
//	process.go    the daemon: election (global mode), gRPC, debug server
//
// Everything before xds.go is testable without a socket.
package routeemitter
