package httpapi

import (
	"context"
	"errors"
	"net/http"
	"regexp"
	"strings"

	"github.com/danielgtaylor/huma/v2"
	"github.com/keyplane/keyplane"
)

// Problem is an RFC 9457 problem details body, with keyplane's error code and,
// for validation errors, what was wrong with each field.
type Problem struct {
	Type   string         `json:"type" doc:"A URI naming the kind of problem"`
	Title  string         `json:"title"`
	Status int            `json:"status"`
	Detail string         `json:"detail,omitempty"`
	Code   string         `json:"code" doc:"Stable machine-readable error code: invalid, not_found, conflict, limit, unauthorized, forbidden, unavailable, internal, request_entity_too_large, …"`
	Errors []FieldProblem `json:"errors,omitempty"`

	header http.Header // extra response headers, such as WWW-Authenticate
}

// FieldProblem says what is wrong with one input.
type FieldProblem struct {
	Field   string `json:"field" doc:"Where, e.g. name, scopes[2], query.limit"`
	Message string `json:"message"`
}

func (p *Problem) Error() string             { return p.Detail }
func (p *Problem) GetStatus() int            { return p.Status }
func (p *Problem) ContentType(string) string { return "application/problem+json" }
func (p *Problem) GetHeaders() http.Header   { return p.header }

// statusOf maps domain error codes to HTTP statuses; it is the only place that does.
var statusOf = map[string]int{
	keyplane.EINVALID:      http.StatusBadRequest,
	keyplane.ENOTFOUND:     http.StatusNotFound,
	keyplane.ECONFLICT:     http.StatusConflict,
	keyplane.ELIMIT:        http.StatusConflict,
	keyplane.EUNAUTHORIZED: http.StatusUnauthorized,
	keyplane.EFORBIDDEN:    http.StatusForbidden,
	keyplane.ETOOMANY:      http.StatusTooManyRequests,
	keyplane.EUNAVAILABLE:  http.StatusServiceUnavailable,
	keyplane.EINTERNAL:     http.StatusInternalServerError,
}

// StatusOf is the HTTP status of an error, for other handlers on the same
// server (the portal's pages) that answer in HTML rather than problems.
func StatusOf(err error) int {
	return statusOf[keyplane.ErrorCode(err)]
}

// codeOf is the reverse, for problems huma raises itself (bad JSON, too
// large): the mapped code, else the status text in snake case.
func codeOf(status int) string {
	switch status {
	case http.StatusBadRequest, http.StatusUnprocessableEntity:
		return keyplane.EINVALID
	case http.StatusConflict:
		return keyplane.ECONFLICT
	}
	for code, s := range statusOf {
		if s == status {
			return code
		}
	}
	if text := http.StatusText(status); text != "" {
		return strings.ReplaceAll(strings.ToLower(text), " ", "_")
	}
	return keyplane.EINTERNAL
}

func newProblem(status int, code, detail string, fields []FieldProblem) *Problem {
	p := &Problem{Type: "urn:keyplane:problem:" + code, Title: http.StatusText(status), Status: status, Detail: detail, Code: code, Errors: fields}
	if status == http.StatusUnauthorized {
		p.header = http.Header{"WWW-Authenticate": {`Bearer realm="keyplane"`}}
	}
	return p
}

// StatusClientClosedRequest is nginx's 499: the client hung up before the
// answer. No one reads it; the request log does, where a hang-up is neither
// a server error nor a success.
const StatusClientClosedRequest = 499

// ClientGone reports whether a failed request's client hung up: the server
// cancels a request's context when its connection closes, and whatever the
// handler was waiting on then fails with it.
func ClientGone(ctx context.Context) bool {
	return errors.Is(ctx.Err(), context.Canceled)
}

func clientClosed(detail string) *Problem {
	return newProblem(StatusClientClosedRequest, "client_closed_request", detail, nil)
}

// problemFromError turns an application error into a problem. Errors that
// are not *keyplane.Error show only "internal error".
func problemFromError(err error) *Problem {
	code := keyplane.ErrorCode(err)
	var fields []FieldProblem
	if e, ok := err.(*keyplane.Error); ok {
		for _, f := range e.Fields {
			fields = append(fields, FieldProblem{Field: f.Field, Message: f.Message})
		}
	}
	return newProblem(statusOf[code], code, keyplane.ErrorMessage(err), fields)
}

