package routes_test

import (
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyplane/keyplane/routes"
)

const example = `# things API
unmatched: not_found
routes:
  - match: GET /v1/things/{id}
    scope: things:read
  - match: POST /v1/things
    scope: things:write
    cost: 5
  - match: /v1/reports/
    scope: reports:read
    upstream: http://127.0.0.1:9100/base
  - match: GET /v1/status
    scope:
    cost: 0
`

func mustParse(t *testing.T, src string) *routes.Rules {
	t.Helper()
	rs, err := routes.Parse("rules.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func TestMatch(t *testing.T) {
	rs := mustParse(t, example)
	if rs.Unmatched != routes.NotFound || rs.Len() != 4 {
		t.Fatalf("unmatched %q, %d rules", rs.Unmatched, rs.Len())
	}
	for _, c := range []struct {
		method, path string
		pattern      string // "" for no match
		scope        string
		cost         int64
	}{
		{"GET", "/v1/things/42", "GET /v1/things/{id}", "things:read", 1},
		{"HEAD", "/v1/things/42", "GET /v1/things/{id}", "things:read", 1}, // GET covers HEAD, as in ServeMux
		{"DELETE", "/v1/things/42", "", "", 0},
		{"GET", "/v1/things/42/parts", "", "", 0},
		{"POST", "/v1/things", "POST /v1/things", "things:write", 5},
		{"PUT", "/v1/reports/2026/q3", "/v1/reports/", "reports:read", 1},
		{"GET", "/v1/reports", "", "", 0}, // ServeMux would redirect: no rule applies
		{"GET", "/v1/status", "GET /v1/status", "", 0},
		{"GET", "/v1/things/../status", "", "", 0},
	} {
		r := rs.Match(c.method, &url.URL{Path: c.path})
		got := ""
		if r != nil {
			got = r.Pattern
		}
		if got != c.pattern {
			t.Errorf("%s %s matched %q, want %q", c.method, c.path, got, c.pattern)
			continue
		}
		if r != nil && (r.Scope != c.scope || r.Cost != c.cost) {
			t.Errorf("%s %s: scope %q cost %d, want %q %d", c.method, c.path, r.Scope, r.Cost, c.scope, c.cost)
		}
	}
	if r := rs.Match("PUT", &url.URL{Path: "/v1/reports/x"}); r.Upstream == nil || r.Upstream.String() != "http://127.0.0.1:9100/base" || r.Line != 9 {
		t.Errorf("upstream %v line %d", r.Upstream, r.Line)
	}
}

func TestBadRulesNameTheLine(t *testing.T) {
	for _, c := range []struct {
		name, src string
		want      []string // each must appear in the error
	}{
		{"unknown top-level field", "routes: []\nunmatch: deny\n", []string{`rules.yaml:2: unknown field "unmatch"`}},
		{"unknown rule field", "routes:\n  - match: GET /a\n    scopes: a:read\n", []string{`rules.yaml:3: unknown field "scopes"`}},
		{"bad unmatched", "unmatched: maybe\nroutes: []\n", []string{`rules.yaml:1: unmatched: "maybe"`}},
		{"no routes", "unmatched: deny\n", []string{"rules.yaml:1: no routes"}},
		{"empty file", "", []string{"rules.yaml:1: empty file"}},
		{"not a mapping", "- match: GET /a\n", []string{"rules.yaml:1: want a mapping"}},
		// YAML syntax errors carry the line yaml.v3 reports: where the enclosing block starts.
		{"yaml syntax", "routes:\n  - match: GET /a\n   scope: a:read\n", []string{"rules.yaml:1: did not find expected '-' indicator"}},
		{"unclosed list", "routes: [\n\nunmatched: deny\n", []string{"rules.yaml:3: did not find expected ',' or ']'"}},
		{"tab indentation", "routes:\n\t- match: GET /a\n", []string{"rules.yaml:2: "}},
		{"bad wildcard", "routes:\n  - match: GET /a/{id\n", []string{`rules.yaml:2: match "GET /a/{id": at offset 7: bad wildcard segment`}},
		{"lower-case method", "routes:\n  - match: get /a\n", []string{`rules.yaml:2: match "get /a": the method must be upper case`}},
		{"host", "routes:\n  - match: GET example.com/a\n", []string{`rules.yaml:2: match "GET example.com/a": want [METHOD ]/path`}},
		{"no match", "routes:\n  - scope: a:read\n", []string{"rules.yaml:2: rule has no match"}},
		{"duplicate", "routes:\n  - match: GET /a\n  - match: POST /b\n  - match: GET /a\n", []string{`rules.yaml:4: match "GET /a" conflicts with "GET /a" on line 2`}},
		{"conflict", "routes:\n  - match: GET /a/{x}/b\n    scope: a:read\n  - match: GET /a/b/{x}\n    scope: a:write\n",
			[]string{`rules.yaml:4: match "GET /a/b/{x}" conflicts with "GET /a/{x}/b" on line 2: `, "neither is more specific"}},
		{"bad scope", "routes:\n  - match: GET /a\n    scope: Things\n", []string{`rules.yaml:3: scope "Things": want resource:action`}},
		{"wildcard scope", "routes:\n  - match: GET /a\n    scope: things:*\n", []string{`rules.yaml:3: scope "things:*": a required scope names one action`}},
		{"negative cost", "routes:\n  - match: GET /a\n    cost: -1\n", []string{"rules.yaml:3: cost -1: want a whole number"}},
		{"fractional cost", "routes:\n  - match: GET /a\n    cost: 1.5\n", []string{"rules.yaml:3: cost 1.5"}},
		{"huge cost", "routes:\n  - match: GET /a\n    cost: 1000001\n", []string{"rules.yaml:3: cost 1000001"}},
		{"bad upstream", "routes:\n  - match: GET /a\n    upstream: ftp://x\n", []string{`rules.yaml:3: upstream: "ftp://x": want an http://`}},
		{"upstream with query", "routes:\n  - match: GET /a\n    upstream: http://x/?a=1\n", []string{"rules.yaml:3: upstream:"}},
		{"field twice", "routes:\n  - match: GET /a\n    scope: a:read\n    scope: a:write\n", []string{"rules.yaml:4: scope: given twice"}},
		{"list as scope", "routes:\n  - match: GET /a\n    scope: [a:read]\n", []string{"rules.yaml:3: scope: want a single value"}},
		{"rule not a mapping", "routes:\n  - GET /a\n", []string{"rules.yaml:2: a rule must be a mapping"}},
		{"every problem at once", "routes:\n  - match: GET /a\n    scope: A\n  - match: get /b\n", []string{"rules.yaml:3: ", "rules.yaml:4: "}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := routes.Parse("rules.yaml", []byte(c.src))
			if err == nil {
				t.Fatalf("accepted:\n%s", c.src)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
		})
	}
}

func TestCanonical(t *testing.T) {
	for p, want := range map[string]bool{
		"/": true, "/a": true, "/a/": true, "/a/b": true,
		"": false, "a": false, "//a": false, "/a//b": false, "/a/./b": false, "/a/../b": false, "/a/..": false, "/.": false,
	} {
		if got := routes.Canonical(p); got != want {
			t.Errorf("Canonical(%q) = %v", p, got)
		}
	}
}

func TestSourceReloadKeepsOldRulesOnError(t *testing.T) {
	file := filepath.Join(t.TempDir(), "rules.yaml")
	write := func(s string) {
		if err := os.WriteFile(file, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("routes:\n  - match: GET /a\n    scope: a:read\n")
	src, err := routes.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	write("routes:\n  - match: GET /a\n    scope: a:write\n")
	if _, err := src.Reload(); err != nil {
		t.Fatal(err)
	}
	if r := src.Rules().Match("GET", &url.URL{Path: "/a"}); r.Scope != "a:write" {
		t.Fatalf("scope after reload %q", r.Scope)
	}
	write("routes:\n  - match: GET /a\n    scope: nope\n")
	if _, err := src.Reload(); err == nil || !strings.Contains(err.Error(), file+":3:") {
		t.Fatalf("reload of a bad file: %v", err)
	}
	if r := src.Rules().Match("GET", &url.URL{Path: "/a"}); r.Scope != "a:write" {
		t.Fatalf("a bad file replaced the rules: scope %q", r.Scope)
	}
	if _, err := routes.Open(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Fatal("a missing file opened")
	}
	none, err := routes.Open("")
	if err != nil || none.Rules().Unmatched != routes.Allow {
		t.Fatalf("no file: %v %v", err, none.Rules().Unmatched)
	}
	if _, err := none.Reload(); err == nil {
		t.Fatal("reload without a file succeeded")
	}
}

// The documented example must load: docs/integrations/routes.md shows it.
func TestDocumentedExampleLoads(t *testing.T) {
	doc, err := os.ReadFile("../docs/integrations/routes.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "```yaml\n")
	src, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("no yaml block in docs/integrations/routes.md")
	}
	if _, err := routes.Parse("routes.md", []byte(src)); err != nil {
		t.Fatal(err)
	}
}
