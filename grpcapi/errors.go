package grpcapi

import (
	"context"
	"errors"

	"connectrpc.com/connect"
	"github.com/keyplane/keyplane"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
)

// codeOf maps domain error codes to gRPC codes; it is the only place that does.
// ECONFLICT is FailedPrecondition, not AlreadyExists: it mostly means a key's
// state forbids the change (revoked, expired, already rolled).
var codeOf = map[string]connect.Code{
	keyplane.EINVALID:      connect.CodeInvalidArgument,
	keyplane.ENOTFOUND:     connect.CodeNotFound,
	keyplane.ECONFLICT:     connect.CodeFailedPrecondition,
	keyplane.ELIMIT:        connect.CodeResourceExhausted,
	keyplane.EUNAUTHORIZED: connect.CodeUnauthenticated,
	keyplane.EFORBIDDEN:    connect.CodePermissionDenied,
	keyplane.ETOOMANY:      connect.CodeResourceExhausted,
	keyplane.EUNAVAILABLE:  connect.CodeUnavailable,
	keyplane.EINTERNAL:     connect.CodeInternal,
}

var errMissingToken = errors.New("missing bearer token: send authorization: Bearer <operator token>")

// connectError converts err for the caller, with the fields of a validation
// error as a google.rpc.BadRequest detail; it logs what a caller cannot act on.
// Errors that are already connect errors (raised by connect itself, such as a
// message over the size limit) pass unchanged.
func (s *Server) connectError(ctx context.Context, procedure string, err error) error {
	var ce *connect.Error
	if errors.As(err, &ce) {
		return ce
	}
	code, ok := codeOf[keyplane.ErrorCode(err)]
	if !ok {
		code = connect.CodeInternal // a code added to the domain but not here
	}
	out := connect.NewError(code, errors.New(keyplane.ErrorMessage(err)))
	if code == connect.CodeInternal || code == connect.CodeUnavailable {
		s.log.ErrorContext(ctx, "grpc call failed", "procedure", procedure, "error", err, "request_id", keyplane.RequestInfoFromContext(ctx).RequestID)
	}
	var e *keyplane.Error
	if errors.As(err, &e) && len(e.Fields) > 0 {
		br := &errdetails.BadRequest{}
		for _, f := range e.Fields {
			br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{Field: f.Field, Description: f.Message})
		}
		if d, err := connect.NewErrorDetail(br); err == nil {
			out.AddDetail(d)
		}
	}
	return out
}
