// Package usage meters how keys are used and answers analytics over it.
//
// A Meter counts usage events in memory, per key, endpoint and minute, and
// flushes them every interval (default 1 s) and on Close. Each flush adds
// its counts to the stored minute, hour and day rows of the key and of its
// account, and to the key's totals, in one transaction: instances sharing a
// database add up, a graceful shutdown loses nothing and a crash loses at
// most one interval. Latencies go into DDSketches (relative accuracy 1 %),
// which merge across buckets, instances and flushes; the store merges a
// flush's sketch into the stored one inside its transaction.
//
// RecordVerification, the verify path's call, takes no lock, hashes no
// string and allocates nothing for a valid verification of a cached key and
// endpoint already counted this minute: it adds one to a counter of the
// calling goroutine's stripe, found through the key's address (see cell).
// Record, for the gateway's and operators' reports, takes a shard's lock.
//
// It may import the domain and periodic.
package usage
