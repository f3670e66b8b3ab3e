// Package problem is keyplane's one mapping of domain errors to HTTP: the
// status of each error code and the RFC 9457 problem details body, written
// the same way by the HTTP API, forward-auth, the gateway, the portal and the
// keyplanemw middleware that runs in the operator's own API.
//
// It may import the domain (keyplane) and the standard library only: the
// middleware links it into other people's programs, so it must not pull in
// the HTTP API's framework (huma).
package problem
