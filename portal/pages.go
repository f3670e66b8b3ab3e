package portal

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/problem"
	"github.com/keyplane/keyplane/service"
)

func (h *Handler) routes() {
	m := h.mux
	static, _ := fsSub(staticFS, "static")
	m.Handle("GET /portal/static/", http.StripPrefix("/portal/static/", cacheStatic(http.FileServerFS(static))))
	m.HandleFunc("GET /portal/{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/portal/keys", http.StatusSeeOther)
	})
	m.HandleFunc("GET /portal/signin", h.signInPage)
	m.HandleFunc("POST /portal/signin", h.signIn)
	m.HandleFunc("POST /portal/signout", h.signOut)
	m.HandleFunc("GET /portal/signup", h.signUpPage)
	m.HandleFunc("POST /portal/signup", h.signUp)
	m.HandleFunc("GET /portal/invite", h.invitePage)
	m.HandleFunc("POST /portal/invite", h.acceptInvite)

	m.HandleFunc("GET /portal/keys", h.requireSession(h.keysPage))
	m.HandleFunc("GET /portal/keys/new", h.requireSession(h.newKeyPage))
	m.HandleFunc("POST /portal/keys", h.requireSession(h.createKey))
	m.HandleFunc("GET /portal/keys/{id}", h.requireSession(h.keyPage))
	m.HandleFunc("POST /portal/keys/{id}/roll", h.requireSession(h.rollKey))
	m.HandleFunc("GET /portal/keys/{id}/revoke", h.requireSession(h.revokePage))
	m.HandleFunc("POST /portal/keys/{id}/revoke", h.requireSession(h.revokeKey))

	m.HandleFunc("GET /portal/keys/{id}/usage", h.requireSession(h.usagePage))
	m.HandleFunc("GET /portal/audit", h.requireSession(h.auditPage))
	m.HandleFunc("GET /portal/members", h.requireSession(h.membersPage))
	m.HandleFunc("POST /portal/members/invite", h.requireSession(h.inviteMember))
	m.HandleFunc("POST /portal/members/{id}", h.requireSession(h.updateMember))
	m.HandleFunc("POST /portal/invites/{id}/cancel", h.requireSession(h.cancelInvite))
	m.HandleFunc("POST /portal/members/{id}/delete", h.requireSession(h.deleteMember))
	m.HandleFunc("POST /portal/members/{id}/reset", h.requireSession(h.issueReset))
	m.HandleFunc("GET /portal/account/password", h.requireSession(h.passwordPage))
	m.HandleFunc("POST /portal/account/password", h.requireSession(h.changePassword))
	m.HandleFunc("GET /portal/reset", h.resetPage)
	m.HandleFunc("POST /portal/reset", h.resetPassword)

	m.HandleFunc("GET /portal/webhooks", h.requireSession(h.webhooksPage))
	m.HandleFunc("POST /portal/webhooks", h.requireSession(h.createWebhook))
	m.HandleFunc("GET /portal/webhooks/{id}", h.requireSession(h.webhookPage))
	m.HandleFunc("POST /portal/webhooks/{id}/test", h.requireSession(h.testWebhook))
	m.HandleFunc("POST /portal/webhooks/{id}/rotate", h.requireSession(h.rotateWebhook))
	m.HandleFunc("POST /portal/webhooks/{id}/enabled", h.requireSession(h.enableWebhook))
	m.HandleFunc("POST /portal/webhooks/{id}/delete", h.requireSession(h.deleteWebhook))
	m.HandleFunc("POST /portal/messages/{id}/retry", h.requireSession(h.retryMessage))

	m.HandleFunc("/portal/", func(w http.ResponseWriter, r *http.Request) {
		h.renderError(w, r, nil, http.StatusNotFound, "There is no page at this address.")
	})
}

// cacheStatic lets browsers keep the stylesheet and script for an hour.
func cacheStatic(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		next.ServeHTTP(w, r)
	})
}

// ---- signing in and out

type signInData struct {
	Email string
	// Choices are the accounts the email and password open, when they open
	// several; the form then asks which, and for the password again.
	Choices []*keyplane.Account
	Account string // the chosen one
}

