package service

import "github.com/keyplane/keyplane"

// A scope is "resource:action"; a grant may end in ":*" or be "*".
var scopePattern = keyplane.ScopePattern

// covers reports whether grant allows scope: equal, "*", or "res:*" for "res:…".
func covers(grant, scope string) bool {
	if grant == scope || grant == "*" {
		return true
	}
	n := len(grant)
	return n >= 2 && grant[n-2] == ':' && grant[n-1] == '*' && len(scope) > n-1 && scope[:n-1] == grant[:n-1]
}

// granted reports whether any of grants covers scope.
func granted(grants []string, scope string) bool {
	for _, g := range grants {
		if covers(g, scope) {
			return true
		}
	}
	return false
}
