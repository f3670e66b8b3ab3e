package routes

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"regexp"
	"strings"
	"sync/atomic"

	"github.com/keyplane/keyplane"
	"go.yaml.in/yaml/v3"
)

// Unmatched says what happens to a request no rule matches.
type Unmatched string

const (
	Deny     Unmatched = "deny"      // 403
	NotFound Unmatched = "not_found" // 404, so the API's shape is not revealed
	Allow    Unmatched = "allow"     // any valid key, no scope, cost 1
)

// MaxCost bounds a rule's cost, as POST /v1/verify bounds its own.
const MaxCost = 1_000_000

// maxFileBytes keeps a mistaken path (a log file, a binary) from being read whole.
const maxFileBytes = 1 << 20

// Rule is one route: the pattern it matches and what it requires.
type Rule struct {
	Pattern string // as written, e.g. "GET /v1/things/{id}"; names the endpoint in usage
	Scope   string // required scope; "" means any valid key
	Cost    int64  // charged against rate limits and quota; default 1
	// Upstream is where gateway mode sends the request; nil for the default.
	Upstream *url.URL
	Line     int // in the rules file, for messages
}

// Rules is a loaded, immutable rule set.
type Rules struct {
	Unmatched Unmatched
	rules     []Rule
	mux       *http.ServeMux
}

// rule is the handler a rule is registered with: the mux answers with it.
type rule struct{ *Rule }

func (rule) ServeHTTP(http.ResponseWriter, *http.Request) {}

// AllowAll is what keyplane does without a rules file: every valid key may
// call every path, and no scope is required.
func AllowAll() *Rules {
	return &Rules{Unmatched: Allow, mux: http.NewServeMux()}
}

// Len returns the number of rules.
func (rs *Rules) Len() int { return len(rs.rules) }

// Rules returns the rules in file order; callers must not modify them.
func (rs *Rules) Rules() []Rule { return rs.rules }

// Match returns the rule for a request's method and URL, or nil when none
// matches. A path that is not canonical (see Canonical) matches nothing.
func (rs *Rules) Match(method string, u *url.URL) *Rule {
	if len(rs.rules) == 0 {
		return nil
	}
	h, _ := rs.mux.Handler(&http.Request{Method: method, URL: u, Host: ""})
	if r, ok := h.(rule); ok {
		return r.Rule
	}
	return nil // no match, or the mux's redirect to a cleaner path
}

// Canonical reports whether p is a clean absolute path: no ".", "..", or
// empty segments. Requests with other paths are refused before matching:
// the upstream may resolve "/public/../admin" to a path whose rule differs.
func Canonical(p string) bool {
	if p == "" || p[0] != '/' {
		return false
	}
	c := path.Clean(p)
	if c != "/" && strings.HasSuffix(p, "/") {
		c += "/"
	}
	return c == p
}

// Load reads and checks a rules file. Errors name the file and line of each
// problem found, all of them at once.
func Load(file string) (*Rules, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if len(data) > maxFileBytes {
		return nil, fmt.Errorf("%s: over 1 MiB; is this a rules file?", file)
	}
	return Parse(file, data)
}

// Parse checks rules read from name (used in messages only).
func Parse(name string, data []byte) (*Rules, error) {
	p := &parser{name: name}
	rs := p.parse(data)
	if len(p.errs) > 0 {
		return nil, errors.Join(p.errs...)
	}
	return rs, nil
}

type parser struct {
	name string
	errs []error
}

func (p *parser) errorf(line int, format string, args ...any) {
	p.errs = append(p.errs, fmt.Errorf("%s:%d: %s", p.name, line, fmt.Sprintf(format, args...)))
}

