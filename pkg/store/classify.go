package store

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/leadflow/leadflow/pkg/backbone/failure"
)

// DB is what a statement needs: a pool, a connection or a transaction.
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Classify is the one Postgres error classifier. A statement that the
// database refuses for what it says repeats the same way on every retry, so
// data exceptions (SQLSTATE class 22), integrity violations (23) and
// syntax or undefined-object errors (42) are permanent. Everything else
// (connection loss, shutdown, serialization failures, deadlocks, resource
// limits, timeouts) is transient.
func Classify(op string, err error) error {
	if err == nil {
		return nil
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return failure.Transient(op, err)
	}
	// Server messages can quote the offending value (personal data): only
	// the SQLSTATE and object names are kept in the text.
	err = &redactedPgError{err: pgErr}
	if len(pgErr.Code) == 5 {
		switch pgErr.Code[:2] {
		case "22", "23", "42":
			return failure.Permanent(op, err)
		}
	}
	return failure.Transient(op, err)
}

// redactedPgError prints only the SQLSTATE and schema object names; the
// original stays reachable with errors.As.
type redactedPgError struct{ err *pgconn.PgError }

func (e *redactedPgError) Error() string {
	msg := "postgres SQLSTATE " + e.err.Code
	for _, s := range []string{e.err.TableName, e.err.ConstraintName, e.err.ColumnName} {
		if s != "" {
			msg += " " + s
		}
	}
	return msg
}

func (e *redactedPgError) Unwrap() error { return e.err }
