// Package webhooks delivers keyplane's outbound webhooks: it signs them per
// the Standard Webhooks specification, seals endpoint secrets at rest,
// dials only addresses it may, and runs the dispatcher that takes messages
// from the stores' outbox and retries them on a schedule. It knows nothing
// of the transports (HTTP API, gRPC, portal) that register endpoints.
//
// It may import the domain and webhooks/verify; never a transport.
package webhooks
