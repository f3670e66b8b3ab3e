package httpapi_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/apikey"
	"github.com/keyplane/keyplane/httpapi"
	"github.com/keyplane/keyplane/secretscan"
	"github.com/keyplane/keyplane/teststore"
)

// githubKeys serves GitHub's meta JSON from 127.0.0.1 with a fresh P-256
// key under id, and counts fetches.
type githubKeys struct {
	priv    *ecdsa.PrivateKey
	id      string
	fetches atomic.Int32
	url     string
}

func newGitHubKeys(t *testing.T) *githubKeys {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	g := &githubKeys{priv: priv, id: "bcb53661c06b4728e59d897fb6165d5c9cda0fd9cdf9d09ead458168deb7518c"}
	doc, _ := json.Marshal(map[string]any{"public_keys": []map[string]any{
		{"key_identifier": g.id, "key": string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), "is_current": true}}})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.fetches.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Write(doc)
	}))
	t.Cleanup(srv.Close)
	g.url = srv.URL + "/meta/public_keys/secret_scanning"
	return g
}

func (g *githubKeys) sign(t *testing.T, body []byte) string {
	t.Helper()
	d := sha256.Sum256(body)
	sig, err := ecdsa.SignASN1(rand.Reader, g.priv, d[:])
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(sig)
}

