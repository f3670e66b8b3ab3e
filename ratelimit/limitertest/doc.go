// Package limitertest is the conformance suite for keyplane.Limiter: the
// in-process and the Redis limiters admit exactly the same requests.
//
// A test helper: it may import the domain.
package limitertest