func (h *Handler) signInPage(w http.ResponseWriter, r *http.Request) {
	// ?account= signs in to one account's membership of the email: a link
	// an owner may share, and the way to a membership past the ones a plain
	// sign-in checks.
	v := &view{Title: "Sign in", Data: signInData{Account: r.URL.Query().Get("account")}}
	if r.URL.Query().Get("ended") != "" {
		v.Notice = "Your session has ended. Sign in again to continue."
	}
	if r.URL.Query().Get("out") != "" {
		v.Notice = "You are signed out."
	}
	if r.URL.Query().Get("done") == "reset" {
		v.Notice = notices["reset"]
	}
	h.render(w, r, http.StatusOK, "signin", v)
}

func (h *Handler) signIn(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	email, pw, account := r.PostFormValue("email"), r.PostFormValue("password"), r.PostFormValue("account")
	var in *service.SignedIn
	var err error
	if account != "" {
		in, err = h.svc.SignInToAccount(r.Context(), account, email, pw, clientIP(r))
	} else {
		in, err = h.svc.SignIn(r.Context(), email, pw, clientIP(r))
	}
	if err != nil {
		status := problem.StatusOf(err)
		if status == 0 || status >= 500 {
			h.fail(w, r, nil, err)
			return
		}
		h.render(w, r, status, "signin", &view{Title: "Sign in", Error: keyplane.ErrorMessage(err), Data: signInData{Email: email, Account: account}})
		return
	}
	if in.Session == nil {
		// The password is not sent back in the page: the member types it
		// again with the account chosen.
		h.render(w, r, http.StatusOK, "signin", &view{Title: "Choose an account", Data: signInData{Email: email, Choices: in.Choices, Account: in.Choices[0].ID}})
		return
	}
	h.setCookie(w, in.Token, in.Session.ExpiresAt)
	http.Redirect(w, r, "/portal/keys", http.StatusSeeOther)
}

// signOut ends the session. It needs the session's CSRF token, so another
// site cannot sign a member out.
func (h *Handler) signOut(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	c, err := r.Cookie(h.cookie)
	if err != nil {
		h.toSignIn(w, r, false)
		return
	}
	if !service.ValidCSRF(c.Value, r.PostFormValue("csrf")) {
		h.renderError(w, r, nil, http.StatusForbidden, "This form has no valid security token, so you were not signed out. Go back, reload the page and try again.")
		return
	}
	if err := h.svc.SignOut(r.Context(), c.Value); err != nil {
		h.fail(w, r, nil, err)
		return
	}
	h.clearCookie(w)
	http.Redirect(w, r, "/portal/signin?out=1", http.StatusSeeOther)
}

type signUpData struct {
	AccountName, Email string
}

func (h *Handler) signUpPage(w http.ResponseWriter, r *http.Request) {
	if !h.svc.SignupAllowed() {
		h.renderError(w, r, nil, http.StatusNotFound, "Sign-up is off on this portal. Ask the operator for an account, or an owner of your account for an invite.")
		return
	}
	h.render(w, r, http.StatusOK, "signup", &view{Title: "Create an account", Data: signUpData{}})
}

func (h *Handler) signUp(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	in := service.SignUpInput{AccountName: r.PostFormValue("account_name"), Email: r.PostFormValue("email"), Password: r.PostFormValue("password")}
	if r.PostFormValue("password") != r.PostFormValue("password_again") {
		h.render(w, r, http.StatusBadRequest, "signup", &view{Title: "Create an account", Error: "The two passwords differ.",
			Fields: map[string]string{"password_again": "must be the same as the password"}, Data: signUpData{AccountName: in.AccountName, Email: in.Email}})
		return
	}
	signed, err := h.svc.SignUp(r.Context(), in, clientIP(r))
	if err != nil {
		if status := problem.StatusOf(err); status == http.StatusBadRequest || status == http.StatusConflict || status == http.StatusTooManyRequests {
			h.render(w, r, status, "signup", &view{Title: "Create an account", Error: keyplane.ErrorMessage(err), Fields: fieldErrors(err),
				Data: signUpData{AccountName: in.AccountName, Email: in.Email}})
			return
		}
		h.fail(w, r, nil, err)
		return
	}
	h.setCookie(w, signed.Token, signed.Session.ExpiresAt)
	http.Redirect(w, r, "/portal/keys", http.StatusSeeOther)
}

