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
	// reads, when set, sends the stored-payload reads of concurrent
	// callers together (store.Group: one round trip for all of them).
	reads *store.Group
}

// maxGroupedReads bounds the stored-payload reads sent in one round trip.
const maxGroupedReads = 64

// NewPayloads bounds concurrent paid calls to slots (0 = unbounded). The
// stored-payload reads of concurrent callers share their round trips.
func NewPayloads(pool *pgxpool.Pool, slots, maxAttemptsPerDay int, charge ChargeOf) *Payloads {
	p := &Payloads{Pool: pool, MaxAttemptsPerDay: maxAttemptsPerDay, Charge: charge, reads: store.NewGroup(pool, maxGroupedReads)}
	if slots > 0 {
		p.paying = make(chan struct{}, slots)
	}
	return p
}

// Fetch returns the CPF's payload: a stored one that reuse accepts, or one
// that pay fetches. pay runs only while holding the CPF's claim (a
// session advisory lock, so replicas serialise per CPF and the second one
// finds what the first stored), after its attempt is recorded.
// A stored "nobody" answer that reuse accepts is returned as NotFound
// without paying.
func (p *Payloads) Fetch(ctx context.Context, cpf string, reuse Reuse, pay func(context.Context) (json.RawMessage, error)) (json.RawMessage, bool, error) {
	raw, c, err := p.fetch(ctx, cpf, reuse, pay, false)
	return raw, c != nil, err
}

// FetchHeld is Fetch, except that a payload it pays for is not stored yet:
// the claim (non-nil only then) stays held, so the caller can store the
// payload inside its own transaction, on the claim's connection, and
// release the claim in the same round trip (Claim). The caller must Close
// the claim, which stores the payload on its own if the caller did not.
func (p *Payloads) FetchHeld(ctx context.Context, cpf string, reuse Reuse, pay func(context.Context) (json.RawMessage, error)) (json.RawMessage, *Claim, error) {
	return p.fetch(ctx, cpf, reuse, pay, true)
}

func (p *Payloads) fetch(ctx context.Context, cpf string, reuse Reuse, pay func(context.Context) (json.RawMessage, error), hold bool) (json.RawMessage, *Claim, error) {
	if !reuse.New {
		if raw, ok, err := p.stored(ctx, p.Pool, cpf, reuse); err != nil || ok {
			return raw, nil, err // fast path: no lock when a usable answer exists
		}
	}
	if p.paying != nil {
		select {
		case p.paying <- struct{}{}:
			defer func() { <-p.paying }()
		case <-ctx.Done():
			// Waiting for a slot is pacing, not a failure: the router
			// waits and tries again on the same delivery.
			return nil, nil, failure.RateLimited("payloads.slot", 0, ctx.Err())
		}
	}
	raw, c, err := p.claimAndPay(ctx, cpf, reuse, pay)
	if err != nil {
		var classified *failure.Error
		if errors.As(err, &classified) {
			return nil, nil, err
		}
		return nil, nil, store.Classify("payloads", err)
	}
	if c != nil && !hold {
		if err := c.Close(ctx); err != nil {
			return nil, nil, err
		}
	}
	return raw, c, nil
}

// claimAndPay holds the CPF's claim, a session advisory lock on one
// connection (it dies with the connection if the process crashes), while it
// checks again for a stored answer, checks the cap and records the attempt
// (committed on its own before the call, so a charge is on record even if
// this process dies mid-call), and pays. Round trips: the lock with the
// check, the cap and the attempt (one batch). A payload it paid for comes
// back under the still-held claim, not stored yet (Claim); nil when a
// stored answer was used.
func (p *Payloads) claimAndPay(ctx context.Context, cpf string, reuse Reuse, pay func(context.Context) (json.RawMessage, error)) (json.RawMessage, *Claim, error) {
	conn, err := p.Pool.Acquire(ctx)
	if err != nil {
		return nil, nil, err
	}
	c := &Claim{p: p, conn: conn, key: "workapi:" + cpf, cpf: cpf}
	handed := false
	defer func() {
		if !handed {
			c.release(ctx)
		}
	}()
	b := &pgx.Batch{}
	b.Queue(lockSQL, c.key)
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
	c.locked = err == nil
	if err == nil {
		err = res.QueryRow().Scan(&row.raw, &row.payloadOK, &row.nobody, &row.nobodyOK, &row.payloadNew, &charged, &id)
	}
	if cerr := res.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, nil, err
	}
	if reuse.any() {
		if stored, ok, err := row.usable(); err != nil || ok {
			return stored, nil, err
		}
	}
	if id == nil {
		return nil, nil, failure.Permanent("payloads.cap", fmt.Errorf("%w: %d charged attempts for this CPF in 24 h", ErrPaidAttemptsExhausted, charged))
	}
	c.id = *id
	fresh, err := pay(ctx)
	if err != nil {
		p.finish(ctx, conn, c.id, p.Charge(err), err)
		return nil, nil, err
	}
	// Any JSON the API returns is storable; a payload the database still
	// refuses is a storage failure, never "no data".
	c.raw = store.JSONB(fresh)
	handed = true
	return c.raw, c, nil
}

