// Package httpapi serves keyplane's HTTP API (DESIGN.md section 4) on
// net/http, with huma for input validation, RFC 9457 problems and the
// OpenAPI 3.1 document, which is generated from the handlers themselves.
//
// A transport: it may import the domain, service, admit, problem and apikey, never
// another transport.
package httpapi