// fieldErrors maps a validation error's fields to their messages.
func fieldErrors(err error) map[string]string {
	e, ok := err.(*keyplane.Error)
	if !ok || len(e.Fields) == 0 {
		return nil
	}
	out := map[string]string{}
	for _, f := range e.Fields {
		name := f.Field
		if i := strings.IndexByte(name, '['); i >= 0 {
			name = name[:i]
		}
		if _, dup := out[name]; !dup {
			out[name] = f.Message
		}
	}
	return out
}

type inviteData struct {
	Token  string
	Invite *keyplane.Invite
}

func (h *Handler) invitePage(w http.ResponseWriter, r *http.Request) {
	token := r.URL.Query().Get("token")
	inv, err := h.svc.InviteByToken(r.Context(), token)
	if err != nil {
		h.fail(w, r, nil, err)
		return
	}
	h.render(w, r, http.StatusOK, "invite", &view{Title: "Join your team", Data: inviteData{Token: token, Invite: inv}})
}

func (h *Handler) acceptInvite(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	token, pw := r.PostFormValue("token"), r.PostFormValue("password")
	inv, err := h.svc.InviteByToken(r.Context(), token)
	if err != nil {
		h.fail(w, r, nil, err)
		return
	}
	again := func(status int, msg string, fields map[string]string) {
		h.render(w, r, status, "invite", &view{Title: "Join your team", Error: msg, Fields: fields, Data: inviteData{Token: token, Invite: inv}})
	}
	if pw != r.PostFormValue("password_again") {
		again(http.StatusBadRequest, "The two passwords differ.", map[string]string{"password_again": "must be the same as the password"})
		return
	}
	m, err := h.svc.AcceptInvite(r.Context(), token, pw)
	if keyplane.ErrorCode(err) == keyplane.EINVALID {
		again(http.StatusBadRequest, keyplane.ErrorMessage(err), fieldErrors(err))
		return
	} else if err != nil {
		h.fail(w, r, nil, err)
		return
	}
	signed, err := h.svc.SignInToAccount(r.Context(), m.AccountID, m.Email, pw, clientIP(r))
	if err != nil {
		h.fail(w, r, nil, err)
		return
	}
	h.setCookie(w, signed.Token, signed.Session.ExpiresAt)
	http.Redirect(w, r, "/portal/keys", http.StatusSeeOther)
}

// ---- keys

type keysData struct {
	Keys       []*keyplane.Key
	NextCursor string
	Status     string
}

func (h *Handler) keysPage(w http.ResponseWriter, r *http.Request, v *view) {
	q := r.URL.Query()
	status := keyplane.KeyStatus(q.Get("status"))
	keys, next, err := h.svc.ListKeys(r.Context(), v.Account.ID, status, keyplane.Page{Limit: 50, Cursor: q.Get("cursor")})
	if err != nil {
		h.fail(w, r, v, err)
		return
	}
	v.Title, v.Nav, v.Data = "API keys", "keys", keysData{Keys: keys, NextCursor: next, Status: string(status)}
	v.Notice = notices[q.Get("done")]
	h.render(w, r, http.StatusOK, "keys", v)
}

// notices are the messages a redirect after a change may show.
var notices = map[string]string{
	"revoked":  "The key was revoked. It stopped working on every instance.",
	"invited":  "Invite created.",
	"updated":  "Member updated.",
	"cancel":   "Invite cancelled; its link no longer works.",
	"deleted":  "Member deleted; they were signed out everywhere.",
	"password": "Password changed. Your other sessions were signed out.",
	"reset":    "Password set. Sign in with it.",

	"tested":          "A webhook.test event is on its way; its delivery shows below in a moment.",
	"retried":         "The message will be sent again, once.",
	"webhook-updated": "Endpoint updated.",
	"webhook-deleted": "Endpoint deleted.",
}

type newKeyData struct {
	Name        string
	Scopes      []string // chosen
	Other       string
	Environment string
	Expires     string
	CIDRs       string
}

// checked reports whether a scope was chosen, for the form's checkboxes.
func (d newKeyData) Checked(scope string) bool { return slices.Contains(d.Scopes, scope) }

