// Package admit is keyplane's one home for admission: it takes a request to
// the operator's API (method, URL, headers, peer address), finds its key,
// client address (through trusted proxies), route rule, scope and cost,
// verifies it, and says whether it may go on, with the refusal's problem
// details, the identity headers for the upstream and the RateLimit headers.
// Forward-auth (httpapi), gateway mode (gateway) and Envoy's ext_authz
// (grpcapi) all call it.
//
// It may import the domain, problem and routes; never a transport (httpapi,
// grpcapi, gateway, portal), which all call it.
package admit
