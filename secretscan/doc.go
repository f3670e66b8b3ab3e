// Package secretscan checks GitHub's secret scanning partner requests: the
// ECDSA P-256 signature over the raw body (Github-Public-Key-Identifier,
// Github-Public-Key-Signature) against GitHub's published keys, fetched,
// cached and refetched (at most once per interval) when a request names an
// identifier the cache does not hold. It also holds the request and answer
// shapes and a small per-address rate limiter for the endpoint.
//
// It imports the standard library and nothing else: the HTTP handler that
// acts on a verified request is in httpapi.
package secretscan