func (h *Handler) newKeyPage(w http.ResponseWriter, r *http.Request, v *view) {
	if !v.CanManageKeys() {
		h.renderError(w, r, v, http.StatusForbidden, "Viewers can see keys but not create them; ask an owner for the developer role.")
		return
	}
	v.Title, v.Nav, v.Data = "Create a key", "keys", newKeyData{Environment: "live"}
	h.render(w, r, http.StatusOK, "newkey", v)
}

func (h *Handler) createKey(w http.ResponseWriter, r *http.Request, v *view) {
	d := newKeyData{Name: r.PostFormValue("name"), Scopes: r.PostForm["scope"], Other: r.PostFormValue("other_scopes"),
		Environment: r.PostFormValue("environment"), Expires: r.PostFormValue("expires"), CIDRs: r.PostFormValue("cidrs")}
	in := service.KeyInput{Name: d.Name, Environment: keyplane.Environment(d.Environment), Scopes: append(slices.Clone(d.Scopes), strings.Fields(d.Other)...)}
	in.AllowedCIDRs = strings.FieldsFunc(d.CIDRs, func(r rune) bool { return r == '\n' || r == ',' || r == ' ' || r == '\r' || r == '\t' })
	fields := map[string]string{}
	if d.Expires != "" {
		day, err := time.Parse("2006-01-02", d.Expires)
		if err != nil {
			fields["expires"] = "must be a date like 2027-01-31"
		} else {
			end := day.Add(24 * time.Hour) // the key works through the chosen day (UTC)
			in.ExpiresAt = &end
		}
	}
	var err error
	var created *service.CreatedKey
	if len(fields) == 0 {
		created, err = h.svc.CreateKey(r.Context(), v.Account.ID, in)
	}
	if len(fields) > 0 || keyplane.ErrorCode(err) == keyplane.EINVALID || keyplane.ErrorCode(err) == keyplane.ELIMIT {
		for k, msg := range fieldErrors(err) {
			fields[formField(k)] = msg
		}
		v.Title, v.Nav, v.Data, v.Fields = "Create a key", "keys", d, fields
		v.Error = "The key was not created: " + errorText(err, fields)
		status := http.StatusBadRequest
		if keyplane.ErrorCode(err) == keyplane.ELIMIT {
			status = http.StatusConflict
		}
		h.render(w, r, status, "newkey", v)
		return
	} else if err != nil {
		h.fail(w, r, v, err)
		return
	}
	v.Title, v.Nav, v.Data = "Your new key", "keys", shownKey{Key: created.Key, Plaintext: created.Plaintext}
	h.render(w, r, http.StatusCreated, "shownkey", v)
}

// formField names the form input a service field error is about.
func formField(field string) string {
	switch field {
	case "allowed_cidrs":
		return "cidrs"
	case "expires_at":
		return "expires"
	case "scopes":
		return "scope"
	}
	return field
}

func errorText(err error, fields map[string]string) string {
	if err != nil {
		return keyplane.ErrorMessage(err)
	}
	for k, msg := range fields {
		return k + ": " + msg
	}
	return ""
}

// shownKey is a key's plaintext, on the one page that ever shows it.
type shownKey struct {
	Key       *keyplane.Key
	Plaintext string
	Previous  *keyplane.Key // for a roll
}

type keyData struct {
	Key      *keyplane.Key
	Overlaps []overlap
}

type overlap struct {
	Seconds int
	Label   string
}

// overlaps are the roll windows offered; the API takes any up to 7 days.
var overlaps = []overlap{
	{0, "None: the old key stops now"},
	{3600, "1 hour"},
	{86400, "24 hours"},
	{7 * 86400, "7 days"},
}

func (h *Handler) keyPage(w http.ResponseWriter, r *http.Request, v *view) {
	k, err := h.svc.Key(r.Context(), r.PathValue("id"))
	if err != nil {
		h.fail(w, r, v, err)
		return
	}
	v.Title, v.Nav, v.Data = "Key "+k.Name, "keys", keyData{Key: k, Overlaps: overlaps}
	v.Notice = notices[r.URL.Query().Get("done")]
	h.render(w, r, http.StatusOK, "key", v)
}

