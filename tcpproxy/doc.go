// Package tcpproxy forwards TCP connections to a server until it is taken
// down: an outage of a database or Redis as the service sees it, in tests,
// without stopping the server other tests share.
//
// A test helper: it imports only the standard library.
package tcpproxy
