package portal

import (
	"bytes"
	"embed"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/apikey"
	"github.com/keyplane/keyplane/problem"
	"github.com/keyplane/keyplane/service"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// CookieName is the session cookie's name. With Secure, the __Host- prefix
// makes browsers refuse it unless it is Secure, host-only and for path /,
// so a neighbouring subdomain cannot plant or shadow it.
func CookieName(secure bool) string {
	if secure {
		return "__Host-keyplane_session"
	}
	return "keyplane_session"
}

// Config wires a Handler.
type Config struct {
	Service *service.Service
	Logger  *slog.Logger
	// CookieSecure marks the session cookie Secure (HTTPS only), with the
	// __Host- prefix. Turn it off only for plain HTTP on loopback.
	CookieSecure bool
	// PortalURL is the public base URL for invite links; empty derives it
	// from each request.
	PortalURL string
	Now       func() time.Time
}

// Handler serves /portal/.
type Handler struct {
	svc       *service.Service
	log       *slog.Logger
	secure    bool
	cookie    string
	portalURL string
	now       func() time.Time
	pages     map[string]*template.Template
	mux       *http.ServeMux
	handler   http.Handler
}

// New returns the portal's handler.
func New(cfg Config) (*Handler, error) {
	h := &Handler{svc: cfg.Service, log: cfg.Logger, secure: cfg.CookieSecure, cookie: CookieName(cfg.CookieSecure),
		portalURL: strings.TrimSuffix(cfg.PortalURL, "/"), now: cfg.Now, mux: http.NewServeMux()}
	if h.log == nil {
		h.log = slog.Default()
	}
	if h.now == nil {
		h.now = time.Now
	}
	if err := h.parseTemplates(); err != nil {
		return nil, err
	}
	h.routes()
	// Cross-origin form posts are refused outright (Sec-Fetch-Site and
	// Origin, as browsers send them); pages behind a session also check a
	// token bound to the session, see requireSession.
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.renderError(w, r, nil, http.StatusForbidden, crossOriginMessage(r))
	}))
	h.handler = securityHeaders(cop.Handler(h.mux))
	return h, nil
}

// CookieName is the name of the session cookie this handler sets.
func (h *Handler) CookieName() string { return h.cookie }

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.handler.ServeHTTP(w, r) }

// securityHeaders: pages load nothing but their own stylesheet and script;
// no page may be framed; no URL (invite and reset links carry a token)
// leaks in a Referer, only the origin; nothing is cached, least of all a page showing a new key.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		hd.Set("X-Content-Type-Options", "nosniff")
		// strict-origin, not no-referrer: with no-referrer browsers send
		// "Origin: null" on the portal's own forms, and over plain HTTP
		// (no Sec-Fetch-Site) the cross-origin check then refuses them.
		// Not same-origin either: that sends the full URL, token and all,
		// when an invite or reset page loads its stylesheet, into the
		// access log of any proxy that logs Referer.
		hd.Set("Referrer-Policy", "strict-origin")
		hd.Set("X-Frame-Options", "DENY")
		if !strings.HasPrefix(r.URL.Path, "/portal/static/") {
			hd.Set("Cache-Control", "no-store")
		}
		next.ServeHTTP(w, r)
	})
}

// crossOriginMessage says why a form was refused as cross-origin, from the
// headers the check looked at.
func crossOriginMessage(r *http.Request) string {
	const retry = " Nothing was changed."
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" {
		return "This form was sent from another site (the browser says Sec-Fetch-Site: " + site + "), so it was refused: only the portal's own pages may send it. Open the portal at its own address and try again." + retry
	}
	origin := r.Header.Get("Origin")
	if origin == "null" {
		return "This form was refused because the browser did not say which site sent it (Origin: null), so it may have come from another site. Open the portal at its own address, with no browser extension rewriting referrers, and try again." + retry
	}
	return "This form was sent from " + origin + " but the portal is at " + r.Host + ", so it was refused as coming from another site. Open the portal at " + r.Host + " and try again; behind a reverse proxy, the proxy must pass the original Host header." + retry
}

func (h *Handler) parseTemplates() error {
	funcs := template.FuncMap{
		"time":    func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") },
		"timeptr": timePtr,
		"join":    strings.Join,
		"list":    func(s ...string) []string { return s },
		"status":  func(k *keyplane.Key) string { return string(k.Status(h.now())) },
	}
	base, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return err
	}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return err
	}
	h.pages = map[string]*template.Template{}
	for _, n := range names {
		name := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if name == "layout" {
			continue
		}
		t, err := template.Must(base.Clone()).ParseFS(templateFS, n)
		if err != nil {
			return err
		}
		h.pages[name] = t
	}
	return nil
}