func (h *Handler) rollKey(w http.ResponseWriter, r *http.Request, v *view) {
	secs, err := strconv.Atoi(r.PostFormValue("overlap_seconds"))
	if err != nil {
		h.renderError(w, r, v, http.StatusBadRequest, "Choose how long the old key keeps working.")
		return
	}
	rolled, err := h.svc.RollKey(r.Context(), r.PathValue("id"), time.Duration(secs)*time.Second)
	if err != nil {
		h.fail(w, r, v, err)
		return
	}
	v.Title, v.Nav, v.Data = "Your new key", "keys", shownKey{Key: rolled.Key.Key, Plaintext: rolled.Key.Plaintext, Previous: rolled.Previous}
	h.render(w, r, http.StatusCreated, "shownkey", v)
}

func (h *Handler) revokePage(w http.ResponseWriter, r *http.Request, v *view) {
	k, err := h.svc.Key(r.Context(), r.PathValue("id"))
	if err != nil {
		h.fail(w, r, v, err)
		return
	}
	if !v.CanManageKeys() {
		h.renderError(w, r, v, http.StatusForbidden, "Viewers can see keys but not revoke them; ask an owner for the developer role.")
		return
	}
	v.Title, v.Nav, v.Data = "Revoke key "+k.Name, "keys", keyData{Key: k}
	h.render(w, r, http.StatusOK, "revoke", v)
}

func (h *Handler) revokeKey(w http.ResponseWriter, r *http.Request, v *view) {
	k, err := h.svc.RevokeKey(r.Context(), r.PathValue("id"))
	if err != nil {
		h.fail(w, r, v, err)
		return
	}
	http.Redirect(w, r, "/portal/keys/"+k.ID+"?done=revoked", http.StatusSeeOther)
}

// ---- members

type membersData struct {
	Members []*keyplane.Member
	Invites []*keyplane.Invite
	Roles   []keyplane.MemberRole
	NewLink string // an invite's link, shown once
	NewTo   string
	// A password reset link, shown once.
	ResetLink string
	ResetTo   string
	Email     string
	Role      string
}

var roles = []keyplane.MemberRole{keyplane.MemberOwner, keyplane.MemberDeveloper, keyplane.MemberViewer}

func (h *Handler) membersData(r *http.Request, v *view) (*membersData, error) {
	members, _, err := h.svc.ListMembers(r.Context(), v.Account.ID, keyplane.Page{Limit: 100})
	if err != nil {
		return nil, err
	}
	invites, err := h.svc.PendingInvites(r.Context(), v.Account.ID)
	if err != nil {
		return nil, err
	}
	return &membersData{Members: members, Invites: invites, Roles: roles, Role: string(keyplane.MemberDeveloper)}, nil
}

func (h *Handler) membersPage(w http.ResponseWriter, r *http.Request, v *view) {
	d, err := h.membersData(r, v)
	if err != nil {
		h.fail(w, r, v, err)
		return
	}
	v.Title, v.Nav, v.Data = "Members", "members", d
	v.Notice = notices[r.URL.Query().Get("done")]
	h.render(w, r, http.StatusOK, "members", v)
}

func (h *Handler) inviteMember(w http.ResponseWriter, r *http.Request, v *view) {
	email, role := r.PostFormValue("email"), r.PostFormValue("role")
	inv, err := h.svc.InviteMember(r.Context(), v.Account.ID, email, keyplane.MemberRole(role))
	status := http.StatusCreated
	switch keyplane.ErrorCode(err) {
	case "":
	case keyplane.EINVALID, keyplane.ECONFLICT:
		v.Error, v.Fields = "The invite was not created: "+keyplane.ErrorMessage(err), fieldErrors(err)
		status = problem.StatusOf(err)
	default:
		h.fail(w, r, v, err)
		return
	}
	d, err := h.membersData(r, v)
	if err != nil {
		h.fail(w, r, v, err)
		return
	}
	if inv != nil {
		d.NewLink, d.NewTo = service.InviteURL(h.inviteBase(r), inv.Token), inv.Email
	} else {
		d.Email, d.Role = email, role
	}
	v.Title, v.Nav, v.Data = "Members", "members", d
	h.render(w, r, status, "members", v)
}

