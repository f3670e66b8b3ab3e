package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/keyplane/keyplane"
)

// uniqueViolation is SQLSTATE 23505, raised for duplicate primary keys too.
const uniqueViolation = "23505"

// translate turns driver errors into application errors where they mean one.
func translate(err error) error {
	var ke *keyplane.Error
	var ce *pgconn.ConnectError
	var pe *pgconn.PgError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ke):
		return err
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return err
	case errors.As(err, &ce): // before PgError: a refused login is a server we cannot use
		return unavailable(err)
	case errors.As(err, &pe) && pe.Code == uniqueViolation:
		return keyplane.Errorf(keyplane.ECONFLICT, "already exists")
	case errors.As(err, &pe) && transientState(pe.Code):
		return unavailable(err)
	case errors.As(err, &pe) && strings.HasPrefix(pe.Code, "22"):
		// Data exceptions (a NUL byte, invalid UTF-8): the input is wrong.
		return keyplane.Errorf(keyplane.EINVALID, "the database refused a value: %s", pe.Message)
	case errors.As(err, &pe):
		return fmt.Errorf("postgres: %w", err)
	case connectionLost(err):
		return unavailable(err)
	}
	return fmt.Errorf("postgres: %w", err)
}

// transientState reports whether a SQLSTATE says the server cannot serve us
// now rather than that the statement is wrong: connection exceptions (08),
// exhausted resources (53), operator intervention such as a terminated
// backend or a shutdown (57), and rolled-back transactions such as deadlocks
// (40), which SQLite reports as SQLITE_BUSY.
func transientState(code string) bool {
	for _, class := range []string{"08", "40", "53", "57"} {
		if strings.HasPrefix(code, class) {
			return true
		}
	}
	return false
}

// connectionLost reports whether err comes from the transport, not the server:
// the socket broke, or the connection was already closed after breaking.
func connectionLost(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, pgconn.ErrConnClosed) || pgconn.SafeToRetry(err)
}

func unavailable(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return &keyplane.Error{Code: keyplane.EUNAVAILABLE, Message: "the database is unavailable", Err: err}
}
