// Package gateway is keyplane in front of the operator's API: a reverse
// proxy that admits each request through the forward-auth Gate (key, route
// rule, scope, rate limit, quota), removes the key and any identity headers
// a client forged, adds the real ones, and streams the request and the
// response through, websockets and server-sent events included.
//
// A transport: it may import the domain, admit and problem, never another
// transport.
package gateway
