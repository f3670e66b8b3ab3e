package keyplanemw_test

import (
	"encoding/json"
	"log"
	"net/http"
	"os"
	"time"

	"github.com/keyplane/keyplane/keyplanemw"
)

// The operator's API, each route with the scope it needs; the handler reads
// the caller's identity from the request's context.
func Example() {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /things/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, _ := keyplanemw.FromContext(r.Context())
		json.NewEncoder(w).Encode(map[string]any{"thing": r.PathValue("id"), "account": id.AccountID})
	})
	mux.HandleFunc("POST /things", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusCreated)
	})

	scope, err := keyplanemw.ScopeByRoute(map[string]string{
		"GET /things/{id}": "things:read",
		"POST /things":     "things:write",
	})
	if err != nil {
		log.Fatal(err)
	}
	protect, err := keyplanemw.New(keyplanemw.Config{
		ServerURL: "http://127.0.0.1:8080",
		Token:     os.Getenv("KEYPLANE_VERIFY_TOKEN"), // keyplane token create --name api --role verify
		Scope:     scope,
		CacheTTL:  10 * time.Second, // a revoked key works here for at most this long
	})
	if err != nil {
		log.Fatal(err)
	}
	_ = http.ListenAndServe("127.0.0.1:9000", protect(mux))
}
