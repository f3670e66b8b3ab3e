package problem_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/problem"
)

func TestStatusOf(t *testing.T) {
	for _, c := range []struct {
		err  error
		want int
	}{
		{keyplane.Invalid("name", "is empty"), 400},
		{keyplane.Errorf(keyplane.ENOTFOUND, "x"), 404},
		{keyplane.Errorf(keyplane.ECONFLICT, "x"), 409},
		{keyplane.Errorf(keyplane.ELIMIT, "x"), 409},
		{keyplane.Errorf(keyplane.EUNAUTHORIZED, "x"), 401},
		{keyplane.Errorf(keyplane.EFORBIDDEN, "x"), 403},
		{keyplane.Errorf(keyplane.ETOOMANY, "x"), 429},
		{keyplane.Errorf(keyplane.EUNAVAILABLE, "x"), 503},
		{errors.New("a bug"), 500},
	} {
		if got := problem.StatusOf(c.err); got != c.want {
			t.Errorf("StatusOf(%v) = %d, want %d", c.err, got, c.want)
		}
	}
}

// Unknown errors show nothing of themselves; validation errors name their fields.
func TestFromError(t *testing.T) {
	p := problem.FromError(errors.New("sql: secret detail"))
	if p.Status != 500 || p.Code != keyplane.EINTERNAL || p.Detail != "internal error" {
		t.Fatalf("an unknown error: %+v", p)
	}
	p = problem.FromError(keyplane.Invalid("scopes[1]", "is not resource:action"))
	if p.Status != 400 || len(p.Errors) != 1 || p.Errors[0].Field != "scopes[1]" {
		t.Fatalf("a validation error: %+v", p)
	}
}

func TestRefusal(t *testing.T) {
	for code, want := range map[keyplane.VerifyCode]int{
		keyplane.VerifyNotFound: 401, keyplane.VerifyRevoked: 401, keyplane.VerifyExpired: 401, keyplane.VerifyDisabled: 401,
		keyplane.VerifyForbidden: 403, keyplane.VerifyInsufficientScope: 403,
		keyplane.VerifyRateLimited: 429, keyplane.VerifyQuotaExceeded: 429,
		"SOMETHING_NEWER": 403, // a newer server's code: refused
	} {
		if p := problem.Refusal(code, "data:read"); p.Status != want {
			t.Errorf("Refusal(%s) = %d, want %d", code, p.Status, want)
		}
	}
	if p := problem.Refusal(keyplane.VerifyInsufficientScope, "data:write"); p.Detail != "the API key lacks the scope data:write" || p.Code != "insufficient_scope" {
		t.Errorf("insufficient scope: %+v", p)
	}
}

func TestWrite(t *testing.T) {
	w := httptest.NewRecorder()
	p := problem.Refusal(keyplane.VerifyRevoked, "")
	p.Header().Set("X-Extra", "1")
	problem.Write(w, p)
	if w.Code != http.StatusUnauthorized || w.Header().Get("Content-Type") != "application/problem+json" ||
		w.Header().Get("WWW-Authenticate") == "" || w.Header().Get("X-Extra") != "1" {
		t.Fatalf("%d %v", w.Code, w.Header())
	}
	var body map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body["code"] != "revoked" || body["type"] != "urn:keyplane:problem:revoked" || body["status"] != 401.0 {
		t.Fatalf("%s: %v", w.Body, err)
	}
}
