package portal

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/problem"
	"github.com/keyplane/keyplane/service"
)

// ---- webhooks

type webhooksData struct {
	Endpoints []*keyplane.WebhookEndpoint
	// The form, refilled after an error.
	URL, Events, Description string
	// A new or rotated secret, shown once.
	Secret   string
	SecretOf *keyplane.WebhookEndpoint
}

type webhookData struct {
	Endpoint   *keyplane.WebhookEndpoint
	Deliveries []*keyplane.WebhookDelivery
	NextCursor string
}

// secretOverlaps are the secret rotation overlaps the form offers.
var secretOverlaps = []struct {
	Seconds int
	Label   string
}{{86400, "1 day (default)"}, {3600, "1 hour"}, {604800, "7 days"}, {0, "none: the old secret stops now"}}

func (d webhookData) Overlaps() any { return secretOverlaps }

func (h *Handler) webhooksPage(w http.ResponseWriter, r *http.Request, v *view) {
	h.renderWebhooks(w, r, v, http.StatusOK, webhooksData{})
}

func (h *Handler) renderWebhooks(w http.ResponseWriter, r *http.Request, v *view, status int, d webhooksData) {
	endpoints, _, err := h.svc.ListWebhooks(r.Context(), v.Account.ID, keyplane.Page{Limit: keyplane.MaxWebhookEndpoints})
	if err != nil {
		h.fail(w, r, v, err)
		return
	}
	d.Endpoints = endpoints
	v.Title, v.Nav, v.Data = "Webhooks", "webhooks", d
	if v.Notice == "" {
		v.Notice = notices[r.URL.Query().Get("done")]
	}
	h.render(w, r, status, "webhooks", v)
}

// eventList splits the form's event types on commas and spaces.
func eventList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\r' || r == '\t' })
}

func (h *Handler) createWebhook(w http.ResponseWriter, r *http.Request, v *view) {
	d := webhooksData{URL: r.PostFormValue("url"), Events: r.PostFormValue("events"), Description: r.PostFormValue("description")}
	created, err := h.svc.CreateWebhook(r.Context(), v.Account.ID, service.WebhookInput{URL: d.URL, Events: eventList(d.Events), Description: d.Description})
	switch keyplane.ErrorCode(err) {
	case "":
		h.renderWebhooks(w, r, v, http.StatusCreated, webhooksData{Secret: created.Secret, SecretOf: created.WebhookEndpoint})
	case keyplane.EINVALID, keyplane.EFORBIDDEN:
		fields := map[string]string{}
		for k, msg := range fieldErrors(err) {
			fields[k] = msg
		}
		v.Error, v.Fields = "The endpoint was not added: "+errorText(err, fields), fields
		h.renderWebhooks(w, r, v, problem.StatusOf(err), d)
	default:
		h.fail(w, r, v, err)
	}
}

func (h *Handler) webhookPage(w http.ResponseWriter, r *http.Request, v *view) {
	e, err := h.svc.Webhook(r.Context(), r.PathValue("id"))
	if err != nil {
		h.fail(w, r, v, err)
		return
	}
	ds, next, err := h.svc.WebhookDeliveries(r.Context(), e.ID, keyplane.Page{Limit: 50, Cursor: r.URL.Query().Get("cursor")})
	if err != nil {
		h.fail(w, r, v, err)
		return
	}
	v.Title, v.Nav, v.Data = "Webhook endpoint", "webhooks", webhookData{Endpoint: e, Deliveries: ds, NextCursor: next}
	v.Notice = notices[r.URL.Query().Get("done")]
	if !e.Enabled && e.DisabledReason != "" && v.Notice == "" {
		v.Notice = disabledNotices[e.DisabledReason]
	}
	h.render(w, r, http.StatusOK, "webhook", v)
}

// disabledNotices explain why keyplane turned an endpoint off.
var disabledNotices = map[string]string{
	"gone":    "keyplane disabled this endpoint: it answered 410 Gone. Enable it again once it receives events.",
	"failing": "keyplane disabled this endpoint: every delivery failed for 5 days. Enable it again once it answers, then recover what failed.",
}

func (h *Handler) testWebhook(w http.ResponseWriter, r *http.Request, v *view) {
	if _, err := h.svc.TestWebhook(r.Context(), r.PathValue("id")); err != nil {
		h.fail(w, r, v, err)
		return
	}
	http.Redirect(w, r, "/portal/webhooks/"+r.PathValue("id")+"?done=tested", http.StatusSeeOther)
}

func (h *Handler) enableWebhook(w http.ResponseWriter, r *http.Request, v *view) {
	enabled := r.PostFormValue("enabled") == "true"
	if _, err := h.svc.UpdateWebhook(r.Context(), r.PathValue("id"), service.WebhookUpdate{Enabled: service.Optional[bool]{Set: true, Value: enabled}}); err != nil {
		h.fail(w, r, v, err)
		return
	}
	http.Redirect(w, r, "/portal/webhooks/"+r.PathValue("id")+"?done=webhook-updated", http.StatusSeeOther)
}

func (h *Handler) rotateWebhook(w http.ResponseWriter, r *http.Request, v *view) {
	seconds, err := strconv.Atoi(r.PostFormValue("overlap"))
	if err != nil {
		seconds = int(service.DefaultSecretOverlap / time.Second)
	}
	rotated, err := h.svc.RotateWebhookSecret(r.Context(), r.PathValue("id"), time.Duration(seconds)*time.Second)
	if err != nil {
		h.fail(w, r, v, err)
		return
	}
	h.renderWebhooks(w, r, v, http.StatusOK, webhooksData{Secret: rotated.Secret, SecretOf: rotated.WebhookEndpoint})
}

func (h *Handler) deleteWebhook(w http.ResponseWriter, r *http.Request, v *view) {
	if err := h.svc.DeleteWebhook(r.Context(), r.PathValue("id")); err != nil {
		h.fail(w, r, v, err)
		return
	}
	http.Redirect(w, r, "/portal/webhooks?done=webhook-deleted", http.StatusSeeOther)
}

func (h *Handler) retryMessage(w http.ResponseWriter, r *http.Request, v *view) {
	if _, err := h.svc.RetryMessage(r.Context(), r.PathValue("id")); err != nil {
		h.fail(w, r, v, err)
		return
	}
	endpoint := r.PostFormValue("endpoint")
	if !strings.HasPrefix(endpoint, "whk_") || len(endpoint) > 64 {
		http.Redirect(w, r, "/portal/webhooks", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/portal/webhooks/"+url.PathEscape(endpoint)+"?done=retried", http.StatusSeeOther)
}
