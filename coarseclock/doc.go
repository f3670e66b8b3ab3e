// Package coarseclock is a clock that reads a variable instead of the system
// clock. On the virtual machines keyplane runs on, time.Now can cost ~100 ns,
// a fifth of the verify budget; verification needs the time only to compare
// it with expiries, for which a millisecond is precise enough.
//
// It imports only the standard library.
package coarseclock
