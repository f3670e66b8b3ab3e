// Package ratelimit enforces keys' rate-limit policies in this process, for
// embedded mode: no I/O, no allocation on the hot path, one small lock per
// key (so keys never contend with each other), memory freed for idle keys.
//
// token_bucket is GCRA: one number per policy, the theoretical arrival time.
// sliding_window keeps two fixed-window counters and weights the previous
// window by how much of it still overlaps the sliding window.
//
// It may import the domain.
package ratelimit
