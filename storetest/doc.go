// Package storetest is the conformance suite for keyplane.Store. Every store
// runs all of it; none has tests another skips.
//
// A test helper: it may import the domain.
package storetest
