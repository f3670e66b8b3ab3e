// Package portal serves the self-service developer portal: server-rendered
// pages, from templates embedded in the binary, where an account's members
// sign in and manage its keys. Every rule (who may do what, tenant
// isolation) is the service's; the portal only renders and forwards.
//
// A transport: it may import the domain, service, problem and apikey, never
// another transport.
package portal
