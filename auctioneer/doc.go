// Package auctioneer places LRP instances and tasks on cells in batched
// auctions. The core of it is pure: filters and scores over plain values
// (filter.go, score.go) and the placement of one batch (schedule.go), so a
// placement decision can be tested, replayed and simulated without a server.
package auctioneer