func timePtr(t *time.Time) string {
	if t == nil {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

// view is what every page template gets.
type view struct {
	Title   string
	Nav     string // the current section, for aria-current
	Session *service.PortalSession
	Account *keyplane.Account
	CSRF    string
	Notice  string
	Error   string
	Fields  map[string]string // per-field validation messages
	Signup  bool
	Data    any
}

// CanManageKeys and IsOwner decide which buttons a page shows; the service
// decides what is allowed.
func (v *view) CanManageKeys() bool { return v.Session != nil && v.Session.Member.Role.ManagesKeys() }
func (v *view) IsOwner() bool {
	return v.Session != nil && v.Session.Member.Role == keyplane.MemberOwner
}

func (h *Handler) render(w http.ResponseWriter, r *http.Request, status int, page string, v *view) {
	t, ok := h.pages[page]
	if !ok {
		panic("portal: no template " + page)
	}
	v.Signup = h.svc.SignupAllowed()
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout.html", v); err != nil {
		h.log.ErrorContext(r.Context(), "portal: render", "page", page, "error", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// renderError shows a message on an error page, with the status it stands for.
func (h *Handler) renderError(w http.ResponseWriter, r *http.Request, v *view, status int, msg string) {
	if v == nil {
		v = &view{}
	}
	v.Title, v.Error = http.StatusText(status), msg
	h.render(w, r, status, "error", v)
}

// fail renders a service error: its message when it is one of ours, a
// generic text (and a log line) otherwise.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, v *view, err error) {
	if problem.ClientGone(r.Context()) {
		w.WriteHeader(problem.StatusClientClosedRequest) // for the request log: no one is there to read a page
		return
	}
	status := problem.StatusOf(err)
	if status == 0 || status >= 500 {
		h.log.ErrorContext(r.Context(), "portal: request failed", "path", apikey.Redact(r.URL.Path), "error", err)
	}
	if status == 0 {
		status = http.StatusInternalServerError
	}
	if status == http.StatusUnauthorized {
		h.toSignIn(w, r, true)
		return
	}
	h.renderError(w, r, v, status, keyplane.ErrorMessage(err))
}

// clientIP is the connection's address, for the sign-in throttle.
func clientIP(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	ip, _ := netip.ParseAddr(host)
	return ip
}

// requireSession runs next only for a signed-in member, with the member's
// actor in the context; others go to the sign-in page. A POST must carry
// the session's CSRF token.
func (h *Handler) requireSession(next func(http.ResponseWriter, *http.Request, *view)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, err := r.Cookie(h.cookie)
		if err != nil || c.Value == "" {
			h.toSignIn(w, r, false)
			return
		}
		ps, err := h.svc.AuthenticateSession(r.Context(), c.Value)
		if keyplane.ErrorCode(err) == keyplane.EUNAUTHORIZED {
			h.toSignIn(w, r, true)
			return
		} else if err != nil {
			h.fail(w, r, nil, err)
			return
		}
		ctx := keyplane.NewContextWithActor(r.Context(), ps.Actor)
		r = r.WithContext(ctx)
		v := &view{Session: ps, CSRF: service.CSRFToken(c.Value)}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
			if !service.ValidCSRF(c.Value, r.PostFormValue("csrf")) {
				h.renderError(w, r, v, http.StatusForbidden, "This form has no valid security token (it may be from an old page or another site), so nothing was changed. Go back, reload the page and try again.")
				return
			}
		}
		if v.Account, err = h.svc.Account(ctx, ps.Actor.AccountID); err != nil {
			h.fail(w, r, v, err)
			return
		}
		next(w, r, v)
	}
}

// maxFormBytes bounds a form post; the largest, a key with many IP ranges,
// is a few kilobytes.
const maxFormBytes = 64 << 10

// toSignIn sends a visitor to the sign-in page, clearing a dead cookie.
func (h *Handler) toSignIn(w http.ResponseWriter, r *http.Request, ended bool) {
	target := "/portal/signin"
	if ended {
		h.clearCookie(w)
		target += "?ended=1"
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

func (h *Handler) setCookie(w http.ResponseWriter, token string, expires time.Time) {
	http.SetCookie(w, &http.Cookie{Name: h.cookie, Value: token, Path: "/", Expires: expires, Secure: h.secure, HttpOnly: true, SameSite: http.SameSiteLaxMode})
}

func (h *Handler) clearCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: h.cookie, Value: "", Path: "/", MaxAge: -1, Secure: h.secure, HttpOnly: true, SameSite: http.SameSiteLaxMode})
}

// inviteBase is the origin invite links start with.
func (h *Handler) inviteBase(r *http.Request) string {
	if h.portalURL != "" {
		return h.portalURL
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

func fsSub(f fs.FS, dir string) (fs.FS, error) { return fs.Sub(f, dir) }
