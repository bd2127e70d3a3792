// Package pipeline holds the SQL of the product's own bookkeeping
// (pipeline.*) that the enrichment use case needs: Work API payloads and the
// ledger of paid attempts, and identities learnt from Diretrix.
package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/leadflow/leadflow/pkg/backbone/failure"
	"github.com/leadflow/leadflow/pkg/store"
)

// Reuse says which stored answer may stand in for a paid call.
type Reuse struct {
	Always bool          // any stored answer, however old (replays)
	MaxAge time.Duration // otherwise: younger than this (0 = always pay)
	// FetchedAfter, when set, accepts only an answer fetched after it: a
	// refresh counts as done once the API answered after the refresh began,
	// so a redelivered refresh does not pay again.
	FetchedAfter time.Time
}

func (r Reuse) any() bool { return r.Always || r.MaxAge > 0 || !r.FetchedAfter.IsZero() }

// Attempt statuses in pipeline.workapi_attempts.
const (
	AttemptStarted    = "started"     // in flight, or its process died: charged
	AttemptAnswered   = "answered"    // charged; the payload is stored
	AttemptNotFound   = "not_found"   // charged; the API knows nobody by the CPF
	AttemptRefused    = "refused"     // charged; a permanent answer (bad request)
	AttemptLost       = "lost"        // charged; the reply was lost
	AttemptNotCharged = "not_charged" // never reached the API, or refused before charging
)

// ErrPaidAttemptsExhausted is returned (permanent) once a CPF was charged
// the configured number of times within a day.
var ErrPaidAttemptsExhausted = errors.New("paid attempts exhausted")

// ChargeOf tells which attempt status an error of the paid call stands for.
type ChargeOf func(err error) string

// Payloads keeps raw Work API payloads (pipeline.workapi_payloads) and the
// ledger of paid attempts (pipeline.workapi_attempts), and serialises paying
// per CPF across processes.
type Payloads struct {
	Pool *pgxpool.Pool
	// MaxAttemptsPerDay caps the charged attempts per CPF in 24 hours
	// (0 = no cap).
	MaxAttemptsPerDay int
	// Charge maps the paid call's error to an attempt status.
	Charge ChargeOf
	// paying bounds how many claims (each holding a connection for the
	// length of a paid call) exist at once, so callers waiting for the Work
	// API's pace cannot starve the pool; nil = unbounded.
	paying chan struct{}
}

// NewPayloads bounds concurrent paid calls to slots (0 = unbounded).
func NewPayloads(pool *pgxpool.Pool, slots, maxAttemptsPerDay int, charge ChargeOf) *Payloads {
	p := &Payloads{Pool: pool, MaxAttemptsPerDay: maxAttemptsPerDay, Charge: charge}
	if slots > 0 {
		p.paying = make(chan struct{}, slots)
	}
	return p
}

// Fetch returns the CPF's payload: a stored one that reuse accepts, or one
// that pay fetches. pay runs only while holding the CPF's claim (a
// transaction-scoped advisory lock, so replicas serialise per CPF and the
// second one finds what the first stored), after its attempt is recorded.
// A stored "nobody" answer that reuse accepts is returned as NotFound
// without paying.
func (p *Payloads) Fetch(ctx context.Context, cpf string, reuse Reuse, pay func(context.Context) (json.RawMessage, error)) (json.RawMessage, bool, error) {
	if raw, ok, err := p.stored(ctx, p.Pool, cpf, reuse); err != nil || ok {
		return raw, false, err // fast path: no lock when a usable answer exists
	}
	if p.paying != nil {
		select {
		case p.paying <- struct{}{}:
			defer func() { <-p.paying }()
		case <-ctx.Done():
			return nil, false, failure.Transient("payloads.claim", ctx.Err())
		}
	}
	raw, paid, err := p.claimAndPay(ctx, cpf, reuse, pay)
	if err != nil {
		var classified *failure.Error
		if errors.As(err, &classified) {
			return nil, false, err
		}
		return nil, false, store.Classify("payloads", err)
	}
	return raw, paid, nil
}

