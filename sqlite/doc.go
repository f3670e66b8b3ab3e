// Package sqlite implements keyplane.Store on a SQLite file through the pure-Go
// modernc.org/sqlite driver: the embedded default, nothing else to install.
//
// It may import the domain; it is the only package that knows SQLite.
package sqlite
