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
	// New says the CPF is new to the product's records (the resolver found
	// it only through Diretrix), so a stored answer is unlikely: Fetch skips
	// its look-up without the claim and claims at once. The claim looks
	// again under the lock, so what it pays for and reuses is the same
	// either way; only the round trips differ (one less when nothing is
	// stored, one more, the release, when something is).
	New bool
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
	if !reuse.New {
		if raw, ok, err := p.stored(ctx, p.Pool, cpf, reuse); err != nil || ok {
			return raw, false, err // fast path: no lock when a usable answer exists
		}
	}
	if p.paying != nil {
		select {
		case p.paying <- struct{}{}:
			defer func() { <-p.paying }()
		case <-ctx.Done():
			// Waiting for a slot is pacing, not a failure: the router
			// waits and tries again on the same delivery.
			return nil, false, failure.RateLimited("payloads.slot", 0, ctx.Err())
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
// checks again for a stored answer, checks the cap and records the attempt
// (committed on its own before the call, so a charge is on record even if
// this process dies mid-call), pays, and stores the payload with the
// attempt's end in one implicit transaction. Round trips: the lock with the
// check, the cap and the attempt (one batch); then the payload, the
// attempt's end and the unlock (one batch).
func (p *Payloads) claimAndPay(ctx context.Context, cpf string, reuse Reuse, pay func(context.Context) (json.RawMessage, error)) (json.RawMessage, bool, error) {
	conn, err := p.Pool.Acquire(ctx)
	if err != nil {
		return nil, false, err
	}
	defer conn.Release()
	lockKey := "workapi:" + cpf
	locked := false
	defer func() {
		if !locked {
			return
		}
		// A fresh context: the unlock must happen even when ctx is done.
		if _, uerr := conn.Exec(context.WithoutCancel(ctx), unlockSQL, lockKey); uerr != nil {
			conn.Conn().Close(context.Background()) //nolint:errcheck // closing drops the session lock
		}
	}()
	b := &pgx.Batch{}
	b.Queue(lockSQL, lockKey)
	// After the lock, in its own snapshot: what is stored now, and the
	// attempt recorded only when nothing usable is stored and the cap allows.
	b.Queue(claimSQL, p.claimArgs(cpf, reuse)...)
	res := conn.SendBatch(ctx, b)
	var (
		row     storedRow
		charged int
		id      *int64
	)
	_, err = res.Exec()
	locked = err == nil
	if err == nil {
		err = res.QueryRow().Scan(&row.raw, &row.payloadOK, &row.nobody, &row.nobodyOK, &row.payloadNew, &charged, &id)
	}
	if cerr := res.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, false, err
	}
	if reuse.any() {
		if stored, ok, err := row.usable(); err != nil || ok {
			return stored, false, err
		}
	}
	if id == nil {
		return nil, false, failure.Permanent("payloads.cap", fmt.Errorf("%w: %d charged attempts for this CPF in 24 h", ErrPaidAttemptsExhausted, charged))
	}
	fresh, err := pay(ctx)
	if err != nil {
		p.finish(ctx, conn, *id, p.Charge(err), err)
		return nil, false, err
	}
	// Any JSON the API returns is storable; a payload the database still
	// refuses is a storage failure, never "no data".
	fresh = store.JSONB(fresh)
	// The payload and the attempt's end commit first, then the claim is
	// released (in the same round trip): the next holder must find the
	// payload, and a session lock released inside a transaction would be
	// free before the transaction's writes are visible.
	b = &pgx.Batch{}
	b.BeginTx(pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	b.Queue(storePayloadSQL, cpf, []byte(fresh), *id, AttemptAnswered)
	b.Queue("COMMIT")
	b.Queue(unlockSQL, lockKey)
	br := conn.SendBatch(ctx, b)
	tx := br.Tx()
	err = br.Close()
	_ = tx.Rollback(context.WithoutCancel(ctx)) // after a failure: leave the aborted transaction
	if err != nil {
		// Charged but not stored: the attempt says so; the error decides
		// (transient: redelivered; permanent: dead-lettered), never "no data".
		serr := store.Classify("payloads.store", err)
		p.finish(ctx, conn, *id, AttemptAnswered, fmt.Errorf("payload not stored: %w", serr))
		return nil, false, serr
	}
	locked = false // the batch released the claim after storing
	return fresh, true, nil
}

// finish records an attempt's end, whatever happened to ctx.
func (p *Payloads) finish(ctx context.Context, db store.DB, id int64, status string, cause error) {
	msg := ""
	if cause != nil {
		msg = cause.Error()
	}
	_, _ = db.Exec(context.WithoutCancel(ctx), finishSQL, id, status, msg)
}

// The claim's statements (claimAndPay; WarmPayloads runs the same).
const (
	lockSQL   = `SELECT pg_advisory_lock(hashtextextended($1, 0))`
	unlockSQL = `SELECT pg_advisory_unlock(hashtextextended($1, 0))`
	claimSQL  = `WITH s AS (` + storedSQL + `),
		n AS (SELECT count(*) AS n FROM pipeline.workapi_attempts
			WHERE cpf = $1 AND status <> $6 AND started_at > now() - interval '1 day'),
		ins AS (INSERT INTO pipeline.workapi_attempts (cpf)
			SELECT $1 FROM s, n
			WHERE NOT ($7::boolean AND ((s.payload IS NOT NULL AND s.payload_ok) OR (s.nobody IS NOT NULL AND s.nobody_ok)))
			  AND ($5::int <= 0 OR n.n < $5::int)
			RETURNING attempt_id)
		SELECT s.payload, s.payload_ok, s.nobody, s.nobody_ok, s.payload_new, n.n, (SELECT attempt_id FROM ins) FROM s, n`
	storePayloadSQL = `WITH answered AS (
			UPDATE pipeline.workapi_attempts SET status = $4, finished_at = now() WHERE attempt_id = $3
		)
		INSERT INTO pipeline.workapi_payloads (cpf, payload, fetched_at) VALUES ($1, $2, now())
		ON CONFLICT (cpf) DO UPDATE SET payload = EXCLUDED.payload, fetched_at = now(),
		fetch_count = pipeline.workapi_payloads.fetch_count + 1`
	finishSQL = `UPDATE pipeline.workapi_attempts SET status = $2, error = NULLIF($3, ''), finished_at = now() WHERE attempt_id = $1`
)

func (p *Payloads) claimArgs(cpf string, reuse Reuse) []any {
	return []any{cpf, reuse.Always, reuse.MaxAge.Microseconds(), nullTime(reuse.FetchedAfter), p.MaxAttemptsPerDay, AttemptNotCharged, reuse.any()}
}

// storedSQL reads what is stored for $1 under the reuse rule ($2 always,
// $3 max age in microseconds, $4 fetched after). The age is measured by the
// database clock that wrote fetched_at, so a skewed application clock cannot
// make a payload look fresh or stale.
const storedSQL = `
		WITH q AS (SELECT $2::boolean AS always, now() - $3::bigint * interval '1 microsecond' AS fresh_after, $4::timestamptz AS after)
		SELECT p.payload AS payload,
		       coalesce((q.always OR $3 <= 0 OR p.fetched_at > q.fresh_after) AND (q.after IS NULL OR p.fetched_at > q.after), false) AS payload_ok,
		       a.status AS nobody,
		       coalesce((q.always OR $3 <= 0 OR a.finished_at > q.fresh_after) AND (q.after IS NULL OR a.finished_at > q.after), false) AS nobody_ok,
		       a.finished_at IS NULL OR p.fetched_at IS NULL OR p.fetched_at >= a.finished_at AS payload_new
		FROM q
		LEFT JOIN pipeline.workapi_payloads p ON p.cpf = $1
		LEFT JOIN LATERAL (SELECT status, finished_at FROM pipeline.workapi_attempts
			WHERE cpf = $1 AND status IN ('not_found', 'refused') ORDER BY attempt_id DESC LIMIT 1) a ON true`

// storedRow is one answer of storedSQL.
type storedRow struct {
	raw        []byte
	payloadOK  bool
	nobody     *string
	nobodyOK   bool
	payloadNew bool
}

// usable returns a usable stored answer: the payload, or a stored "nobody"
// answer as NotFound (Permanent for a refusal).
func (r storedRow) usable() (json.RawMessage, bool, error) {
	switch {
	case r.raw != nil && r.payloadOK && r.payloadNew:
		return r.raw, true, nil
	case r.nobody != nil && r.nobodyOK:
		kind := "the Work API has no person for this CPF"
		if *r.nobody == AttemptRefused {
			return nil, false, failure.Permanent("payloads.stored", errors.New("the Work API refused this CPF earlier"))
		}
		return nil, false, failure.NotFound("payloads.stored: " + kind)
	case r.raw != nil && r.payloadOK:
		return r.raw, true, nil
	}
	return nil, false, nil
}

// stored returns a usable stored answer.
func (p *Payloads) stored(ctx context.Context, db store.DB, cpf string, reuse Reuse) (json.RawMessage, bool, error) {
	if !reuse.any() {
		return nil, false, nil
	}
	var r storedRow
	err := db.QueryRow(ctx, storedSQL, cpf, reuse.Always, reuse.MaxAge.Microseconds(), nullTime(reuse.FetchedAfter)).
		Scan(&r.raw, &r.payloadOK, &r.nobody, &r.nobodyOK, &r.payloadNew)
	if err != nil {
		return nil, false, store.Classify("payloads.stored", err)
	}
	return r.usable()
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
