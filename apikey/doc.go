// Package apikey makes and checks key strings in keyplane's format:
//
//	{prefix}_{env}_{30 random base62}{6 base62 CRC-32 checksum}
//
// The checksum lets anyone (a secret scanner, the verify path) reject a mistyped
// or invented key without a lookup. The layout follows GitHub's token format.
//
// It imports only the standard library.
package apikey
