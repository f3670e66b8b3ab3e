package httpapi

import (
	"net/http"
	"regexp"
	"strings"

	"github.com/danielgtaylor/huma/v2"
	"github.com/keyplane/keyplane/problem"
)

// humaError replaces huma's error constructor so the problems huma raises
// (malformed JSON, unknown fields, wrong types, bodies over 1 MiB) have our
// shape. Huma reports validation failures as 422; the API contract says 400.
func humaError(status int, msg string, errs ...error) huma.StatusError {
	if status == http.StatusUnprocessableEntity {
		status = http.StatusBadRequest
	}
	// Huma's one 500 of its own: the body could not be read, because the
	// client hung up or the connection broke before the announced length.
	if status == http.StatusInternalServerError && msg == "cannot read request body" {
		return problem.ClientClosed("the client closed the connection before sending the whole body")
	}
	var fields []problem.FieldProblem
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
			fields = append(fields, problem.FieldProblem{Field: field, Message: message})
		} else {
			fields = append(fields, problem.FieldProblem{Message: err.Error()})
		}
	}
	if len(fields) > 0 && fields[0].Field != "" {
		msg = fields[0].Field + ": " + fields[0].Message
	}
	return problem.New(status, problem.CodeOf(status), msg, fields)
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