// claimAndPay holds the CPF's claim, a session advisory lock on one
// connection (it dies with the connection if the process crashes), while it
// checks again for a stored answer, checks the cap, records the attempt
// (committed on its own before the call, so a charge is on record even if
// this process dies mid-call), pays, and stores the payload with the
// attempt's end in one implicit transaction.
func (p *Payloads) claimAndPay(ctx context.Context, cpf string, reuse Reuse, pay func(context.Context) (json.RawMessage, error)) (json.RawMessage, bool, error) {
	conn, err := p.Pool.Acquire(ctx)
	if err != nil {
		return nil, false, err
	}
	defer conn.Release()
	lockKey := "workapi:" + cpf
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock(hashtextextended($1, 0))`, lockKey); err != nil {
		return nil, false, err
	}
	defer func() {
		// A fresh context: the unlock must happen even when ctx is done.
		if _, uerr := conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(hashtextextended($1, 0))`, lockKey); uerr != nil {
			conn.Conn().Close(context.Background()) //nolint:errcheck // closing drops the session lock
		}
	}()
	if stored, ok, err := p.stored(ctx, conn, cpf, reuse); err != nil || ok {
		return stored, false, err
	}
	if err := p.underCap(ctx, conn, cpf); err != nil {
		return nil, false, err
	}
	var id int64
	if err := conn.QueryRow(ctx, `INSERT INTO pipeline.workapi_attempts (cpf) VALUES ($1) RETURNING attempt_id`, cpf).Scan(&id); err != nil {
		return nil, false, err
	}
	fresh, err := pay(ctx)
	if err != nil {
		p.finish(ctx, conn, id, p.Charge(err), err)
		return nil, false, err
	}
	// Any JSON the API returns is storable; a payload the database still
	// refuses is a storage failure, never "no data".
	fresh = store.JSONB(fresh)
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO pipeline.workapi_payloads (cpf, payload, fetched_at) VALUES ($1, $2, now())
		ON CONFLICT (cpf) DO UPDATE SET payload = EXCLUDED.payload, fetched_at = now(),
		fetch_count = pipeline.workapi_payloads.fetch_count + 1`, cpf, []byte(fresh))
	b.Queue(`UPDATE pipeline.workapi_attempts SET status = $2, finished_at = now() WHERE attempt_id = $1`, id, AttemptAnswered)
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		// Charged but not stored: the attempt says so; the error decides
		// (transient: redelivered; permanent: dead-lettered), never "no data".
		serr := store.Classify("payloads.store", err)
		p.finish(ctx, conn, id, AttemptAnswered, fmt.Errorf("payload not stored: %w", serr))
		return nil, false, serr
	}
	return fresh, true, nil
}

// finish records an attempt's end, whatever happened to ctx.
func (p *Payloads) finish(ctx context.Context, db store.DB, id int64, status string, cause error) {
	msg := ""
	if cause != nil {
		msg = cause.Error()
	}
	_, _ = db.Exec(context.WithoutCancel(ctx), `UPDATE pipeline.workapi_attempts SET status = $2, error = NULLIF($3, ''), finished_at = now() WHERE attempt_id = $1`, id, status, msg)
}

func (p *Payloads) underCap(ctx context.Context, db store.DB, cpf string) error {
	if p.MaxAttemptsPerDay <= 0 {
		return nil
	}
	var n int
	if err := db.QueryRow(ctx, `SELECT count(*) FROM pipeline.workapi_attempts
		WHERE cpf = $1 AND status <> $2 AND started_at > now() - interval '1 day'`, cpf, AttemptNotCharged).Scan(&n); err != nil {
		return err
	}
	if n >= p.MaxAttemptsPerDay {
		return failure.Permanent("payloads.cap", fmt.Errorf("%w: %d charged attempts for this CPF in 24 h", ErrPaidAttemptsExhausted, n))
	}
	return nil
}

// stored returns a usable stored answer. The age is measured by the
// database clock that wrote fetched_at, so a skewed application clock cannot
// make a payload look fresh or stale.
func (p *Payloads) stored(ctx context.Context, db store.DB, cpf string, reuse Reuse) (json.RawMessage, bool, error) {
	if !reuse.any() {
		return nil, false, nil
	}
	var (
		raw        []byte
		payloadOK  bool
		nobody     *string
		nobodyOK   bool
		payloadNew bool
	)
	err := db.QueryRow(ctx, `
		WITH q AS (SELECT $2::boolean AS always, now() - $3::bigint * interval '1 microsecond' AS fresh_after, $4::timestamptz AS after)
		SELECT p.payload,
		       coalesce((q.always OR $3 <= 0 OR p.fetched_at > q.fresh_after) AND (q.after IS NULL OR p.fetched_at > q.after), false),
		       a.status,
		       coalesce((q.always OR $3 <= 0 OR a.finished_at > q.fresh_after) AND (q.after IS NULL OR a.finished_at > q.after), false),
		       a.finished_at IS NULL OR p.fetched_at IS NULL OR p.fetched_at >= a.finished_at
		FROM q
		LEFT JOIN pipeline.workapi_payloads p ON p.cpf = $1
		LEFT JOIN LATERAL (SELECT status, finished_at FROM pipeline.workapi_attempts
			WHERE cpf = $1 AND status IN ('not_found', 'refused') ORDER BY attempt_id DESC LIMIT 1) a ON true`,
		cpf, reuse.Always, reuse.MaxAge.Microseconds(), nullTime(reuse.FetchedAfter)).Scan(&raw, &payloadOK, &nobody, &nobodyOK, &payloadNew)
	if err != nil {
		return nil, false, store.Classify("payloads.stored", err)
	}
	switch {
	case raw != nil && payloadOK && payloadNew:
		return raw, true, nil
	case nobody != nil && nobodyOK:
		kind := "the Work API has no person for this CPF"
		if *nobody == AttemptRefused {
			return nil, false, failure.Permanent("payloads.stored", errors.New("the Work API refused this CPF earlier"))
		}
		return nil, false, failure.NotFound("payloads.stored: " + kind)
	case raw != nil && payloadOK:
		return raw, true, nil
	}
	return nil, false, nil
}

func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

// Attempts counts a CPF's charged attempts (every status but not_charged).
func (p *Payloads) Attempts(ctx context.Context, cpf string) (int, error) {
	var n int
	err := p.Pool.QueryRow(ctx, `SELECT count(*) FROM pipeline.workapi_attempts WHERE cpf = $1 AND status <> $2`, cpf, AttemptNotCharged).Scan(&n)
	return n, store.Classify("payloads.attempts", err)
}
