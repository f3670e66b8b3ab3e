// Package keyplanemw is net/http middleware that checks the API key of every
// request to an operator's own Go API through a keyplane server, over HTTP
// (POST /v1/verify) or keyplane's gRPC API.
//
//	mw, err := keyplanemw.New(keyplanemw.Config{ServerURL: "http://127.0.0.1:8080", Token: verifyToken})
//	http.ListenAndServe(":9000", mw(apiHandler))
//
// An admitted request reaches the handler with the key's identity in its
// context (FromContext); a refused one is answered with problem details:
// 401 for a missing or bad key, 403 for a key that may not do this, 429 with
// Retry-After when over a rate limit or quota, and 503 when keyplane cannot
// be reached (unless FailOpen).
//
// # Caching
//
// Valid answers for keys without rate limits or quota are cached for
// CacheTTL (default 10 s), and never past the key's expiry: a key revoked,
// disabled or narrowed in keyplane keeps working here for at most CacheTTL.
// Keys with rate limits or a quota are verified with keyplane on every
// request, because keyplane counts them there; refusals are never cached.
//
// A transport that runs in the operator's own API: it may import the domain,
// apikey, problem and the generated gRPC client, never the HTTP API (nor huma, its
// framework).
package keyplanemw
