// Package password hashes members' passwords with argon2id (RFC 9106) and
// encodes them as PHC strings, so the parameters travel with each hash and
// can be raised later without invalidating stored passwords.
//
// It imports only the standard library and golang.org/x/crypto.
package password
