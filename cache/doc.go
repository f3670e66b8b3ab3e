// Package cache keeps verification records and operator tokens in memory
// (otter) in front of the store, so verifying a known key with a known token
// costs no I/O. It caches missing keys too, so unknown keys do not hammer the
// database; it loads each key once however many requests miss it at the same
// moment; and it serves what it has while it refreshes in the background, so a
// slow or absent database does not stall verification. After a broken change
// subscription it catches up from the store's change log instead of
// forgetting what it holds.
//
// It may import the domain; the store it reads through is an interface.
package cache
