// Package bbs is the BBS: the gRPC API over desired and actual state. Its
// handlers validate and answer; the logic that spans records (requesting
// auctions, stopping instances through their cells, task completion
// callbacks) lives here too; storage is package db; event streams are
// package events. Several BBS processes may serve the same etcd at once.
package bbs