// hugoError replaces huma's error constructor so the problems huma raises
// (malformed JSON, unknown fields, wrong types, bodies over 1 MiB) have our
// shape. Huma reports validation failures as 422; the API contract says 400.
func humaError(status int, msg string, errs ...error) huma.StatusError {
	if status == http.StatusUnprocessableEntity {
		status = http.StatusBadRequest
	}
	// Huma's one 500 of its own: the body could not be read, because the
	// client hung up or the connection broke before the announced length.
	if status == http.StatusInternalServerError && msg == "cannot read request body" {
		return clientClosed("the client closed the connection before sending the whole body")
	}
	var fields []FieldProblem
	for _, err := range errs {
		if err == nil {
			continue
		}
		if d, ok := err.(huma.ErrorDetailer); ok {
			detail := d.ErrorDetail()
			field, message := fieldName(detail.Location), detail.Message
			// A null where a PATCH field refuses one (see Optional) is reported by
			// encoding/json in Go's terms; say it in the API's.
			if m := nullField.FindStringSubmatch(message); m != nil {
				field, message = m[1], "must not be null"
			}
			fields = append(fields, FieldProblem{Field: field, Message: message})
		} else {
			fields = append(fields, FieldProblem{Message: err.Error()})
		}
	}
	if len(fields) > 0 && fields[0].Field != "" {
		msg = fields[0].Field + ": " + fields[0].Message
	}
	return newProblem(status, codeOf(status), msg, fields)
}

// fieldName turns huma's "body.scopes[0]" into "scopes[0]"; query and path
// locations keep their prefix so a caller knows where to look.
func fieldName(location string) string {
	if rest, ok := strings.CutPrefix(location, "body."); ok {
		return rest
	}
	if location == "body" {
		return "(body)"
	}
	return location
}

var nullField = regexp.MustCompile(`cannot unmarshal null into Go struct field [\w.]*\.(\w+) of type`)

func init() {
	huma.NewError = humaError
}

// statusOfRefusal maps a refused verification to the status forward-auth
// and the gateway answer the operator's client with; it is the only place
// that does. An unusable key is a 401, a usable one that may not do this a
// 403, and a limit a 429.
var statusOfRefusal = map[keyplane.VerifyCode]int{
	keyplane.VerifyNotFound:          http.StatusUnauthorized,
	keyplane.VerifyRevoked:           http.StatusUnauthorized,
	keyplane.VerifyExpired:           http.StatusUnauthorized,
	keyplane.VerifyDisabled:          http.StatusUnauthorized,
	keyplane.VerifyForbidden:         http.StatusForbidden,
	keyplane.VerifyInsufficientScope: http.StatusForbidden,
	keyplane.VerifyRateLimited:       http.StatusTooManyRequests,
	keyplane.VerifyQuotaExceeded:     http.StatusTooManyRequests,
}

// refusal is the problem for a verification that did not pass: its code is
// the verify code in lower case, and limits carry the rate-limit headers.
func refusal(res keyplane.VerifyResult, scope string) *Problem {
	var detail string
	switch res.Code {
	case keyplane.VerifyNotFound:
		detail = "the API key is not valid"
	case keyplane.VerifyRevoked:
		detail = "the API key has been revoked"
	case keyplane.VerifyExpired:
		detail = "the API key has expired"
	case keyplane.VerifyDisabled:
		detail = "the API key is disabled"
	case keyplane.VerifyForbidden:
		detail = "the API key may not be used from this address"
	case keyplane.VerifyInsufficientScope:
		detail = "the API key lacks the scope " + scope
	case keyplane.VerifyRateLimited:
		detail = "rate limit exceeded; see Retry-After"
	case keyplane.VerifyQuotaExceeded:
		detail = "quota exceeded; see Retry-After"
	}
	status := statusOfRefusal[res.Code]
	if status == 0 {
		status = http.StatusForbidden
	}
	p := newProblem(status, strings.ToLower(string(res.Code)), detail, nil)
	if p.header == nil {
		p.header = http.Header{}
	}
	RateLimitHeaders(p.header, res)
	return p
}