func (p *parser) parse(data []byte) *Rules {
	rs := &Rules{Unmatched: Deny, mux: http.NewServeMux()}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		// yaml.v3's messages read "yaml: line N: …"; say it our way.
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		if m := yamlLine.FindStringSubmatch(msg); m != nil {
			p.errs = append(p.errs, fmt.Errorf("%s:%s: %s", p.name, m[1], m[2]))
		} else {
			p.errs = append(p.errs, fmt.Errorf("%s: %s", p.name, msg))
		}
		return nil
	}
	if len(doc.Content) == 0 {
		p.errorf(1, "empty file: want a mapping with routes:")
		return nil
	}
	top := doc.Content[0]
	if top.Kind != yaml.MappingNode {
		p.errorf(top.Line, "want a mapping with routes: and optionally unmatched:")
		return nil
	}
	sawRoutes := false
	for i := 0; i+1 < len(top.Content); i += 2 {
		k, v := top.Content[i], top.Content[i+1]
		switch k.Value {
		case "unmatched":
			switch u := Unmatched(v.Value); {
			case v.Kind == yaml.ScalarNode && (u == Deny || u == NotFound || u == Allow):
				rs.Unmatched = u
			default:
				p.errorf(v.Line, "unmatched: %q: want deny, not_found or allow", v.Value)
			}
		case "routes":
			sawRoutes = true
			if v.Kind != yaml.SequenceNode {
				if !(v.Kind == yaml.ScalarNode && v.Tag == "!!null") {
					p.errorf(v.Line, "routes: want a list of rules")
				}
				continue
			}
			for _, item := range v.Content {
				if r, ok := p.rule(item); ok {
					rs.rules = append(rs.rules, r)
				}
			}
		default:
			p.errorf(k.Line, "unknown field %q (want routes or unmatched)", k.Value)
		}
	}
	if !sawRoutes {
		p.errorf(top.Line, "no routes: list (write routes: [] to match nothing)")
	}
	p.register(rs)
	return rs
}

var (
	yamlLine = regexp.MustCompile(`^line (\d+): (.*)$`)
	// A method as ServeMux matches it: case-sensitive, so "get" would never match.
	methodPattern = regexp.MustCompile(`^[A-Z]+$`)
)

func (p *parser) rule(n *yaml.Node) (Rule, bool) {
	r := Rule{Cost: 1, Line: n.Line}
	if n.Kind != yaml.MappingNode {
		p.errorf(n.Line, "a rule must be a mapping with match: and scope:")
		return r, false
	}
	before := len(p.errs)
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if seen[k.Value] {
			p.errorf(k.Line, "%s: given twice", k.Value)
			continue
		}
		seen[k.Value] = true
		if v.Kind != yaml.ScalarNode {
			p.errorf(v.Line, "%s: want a single value", k.Value)
			continue
		}
		switch k.Value {
		case "match":
			r.Pattern = strings.TrimSpace(v.Value)
			p.checkPattern(v.Line, r.Pattern)
		case "scope":
			r.Scope = v.Value
			switch {
			case v.Tag == "!!null" || v.Value == "":
				r.Scope = "" // written out to say "any valid key"
			case strings.Contains(v.Value, "*"):
				p.errorf(v.Line, "scope %q: a required scope names one action; wildcards belong in keys' grants", v.Value)
			case !keyplane.ScopePattern.MatchString(v.Value):
				p.errorf(v.Line, "scope %q: want resource:action in lowercase, e.g. things:read", v.Value)
			}
		case "cost":
			var c int64
			if v.Tag != "!!int" || v.Decode(&c) != nil || c < 0 || c > MaxCost {
				p.errorf(v.Line, "cost %s: want a whole number from 0 to %d", v.Value, MaxCost)
			}
			r.Cost = c
		case "upstream":
			u, err := ParseUpstream(v.Value)
			if err != nil {
				p.errorf(v.Line, "upstream: %v", err)
			}
			r.Upstream = u
		default:
			p.errorf(k.Line, "unknown field %q (want match, scope, cost or upstream)", k.Value)
		}
	}
	if !seen["match"] {
		p.errorf(n.Line, "rule has no match: (e.g. match: GET /v1/things/{id})")
	}
	return r, len(p.errs) == before
}

