// Package wrkbench compares the throughput of two HTTP servers with wrk, a
// load generator outside the Go process, for the benchmarks that measure
// keyplane against a baseline over the network.
//
// A benchmark helper: it imports only the standard library.
package wrkbench