func (h *Handler) updateMember(w http.ResponseWriter, r *http.Request, v *view) {
	var up service.MemberUpdate
	if role := keyplane.MemberRole(r.PostFormValue("role")); role != "" {
		up.Role = &role
	}
	if st := keyplane.MemberStatus(r.PostFormValue("status")); st != "" {
		up.Status = &st
	}
	if _, err := h.svc.UpdateMember(r.Context(), r.PathValue("id"), up); err != nil {
		h.fail(w, r, v, err)
		return
	}
	http.Redirect(w, r, "/portal/members?done=updated", http.StatusSeeOther)
}

func (h *Handler) cancelInvite(w http.ResponseWriter, r *http.Request, v *view) {
	if err := h.svc.CancelInvite(r.Context(), r.PathValue("id")); err != nil {
		h.fail(w, r, v, err)
		return
	}
	http.Redirect(w, r, "/portal/members?done=cancel", http.StatusSeeOther)
}

// ---- usage and audit

func (h *Handler) usagePage(w http.ResponseWriter, r *http.Request, v *view) {
	k, err := h.svc.Key(r.Context(), r.PathValue("id"))
	if err != nil {
		h.fail(w, r, v, err)
		return
	}
	rng := usageRanges[1]
	for _, u := range usageRanges {
		if u.Name == r.URL.Query().Get("range") {
			rng = u
		}
	}
	now := h.now().UTC()
	rep, err := h.svc.KeyUsage(r.Context(), k.ID, service.UsageQuery{From: new(now.Add(-rng.Span)), To: &now, Granularity: rng.Granularity})
	if err != nil {
		h.fail(w, r, v, err)
		return
	}
	v.Title, v.Nav, v.Data = "Usage of "+k.Name, "keys", newUsageView(k, rng.Name, rep)
	h.render(w, r, http.StatusOK, "usage", v)
}

type auditData struct {
	Events     []*keyplane.AuditEvent
	NextCursor string
	Type       string
	KeyID      string
	Types      []string
	me         string
	emails     map[string]string
}

// Who names an event's actor for people: an email where the page knows it.
func (d auditData) Who(a keyplane.AuditActor) string {
	switch {
	case a.Kind == "member" && a.ID == d.me:
		return "you"
	case a.Kind == "member" && d.emails[a.ID] != "":
		return d.emails[a.ID]
	case a.Kind == "member" && a.ID != "":
		return "member " + a.ID
	case a.Kind == "member":
		return "someone signing in"
	case a.Kind == "token" || a.Kind == "system":
		return "the operator"
	}
	return a.Kind
}

// auditTypes are the events an account's log holds, for the filter.
var auditTypes = []string{
	keyplane.AuditKeyCreated, keyplane.AuditKeyUpdated, keyplane.AuditKeyRolled, keyplane.AuditKeyRevoked, keyplane.AuditKeyLeaked,
	keyplane.AuditKeyDisabled, keyplane.AuditKeyEnabled, keyplane.AuditQuotaReset,
	keyplane.AuditMemberSignedIn, keyplane.AuditMemberSignedOut, keyplane.AuditMemberSignInFailed,
	keyplane.AuditMemberCreated, keyplane.AuditMemberInvited, keyplane.AuditMemberJoined, keyplane.AuditMemberUpdated, keyplane.AuditInviteCancelled,
	keyplane.AuditAccountCreated, keyplane.AuditAccountUpdated, keyplane.AuditAccountSuspended, keyplane.AuditAccountReactivated,
}

func (h *Handler) auditPage(w http.ResponseWriter, r *http.Request, v *view) {
	q := r.URL.Query()
	d := auditData{Type: q.Get("type"), KeyID: q.Get("key_id"), Types: auditTypes, me: v.Session.Member.ID, emails: map[string]string{}}
	events, next, err := h.svc.ListAccountAudit(r.Context(), v.Account.ID, service.AuditFilter{Type: d.Type, KeyID: d.KeyID,
		Page: keyplane.Page{Limit: 50, Cursor: q.Get("cursor")}})
	if err != nil {
		h.fail(w, r, v, err)
		return
	}
	d.Events, d.NextCursor = events, next
	if v.IsOwner() {
		if members, _, err := h.svc.ListMembers(r.Context(), v.Account.ID, keyplane.Page{Limit: 100}); err == nil {
			for _, m := range members {
				d.emails[m.ID] = m.Email
			}
		}
	}
	v.Title, v.Nav, v.Data = "Audit log", "audit", d
	h.render(w, r, http.StatusOK, "audit", v)
}

