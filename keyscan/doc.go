// Package keyscan finds keyplane keys in bytes, files, directories and git
// history: candidates of the published pattern
// (`\b[a-z][a-z0-9]{1,9}_(live|test)_[0-9A-Za-z]{36}\b`) whose checksum is
// valid, so look-alikes never count. It scans bytes without allocating per
// candidate and reads files in parallel. It reports where a key is and its
// hint; the key itself only when asked.
//
// It imports apikey and the standard library; it runs the git CLI for
// history and staged changes.
package keyscan
