package httpapi

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/netip"
	"reflect"

	"github.com/danielgtaylor/huma/v2"
	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/apikey"
	"github.com/keyplane/keyplane/problem"
	"github.com/keyplane/keyplane/secretscan"
	"github.com/keyplane/keyplane/service"
)

// maxScanMatches bounds the matches of one GitHub request.
const maxScanMatches = 1000

func (s *Server) secretScanningRoutes(mux *http.ServeMux) {
	if s.scanKeys == nil {
		return
	}
	mux.HandleFunc("POST /v1/secret-scanning/github", s.serveGitHubScanning)
	reg := s.api.OpenAPI().Components.Schemas
	jsonOf := func(v any, name string) map[string]*huma.MediaType {
		return map[string]*huma.MediaType{"application/json": {Schema: reg.Schema(reflect.TypeOf(v), true, name)}}
	}
	problemBody := map[string]*huma.MediaType{"application/problem+json": {Schema: reg.Schema(reflect.TypeOf(problem.Problem{}), true, "Problem")}}
	s.api.OpenAPI().AddOperation(&huma.Operation{
		OperationID: "githubSecretScanning", Method: http.MethodPost, Path: "/v1/secret-scanning/github",
		Summary:     "GitHub secret scanning partner endpoint: keys GitHub found in public code",
		Description: "Authenticated by GitHub's ECDSA signature over the body (Github-Public-Key-Identifier, Github-Public-Key-Signature), not a token. Each key of this deployment that exists is reported as leaked and answered true_positive; anything else false_positive.",
		Tags:        []string{"Keys"},
		RequestBody: &huma.RequestBody{Required: true, Content: jsonOf([]secretscan.Match{}, "GitHubSecretScanningRequest")},
		Responses: map[string]*huma.Response{
			"200": {Description: "One answer per match", Content: jsonOf([]secretscan.Answer{}, "GitHubSecretScanningAnswer")},
			"400": {Description: "The body is not a JSON array of matches", Content: problemBody},
			"401": {Description: "Bad or missing signature; nothing changed", Content: problemBody},
			"413": {Description: "Body over 1 MiB", Content: problemBody},
			"429": {Description: "Too many requests from this address", Content: problemBody},
			"503": {Description: "GitHub's keys or the database cannot be reached; GitHub retries", Content: problemBody},
		},
	})
}

// serveGitHubScanning checks the signature over the raw body before it
// reads a byte of it as JSON, then reports each key as leaked.
func (s *Server) serveGitHubScanning(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	addr, _ := netip.ParseAddr(keyplane.RequestInfoFromContext(ctx).SourceIP)
	if !addr.IsValid() {
		if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
			addr = ap.Addr()
		}
	}
	if !s.scanLimit.Allow(addr, s.now()) {
		p := problem.New(http.StatusTooManyRequests, keyplane.ETOOMANY, "too many secret scanning requests from this address", nil)
		p.Header().Set("Retry-After", "60")
		problem.Write(w, p)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, secretscan.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			problem.Write(w, problem.New(http.StatusRequestEntityTooLarge, problem.CodeOf(http.StatusRequestEntityTooLarge), "request body is over 1 MiB", nil))
			return
		}
		problem.Write(w, problem.New(http.StatusBadRequest, keyplane.EINVALID, "could not read the body", nil))
		return
	}
	if err := s.scanKeys.Verify(ctx, r.Header.Get(secretscan.HeaderKeyID), r.Header.Get(secretscan.HeaderSignature), body); err != nil {
		if errors.Is(err, secretscan.ErrSignature) {
			problem.Write(w, problem.FromError(keyplane.Errorf(keyplane.EUNAUTHORIZED, "bad or missing GitHub signature")))
			return
		}
		s.log.ErrorContext(ctx, "secret scanning: GitHub's keys", "error", err, "request_id", requestIDFrom(ctx))
		problem.Write(w, problem.FromError(keyplane.Errorf(keyplane.EUNAVAILABLE, "GitHub's signing keys cannot be fetched")))
		return
	}
	var matches []secretscan.Match
	if err := json.Unmarshal(body, &matches); err != nil || len(matches) > maxScanMatches {
		problem.Write(w, problem.New(http.StatusBadRequest, keyplane.EINVALID, "want a JSON array of at most 1000 {token, type, url, source}", nil))
		return
	}
	ctx = keyplane.NewContextWithActor(ctx, service.GitHubScanner)
	answers := make([]secretscan.Answer, 0, len(matches))
	for _, m := range matches {
		label := secretscan.TruePositive
		_, err := s.svc.ReportLeak(ctx, service.LeakReport{Key: m.Token, Source: keyplane.LeakSourceGitHub, URL: m.URL,
			Details: map[string]any{"github_type": clip(m.Type, 100), "github_source": clip(m.Source, 100)}})
		switch keyplane.ErrorCode(err) {
		case "":
		case keyplane.ENOTFOUND, keyplane.EINVALID:
			label = secretscan.FalsePositive
		default:
			problem.Write(w, s.problem(ctx, err).(*problem.Problem))
			return
		}
		answers = append(answers, secretscan.Answer{TokenRaw: m.Token, TokenType: m.Type, Label: label})
	}
	writeJSON(w, http.StatusOK, answers)
}

// clip bounds a string GitHub sends that goes into the audit log, and
// keeps out one that holds a key.
func clip(s string, n int) string {
	if apikey.ContainsSecret(s) {
		return ""
	}
	if len(s) > n {
		return s[:n]
	}
	return s
}