// ---- credentials

func (h *Handler) deleteMember(w http.ResponseWriter, r *http.Request, v *view) {
	if err := h.svc.DeleteMember(r.Context(), r.PathValue("id")); err != nil {
		h.fail(w, r, v, err)
		return
	}
	http.Redirect(w, r, "/portal/members?done=deleted", http.StatusSeeOther)
}

func (h *Handler) issueReset(w http.ResponseWriter, r *http.Request, v *view) {
	reset, err := h.svc.IssuePasswordReset(r.Context(), r.PathValue("id"))
	if err != nil {
		h.fail(w, r, v, err)
		return
	}
	d, err := h.membersData(r, v)
	if err != nil {
		h.fail(w, r, v, err)
		return
	}
	d.ResetLink, d.ResetTo = service.ResetURL(h.inviteBase(r), reset.Token), reset.Email
	v.Title, v.Nav, v.Data = "Members", "members", d
	h.render(w, r, http.StatusCreated, "members", v)
}

func (h *Handler) passwordPage(w http.ResponseWriter, r *http.Request, v *view) {
	v.Title = "Change your password"
	v.Notice = notices[r.URL.Query().Get("done")]
	h.render(w, r, http.StatusOK, "password", v)
}

func (h *Handler) changePassword(w http.ResponseWriter, r *http.Request, v *view) {
	v.Title = "Change your password"
	pw := r.PostFormValue("password")
	if pw != r.PostFormValue("password_again") {
		v.Error, v.Fields = "The two new passwords differ.", map[string]string{"password_again": "must be the same as the password"}
		h.render(w, r, http.StatusBadRequest, "password", v)
		return
	}
	_, err := h.svc.ChangePassword(r.Context(), v.Session.Member.ID, r.PostFormValue("current_password"), pw)
	switch keyplane.ErrorCode(err) {
	case "":
		http.Redirect(w, r, "/portal/account/password?done=password", http.StatusSeeOther)
	case keyplane.EINVALID, keyplane.ETOOMANY:
		v.Error, v.Fields = "The password was not changed: "+keyplane.ErrorMessage(err), fieldErrors(err)
		if f := v.Fields; f != nil && f["new_password"] != "" {
			f["password"] = f["new_password"]
		}
		h.render(w, r, problem.StatusOf(err), "password", v)
	default:
		h.fail(w, r, v, err)
	}
}

type resetData struct {
	Token string
	Email string
	Reset *keyplane.PasswordReset
}

func (h *Handler) resetPage(w http.ResponseWriter, r *http.Request) {
	token := r.URL.Query().Get("token")
	reset, email, err := h.svc.PasswordResetByToken(r.Context(), token)
	if err != nil {
		h.fail(w, r, nil, err)
		return
	}
	h.render(w, r, http.StatusOK, "reset", &view{Title: "Set a new password", Data: resetData{Token: token, Email: email, Reset: reset}})
}

func (h *Handler) resetPassword(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	token, pw := r.PostFormValue("token"), r.PostFormValue("password")
	reset, email, err := h.svc.PasswordResetByToken(r.Context(), token)
	if err != nil {
		h.fail(w, r, nil, err)
		return
	}
	again := func(status int, msg string, fields map[string]string) {
		h.render(w, r, status, "reset", &view{Title: "Set a new password", Error: msg, Fields: fields, Data: resetData{Token: token, Email: email, Reset: reset}})
	}
	if pw != r.PostFormValue("password_again") {
		again(http.StatusBadRequest, "The two passwords differ.", map[string]string{"password_again": "must be the same as the password"})
		return
	}
	if _, err := h.svc.ResetPassword(r.Context(), token, pw); keyplane.ErrorCode(err) == keyplane.EINVALID {
		again(http.StatusBadRequest, keyplane.ErrorMessage(err), fieldErrors(err))
		return
	} else if err != nil {
		h.fail(w, r, nil, err)
		return
	}
	http.Redirect(w, r, "/portal/signin?done=reset", http.StatusSeeOther)
}
