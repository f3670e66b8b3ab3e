// Package routes maps the requests of the operator's API to what keyplane
// requires of them: a scope, a cost and, in gateway mode, an upstream. Rules
// come from a small YAML file (docs/integrations/routes.md) whose patterns are
// net/http ServeMux patterns, matched by a ServeMux, so they mean exactly what
// Go's documentation says they mean.
//
// It may import the domain.
package routes