// checkPattern checks what ServeMux would accept but keyplane does not.
func (p *parser) checkPattern(line int, pattern string) {
	rest := pattern
	if i := strings.IndexAny(pattern, " \t"); i >= 0 {
		method := pattern[:i]
		rest = strings.TrimLeft(pattern[i:], " \t")
		if !methodPattern.MatchString(method) {
			p.errorf(line, "match %q: the method must be upper case, like GET", pattern)
			return
		}
	}
	if !strings.HasPrefix(rest, "/") {
		p.errorf(line, "match %q: want [METHOD ]/path, e.g. GET /v1/things/{id} (hosts are not supported)", pattern)
	}
}

// register adds the rules to the mux, turning its panics on bad or
// conflicting patterns into errors that name both lines.
func (p *parser) register(rs *Rules) {
	for i := range rs.rules {
		r := &rs.rules[i]
		err := handle(rs.mux, r)
		if err == nil {
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, " conflicts with ") {
			p.errorf(r.Line, "match %q: %s", r.Pattern, strings.TrimPrefix(msg, fmt.Sprintf("parsing %q: ", r.Pattern)))
			continue
		}
		// Find the earlier rule it conflicts with, to name its line.
		for j := range i {
			if handle(pairMux(&rs.rules[j]), r) != nil {
				_, why, _ := strings.Cut(msg, ":\n")
				p.errorf(r.Line, "match %q conflicts with %q on line %d: %s", r.Pattern, rs.rules[j].Pattern, rs.rules[j].Line,
					strings.ReplaceAll(strings.TrimSpace(why), "\n", " "))
				break
			}
		}
	}
}

func pairMux(r *Rule) *http.ServeMux {
	m := http.NewServeMux()
	m.Handle(r.Pattern, rule{r})
	return m
}

func handle(mux *http.ServeMux, r *Rule) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("%v", v)
		}
	}()
	mux.Handle(r.Pattern, rule{r})
	return nil
}

// ParseUpstream checks an upstream URL: http or https, a host, and nothing
// that a proxied request could not carry (a query, a fragment, credentials).
func ParseUpstream(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return nil, fmt.Errorf("%q is not a URL", raw)
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("%q: want an http:// or https:// URL", raw)
	case u.Host == "":
		return nil, fmt.Errorf("%q has no host", raw)
	case u.User != nil, u.RawQuery != "", u.Fragment != "":
		return nil, fmt.Errorf("%q: want scheme, host, port and at most a path prefix", raw)
	}
	return u, nil
}

// Source holds the rules in force and reloads them from their file; a
// request sees either the old rules or the new, never a mix.
type Source struct {
	file  string
	rules atomic.Pointer[Rules]
}

// Open loads file; an empty file name means no rules file (AllowAll).
func Open(file string) (*Source, error) {
	s := &Source{file: file}
	rs := AllowAll()
	if file != "" {
		var err error
		if rs, err = Load(file); err != nil {
			return nil, err
		}
	}
	s.rules.Store(rs)
	return s, nil
}

// Static returns a Source that always has rs.
func Static(rs *Rules) *Source {
	s := &Source{}
	s.rules.Store(rs)
	return s
}

// File is the rules file, "" when there is none.
func (s *Source) File() string { return s.file }

// Rules returns the rules in force.
func (s *Source) Rules() *Rules { return s.rules.Load() }

// Reload reads the file again. On any error the rules in force stay.
func (s *Source) Reload() (*Rules, error) {
	if s.file == "" {
		return s.Rules(), errors.New("no rules file to reload (serve has no --routes)")
	}
	rs, err := Load(s.file)
	if err != nil {
		return s.Rules(), err
	}
	s.rules.Store(rs)
	return rs, nil
}
