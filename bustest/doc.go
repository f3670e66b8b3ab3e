// Package bustest is the conformance suite for keyplane.ChangeBus: Redis
// pub/sub and PostgreSQL LISTEN/NOTIFY run the same tests.
//
// A test helper: it may import the domain.
package bustest
