// Package periodic runs the background flushes of the in-memory counters
// (quotas, usage, failed verifications): each counts on the verify path and
// writes to the store on an interval, so none writes per request.
//
// It imports only the standard library.
package periodic
