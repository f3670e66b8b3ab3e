// Package sqlitetest helps tests put a SQLite store in states that are hard
// to reach for real, such as a full disk.
//
// A test helper: it imports only the standard library and the SQLite driver.
package sqlitetest
