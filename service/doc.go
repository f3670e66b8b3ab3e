// Package service holds keyplane's behaviour: the rules of the key lifecycle,
// input validation, tenant isolation and verification. It works on a
// keyplane.Store and knows nothing of HTTP or of which database is behind it.
//
// It may import the domain, apikey, password and webhooks; never a store, a cache
// or a transport: they are interfaces to it, or call it.
package service
