package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/apikey"
	"github.com/keyplane/keyplane/problem"
)

func requestIDFrom(ctx context.Context) string {
	return keyplane.RequestInfoFromContext(ctx).RequestID
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// requestLog gives each request an id and logs one line for it. It logs the
// path only, with anything shaped like a key or token masked: never headers
// or query strings, where keys and tokens travel.
func (s *Server) requestLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		info := keyplane.NewRequestInfo(r.RemoteAddr, r.UserAgent(), r.Header.Get("X-Request-Id"))
		id := info.RequestID
		w.Header().Set("X-Request-Id", id)
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r.WithContext(keyplane.NewContextWithRequestInfo(r.Context(), info)))
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		level := slog.LevelDebug // verification traffic is metered, not logged
		if r.URL.Path != "/v1/verify" && !strings.HasPrefix(r.URL.Path, forwardAuthPath) || rec.status >= 500 {
			level = slog.LevelInfo
		}
		// Checked first: the line's arguments cost allocations on every
		// verification, whose line is usually off.
		if s.log.Enabled(r.Context(), level) {
			s.log.Log(r.Context(), level, "http request", "method", r.Method, "path", apikey.Redact(r.URL.Path), "status", rec.status,
				"duration_ms", float64(time.Since(start).Microseconds())/1000, "request_id", id)
		}
	})
}

// jsonByDefault lets `curl -d '{…}'` work without a Content-Type header: a
// body sent as a form or with no type is read as JSON, the only format the
// API speaks. Any other declared type still gets 415.
func jsonByDefault(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// No API answer may be kept by a browser or a shared cache: some carry
		// a plaintext key, a token or an invite link, all carry one account's
		// data. Assigned, not Set: the shared slice costs no allocation.
		w.Header()["Cache-Control"] = noStore
		if ct := r.Header.Get("Content-Type"); r.ContentLength != 0 && (ct == "" || strings.HasPrefix(ct, "application/x-www-form-urlencoded")) {
			r.Header.Set("Content-Type", "application/json")
		}
		next.ServeHTTP(w, r)
	})
}

var noStore = []string{"no-store"}

// unmatched answers requests no other route matches, as the mux's catch-all,
// with problem details (404, or 405 when the path exists for another method)
// instead of ServeMux's plain text.
func unmatched(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		status, detail := http.StatusNotFound, "no endpoint at "+r.URL.Path+"; see /openapi.json"
		var allowed []string
		for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPatch, http.MethodPut, http.MethodDelete} {
			probe := r.Clone(r.Context())
			probe.Method = m
			if _, pattern := mux.Handler(probe); pattern != "/" && pattern != "" {
				allowed = append(allowed, m)
			}
		}
		if len(allowed) > 0 {
			status, detail = http.StatusMethodNotAllowed, r.Method+" is not allowed on "+r.URL.Path
			w.Header().Set("Allow", strings.Join(allowed, ", "))
		}
		problem.Write(w, problem.New(status, problem.CodeOf(status), detail, nil))
	})
}