func postGitHub(t *testing.T, url, keyID, sig string, body []byte) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest("POST", url+"/v1/secret-scanning/github", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if keyID != "" {
		req.Header.Set(secretscan.HeaderKeyID, keyID)
	}
	if sig != "" {
		req.Header.Set(secretscan.HeaderSignature, sig)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestGitHubSecretScanning: a signed request revokes a real key and
// answers true_positive, an unknown checksum-valid key false_positive; a
// bad, missing or foreign signature is 401 and changes nothing; the keys
// are fetched once and refetched for an unknown identifier at most once
// per interval.
func TestGitHubSecretScanning(t *testing.T) {
	gh := newGitHubKeys(t)
	ks := secretscan.NewKeySet(secretscan.KeysConfig{URL: gh.url, MinRefetch: time.Hour})
	h := newHarnessWith(t, teststore.New(t), func(c *httpapi.Config) { c.GitHubScanningKeys = ks })
	acc := h.account()
	k := h.key(acc, nil)
	plaintext, id := k["key"].(string), k["id"].(string)
	unknown := apikey.New("kp", "live")
	body, _ := json.Marshal([]secretscan.Match{
		{Token: plaintext, Type: "keyplane_api_key", URL: "https://github.com/acme/app/blob/abc/config.go", Source: "commit"},
		{Token: unknown, Type: "keyplane_api_key", URL: "https://github.com/acme/app/blob/abc/other.go", Source: "content"},
	})

	// Refused, and nothing changes.
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	d := sha256.Sum256(body)
	foreign, _ := ecdsa.SignASN1(rand.Reader, other, d[:])
	tampered := bytes.Replace(body, []byte("commit"), []byte("commiT"), 1)
	for name, c := range map[string]struct {
		id, sig string
		body    []byte
	}{
		"missing":        {"", "", body},
		"no signature":   {gh.id, "", body},
		"not base64":     {gh.id, "%%%", body},
		"foreign key":    {gh.id, base64.StdEncoding.EncodeToString(foreign), body},
		"tampered body":  {gh.id, gh.sign(t, body), tampered},
		"unknown key id": {"nope", gh.sign(t, body), body},
	} {
		if status, b := postGitHub(t, h.url, c.id, c.sig, c.body); status != 401 || strings.Contains(string(b), plaintext) {
			t.Fatalf("%s: %d %s", name, status, b)
		}
	}
	if got := h.want(h.admin_("GET", "/v1/keys/"+id, nil), 200); got["status"] != "active" || got["leaked_at"] != nil {
		t.Fatalf("a refused request changed the key: %v", got)
	}

	status, b := postGitHub(t, h.url, gh.id, gh.sign(t, body), body)
	if status != 200 {
		t.Fatalf("%d %s", status, b)
	}
	var answers []secretscan.Answer
	if err := json.Unmarshal(b, &answers); err != nil {
		t.Fatal(err)
	}
	want := []secretscan.Answer{{TokenRaw: plaintext, TokenType: "keyplane_api_key", Label: "true_positive"}, {TokenRaw: unknown, TokenType: "keyplane_api_key", Label: "false_positive"}}
	if len(answers) != 2 || answers[0] != want[0] || answers[1] != want[1] {
		t.Fatalf("answers %+v", answers)
	}
	got := h.want(h.admin_("GET", "/v1/keys/"+id, nil), 200)
	if got["status"] != "revoked" || got["leaked_at"] == nil || got["leak_source"] != "github" || got["leak_url"] != "https://github.com/acme/app/blob/abc/config.go" {
		t.Fatalf("key after the report: %v", got)
	}
	res := h.want(h.do(h.verify, "POST", "/v1/verify", map[string]any{"key": plaintext}), 200)
	if res["code"] != "REVOKED" {
		t.Fatalf("verify after the report: %v", res)
	}
	events, _, err := h.store.ListAudit(context.Background(), keyplane.AuditFilter{KeyID: id, Type: keyplane.AuditKeyLeaked, Page: keyplane.Page{Limit: 10}})
	if err != nil || len(events) != 1 || events[0].Actor.ID != "github-secret-scanning" {
		t.Fatalf("audit: %+v, %v", events, err)
	}
	if j, _ := json.Marshal(events[0]); strings.Contains(string(j), plaintext) || !strings.Contains(string(j), `"commit"`) {
		t.Fatalf("audit event %s", j)
	}
	// Again: the same answer, nothing more changes.
	if status, b := postGitHub(t, h.url, gh.id, gh.sign(t, body), body); status != 200 || !strings.Contains(string(b), "true_positive") {
		t.Fatalf("again: %d %s", status, b)
	}
	if again := h.want(h.admin_("GET", "/v1/keys/"+id, nil), 200); again["leaked_at"] != got["leaked_at"] || again["updated_at"] != got["updated_at"] {
		t.Fatalf("a second report changed the key: %v", again)
	}
	if n := gh.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches of GitHub's keys, want 1 (unknown ids refetch at most once per interval)", n)
	}
	// Not JSON but signed: 400.
	if status, _ := postGitHub(t, h.url, gh.id, gh.sign(t, []byte("{}")), []byte("{}")); status != 400 {
		t.Fatalf("an object: %d", status)
	}
}

// TestGitHubSecretScanningLimits: the body is bounded and each address is
// rate limited.
func TestGitHubSecretScanningLimits(t *testing.T) {
	gh := newGitHubKeys(t)
	ks := secretscan.NewKeySet(secretscan.KeysConfig{URL: gh.url})
	h := newHarnessWith(t, teststore.New(t), func(c *httpapi.Config) {
		c.GitHubScanningKeys, c.GitHubScanningLimit = ks, secretscan.NewLimiter(3, time.Hour)
	})
	big := []byte("[" + strings.Repeat(" ", secretscan.MaxBodyBytes) + "]")
	if status, _ := postGitHub(t, h.url, gh.id, gh.sign(t, big), big); status != 413 {
		t.Fatalf("a large body: %d", status)
	}
	for range 2 {
		if status, _ := postGitHub(t, h.url, gh.id, gh.sign(t, []byte("[]")), []byte("[]")); status != 200 {
			t.Fatalf("an empty batch: %d", status)
		}
	}
	if status, _ := postGitHub(t, h.url, gh.id, gh.sign(t, []byte("[]")), []byte("[]")); status != 429 {
		t.Fatalf("over the limit: %d", status)
	}
}

// TestReportLeakedKey: the generic report, with an admin token only.
func TestReportLeakedKey(t *testing.T) {
	h := newHarness(t)
	acc := h.account()
	k := h.key(acc, nil)
	plaintext, id := k["key"].(string), k["id"].(string)
	body := map[string]any{"key": plaintext, "source_url": "https://gist.github.com/x/1"}
	if r := h.do(h.verify, "POST", "/v1/keys/leaked", body); r.status != 403 {
		t.Fatalf("verify token: %d", r.status)
	}
	if r := h.do("", "POST", "/v1/keys/leaked", body); r.status != 401 {
		t.Fatalf("no token: %d", r.status)
	}
	got := h.want(h.admin_("POST", "/v1/keys/leaked", body), 200)
	key := got["key"].(map[string]any)
	if got["first_report"] != true || got["action"] != "revoke" || key["status"] != "revoked" || key["leak_source"] != "report" || key["id"] != id {
		t.Fatalf("report: %v", got)
	}
	if got := h.want(h.admin_("POST", "/v1/keys/leaked", body), 200); got["first_report"] != false {
		t.Fatalf("again: %v", got)
	}
	bad := plaintext[:len(plaintext)-1] + "!"
	r := h.admin_("POST", "/v1/keys/leaked", map[string]any{"key": bad})
	if r.status != 400 || strings.Contains(string(r.body), bad) || !strings.Contains(string(r.body), `"key"`) {
		t.Fatalf("bad key: %d %s", r.status, r.body)
	}
	if r := h.admin_("POST", "/v1/keys/leaked", map[string]any{"key": apikey.New("kp", "live")}); r.status != 404 {
		t.Fatalf("unknown key: %d %s", r.status, r.body)
	}
	r = h.admin_("POST", "/v1/keys/leaked", map[string]any{"key": plaintext, "source_url": "javascript:alert(1)"})
	if r.status != 400 || !strings.Contains(string(r.body), "source_url") {
		t.Fatalf("bad url: %d %s", r.status, r.body)
	}
}