// Claim is a CPF's claim, still held, with the payload just paid for and
// not stored yet. The caller either stores it inside its own transaction
// (QueueStore, then Stored once that committed), sending its batch on the
// claim's connection (Conn) with the release after its COMMIT
// (QueueRelease, then Released), or leaves it to Close. The next holder
// of the claim must find the payload, so the claim is released only after
// the payload committed, and a session lock released inside a transaction
// would be free before the transaction's writes are visible.
type Claim struct {
	p                        *Payloads
	conn                     *pgxpool.Conn
	key, cpf                 string
	id                       int64
	raw                      json.RawMessage
	locked, stored, released bool
}

// Conn is the claim's connection: send the batch that stores the payload on
// it, so the release rides in the same round trip.
func (c *Claim) Conn() store.Batcher { return c.conn }

// QueueStore queues the payload and its attempt's end, for the caller's
// transaction.
func (c *Claim) QueueStore(b *pgx.Batch) {
	b.Queue(storePayloadSQL, c.cpf, []byte(c.raw), c.id, AttemptAnswered)
}

// QueueRelease queues the claim's release, for after the caller's COMMIT.
func (c *Claim) QueueRelease(b *pgx.Batch) { b.Queue(unlockSQL, c.key) }

// Stored says the caller's transaction with QueueStore committed.
func (c *Claim) Stored() { c.stored = true }

// Released says QueueRelease ran after that.
func (c *Claim) Released() { c.locked = false }

// Close stores the payload on its own unless Stored, releases the claim
// unless Released, and returns the connection. A payload that cannot be
// stored is charged but lost: its attempt stays on record as started (the
// next try pays again), and the error is returned, never "no data".
func (c *Claim) Close(ctx context.Context) error {
	if c.released {
		return nil
	}
	defer c.release(ctx)
	if c.stored {
		return nil
	}
	// The payload and the attempt's end commit first, then the claim is
	// released (in the same round trip).
	b := &pgx.Batch{}
	b.BeginTx(pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	c.QueueStore(b)
	b.Queue("COMMIT")
	b.Queue(unlockSQL, c.key)
	br := c.conn.SendBatch(context.WithoutCancel(ctx), b)
	tx := br.Tx()
	err := br.Close()
	_ = tx.Rollback(context.WithoutCancel(ctx)) // after a failure: leave the aborted transaction
	if err != nil {
		// Charged but not stored: the attempt says so; the error decides
		// (transient: redelivered; permanent: dead-lettered), never "no data".
		serr := store.Classify("payloads.store", err)
		c.p.finish(ctx, c.conn, c.id, AttemptAnswered, fmt.Errorf("payload not stored: %w", serr))
		return serr
	}
	c.stored, c.locked = true, false // the batch released the claim after storing
	return nil
}

// release unlocks the claim if still locked (on a fresh context: the
// unlock must happen even when ctx is done) and returns the connection.
func (c *Claim) release(ctx context.Context) {
	if c.released {
		return
	}
	c.released = true
	if c.locked {
		if _, err := c.conn.Exec(context.WithoutCancel(ctx), unlockSQL, c.key); err != nil {
			c.conn.Conn().Close(context.Background()) //nolint:errcheck // closing drops the session lock
		}
	}
	c.conn.Release()
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
	// storePayloadSQL stores a payload and ends its attempt, once: a store
	// whose commit went unanswered and is sent again (Claim.Close after
	// the caller's batch failed) finds the attempt ended and writes nothing.
	storePayloadSQL = `WITH answered AS (
			UPDATE pipeline.workapi_attempts SET status = $4, finished_at = now() WHERE attempt_id = $3 AND status = 'started'
			RETURNING 1
		)
		INSERT INTO pipeline.workapi_payloads (cpf, payload, fetched_at) SELECT $1, $2, now() WHERE EXISTS (SELECT 1 FROM answered)
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
	args := []any{cpf, reuse.Always, reuse.MaxAge.Microseconds(), nullTime(reuse.FetchedAfter)}
	scan := func(row pgx.Row) error { return row.Scan(&r.raw, &r.payloadOK, &r.nobody, &r.nobodyOK, &r.payloadNew) }
	var err error
	if p.reads != nil && db == store.DB(p.Pool) { // not a warm-up's transaction
		b := &pgx.Batch{}
		b.Queue(storedSQL, args...).QueryRow(scan)
		err = p.reads.Send(ctx, "", b)
	} else {
		err = scan(db.QueryRow(ctx, storedSQL, args...))
	}
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
