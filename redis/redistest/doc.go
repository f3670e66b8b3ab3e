// Package redistest finds the Redis server tests use and gives each test a
// channel of its own, so tests never see each other's messages.
//
// A test helper: it may import tcpproxy.
package redistest
