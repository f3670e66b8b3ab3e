package keyplane

import (
	"errors"
	"fmt"
)

// Error codes. Each transport maps them to its own status codes in one place.
const (
	EINVALID      = "invalid"      // the input is malformed or out of range
	ENOTFOUND     = "not_found"    // no such thing, or not the caller's to see
	ECONFLICT     = "conflict"     // the thing is in a state that forbids the change
	ELIMIT        = "limit"        // a cap (such as active keys per account) is reached
	EUNAUTHORIZED = "unauthorized" // no or bad credentials
	EFORBIDDEN    = "forbidden"    // credentials that may not do this
	ETOOMANY      = "too_many"     // too many attempts (sign-ins); wait and retry
	EUNAVAILABLE  = "unavailable"  // a dependency (the database) cannot be reached
	EINTERNAL     = "internal"     // anything else; never shown in detail
)

// Error is the one error type the application returns to its callers.
type Error struct {
	Code    string
	Message string
	// Fields names each invalid input, for validation errors.
	Fields []FieldError
	// Err is the underlying cause, for logs only; callers never see it.
	Err error
}

// FieldError says what is wrong with one input field.
type FieldError struct {
	Field   string // JSON path, e.g. "scopes[2]"
	Message string
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("keyplane error: code=%s message=%s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("keyplane error: code=%s message=%s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with the given code and formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Invalid returns an EINVALID error about one field.
func Invalid(field, format string, args ...any) *Error {
	msg := fmt.Sprintf(format, args...)
	return &Error{Code: EINVALID, Message: field + ": " + msg, Fields: []FieldError{{Field: field, Message: msg}}}
}

// ErrorCode returns the code of an application error, EINTERNAL for others and
// "" for nil.
func ErrorCode(err error) string {
	// The nil check and the type assertion come before errors.As, whose target
	// escapes: the verify path calls this on every request, unknown keys included.
	if err == nil {
		return ""
	} else if e, ok := err.(*Error); ok {
		return e.Code
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the message of an application error; other errors are
// hidden behind a generic text so internals never leak to callers.
func ErrorMessage(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}

// Validation collects field errors so a caller learns everything wrong at once.
type Validation struct{ fields []FieldError }

// Add records that field is invalid.
func (v *Validation) Add(field, format string, args ...any) {
	v.fields = append(v.fields, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

// Err returns nil when nothing was added, else an EINVALID error naming every field.
func (v *Validation) Err() error {
	if len(v.fields) == 0 {
		return nil
	}
	msg := v.fields[0].Field + ": " + v.fields[0].Message
	if n := len(v.fields) - 1; n > 0 {
		msg += fmt.Sprintf(" (and %d more)", n)
	}
	return &Error{Code: EINVALID, Message: msg, Fields: v.fields}
}
