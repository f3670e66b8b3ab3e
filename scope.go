package keyplane

import "regexp"

// ScopePattern is the syntax of a scope: "resource:action" in lowercase. A
// grant may also be "resource:*" or "*"; a required scope may not.
var ScopePattern = regexp.MustCompile(`^(\*|[a-z0-9][a-z0-9_.-]{0,63}:(\*|[a-z0-9][a-z0-9_.-]{0,63}))$`)
