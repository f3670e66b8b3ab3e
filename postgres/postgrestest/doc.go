// Package postgrestest gives each test its own PostgreSQL database, so tests
// can run against a shared server without seeing each other's rows.
//
// A test helper: it may import tcpproxy.
package postgrestest
