package keyplanemw

import (
	"fmt"
	"net/http"
)

// ScopeByRoute returns a Config.Scope that maps ServeMux patterns
// ("GET /things/{id}", "POST /things") to the scope they need, with the
// precedence rules of http.ServeMux. A request no pattern matches needs no
// scope: add "/" to require one everywhere. A bad pattern is an error.
func ScopeByRoute(scopes map[string]string) (func(*http.Request) string, error) {
	mux := http.NewServeMux()
	for pattern := range scopes {
		if err := handle(mux, pattern); err != nil {
			return nil, err
		}
	}
	return func(r *http.Request) string {
		_, pattern := mux.Handler(r)
		return scopes[pattern]
	}, nil
}

// handle registers pattern, turning ServeMux's panic on a bad or duplicate
// pattern into an error.
func handle(mux *http.ServeMux, pattern string) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("keyplanemw: route %q: %v", pattern, p)
		}
	}()
	mux.Handle(pattern, http.NotFoundHandler())
	return nil
}
