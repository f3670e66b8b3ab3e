// Package keyplane holds the domain: types, errors and the interfaces that the
// storage, cache and transport packages implement.
//
// It imports only the standard library and nothing of the module: every other
// package depends on it, and it on none (TestLayering checks).
package keyplane
