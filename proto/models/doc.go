// Package models holds gavel's records and the BBS API, generated from the
// .proto files beside it (make proto), and the domain rules that guard them:
// field validation, the ActualLRP and Task state machines, the crash restart
// calculator, and the mapping of domain errors to gRPC status codes.
package models
