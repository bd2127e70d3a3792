// Package ledger is the notifications ledger (pipeline.notifications): one
// row per delivery of a message on a C2S lead, keyed by the event it answers
// (lead, run key, stage). C2S does not deduplicate; this does. The notifier
// and the operator commands (pkg/ops) share it, so a confirm or a repost
// goes through the same rows and the same per-lead lock as the pipeline.
package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/leadflow/leadflow/pkg/backbone/failure"
	"github.com/leadflow/leadflow/pkg/store"
)

// Statuses of a delivery.
const (
	// StatusPending: no post in flight; the next attempt posts.
	StatusPending = "pending"
	// StatusPosting: a post started (committed before sending) and its end
	// is not recorded; the next attempt reads the lead before posting.
	StatusPosting = "posting"
	// StatusSent: the message is on the lead.
	StatusSent = "sent"
	// StatusUncertain: a post may be on the lead and the lead shows no
	// messages to check. Not retried; an operator confirms or reposts.
	StatusUncertain = "uncertain"
	// StatusRepost: an operator asked to post once more; the next attempt
	// posts without checking.
	StatusRepost = "repost"
)

// Stages: the event a message answers.
const (
	StageEnriched   = "enriched"
	StageUnresolved = "unresolved"
)

// StaleAfter is how long a posting row may stay without its end before
// operators see it as interrupted (a live attempt holds it for seconds).
const StaleAfter = 10 * time.Minute

// Key identifies one delivery. RunKey is the run id of a live run and the
// replay id of a --notify replay, so a replay posts at most once per lead.
type Key struct {
	LeadID string
	RunKey string
	Stage  string
}

// Entry is one delivery. Nothing in it is personal data.
type Entry struct {
	LeadID      string     `json:"lead_id"`
	RunID       string     `json:"run_id"`
	RunKey      string     `json:"run_key"`
	Stage       string     `json:"stage"`
	Status      string     `json:"status"`
	Route       string     `json:"route,omitempty"`
	MessageHash string     `json:"message_hash"` // SHA-256 of the text last attempted
	Attempts    int        `json:"attempts"`     // posts started
	Reason      string     `json:"reason,omitempty"`
	CreatedAt   time.Time  `json:"created_at"`
	UpdatedAt   time.Time  `json:"updated_at"`
	SentAt      *time.Time `json:"sent_at,omitempty"`
}

// Key returns the entry's key.
func (e Entry) Key() Key { return Key{LeadID: e.LeadID, RunKey: e.RunKey, Stage: e.Stage} }

// LockKey is the session advisory lock that serialises every delivery (and
// every operator action) on one lead.
func LockKey(leadID string) string { return "notify:" + leadID }

const columns = `lead_id, run_id, run_key, stage, status, COALESCE(route, ''), message_hash, attempts,
	COALESCE(reason, ''), created_at, updated_at, sent_at`

// A delivery's statements (Begin, Posting, end; Warm runs the same).
const (
	lockSQL   = `SELECT pg_advisory_lock(hashtextextended($1, 0))`
	unlockSQL = `SELECT pg_advisory_unlock(hashtextextended($1, 0))`
	// xmax = 0 only on the row this statement inserted.
	beginSQL = `INSERT INTO pipeline.notifications AS n (lead_id, run_key, stage, run_id, status, message_hash, attempts)
		VALUES ($1, $2, $3, $4, 'posting', $5, 1)
		ON CONFLICT (lead_id, run_key, stage) DO UPDATE SET updated_at = n.updated_at
		RETURNING ` + columns + `, n.xmax = 0`
	postingSQL = `UPDATE pipeline.notifications SET status = 'posting', message_hash = $4,
		attempts = attempts + 1, updated_at = now()
		WHERE lead_id = $1 AND run_key = $2 AND stage = $3 RETURNING ` + columns
	endSQL = `UPDATE pipeline.notifications SET status = $4, route = COALESCE(NULLIF($5, ''), route),
		reason = COALESCE(NULLIF($6, ''), reason), updated_at = now(),
		sent_at = CASE WHEN $4 = 'sent' THEN COALESCE(sent_at, now()) ELSE sent_at END
		WHERE lead_id = $1 AND run_key = $2 AND stage = $3 RETURNING ` + columns
)

func scan(row pgx.Row) (Entry, error) {
	var e Entry
	err := row.Scan(&e.LeadID, &e.RunID, &e.RunKey, &e.Stage, &e.Status, &e.Route, &e.MessageHash, &e.Attempts,
		&e.Reason, &e.CreatedAt, &e.UpdatedAt, &e.SentAt)
	return e, err
}

// Session is one exclusive section on a lead: a dedicated connection holding
// the lead's session advisory lock. A crash releases the lock with the
// connection. Posting is recorded and committed before the post; Finish
// records the end and releases the lead in one round trip.
type Session struct {
	conn   *pgxpool.Conn
	key    Key
	locked bool
	Entry  Entry
	// Fresh: Begin created the entry, already recorded as posting (the
	// first attempt of this delivery); nothing was known of it before.
	Fresh bool
}

// Open locks the lead and creates key's entry (pending, with runID and the
// hash of the text about to be posted) or reads the existing one, in one
// round trip.
func Open(ctx context.Context, pool *pgxpool.Pool, key Key, runID, messageHash string) (*Session, error) {
	s, err := acquire(ctx, pool, key)
	if err != nil {
		return nil, err
	}
	b := &pgx.Batch{}
	b.Queue(lockSQL, LockKey(key.LeadID))
	b.Queue(`INSERT INTO pipeline.notifications AS n (lead_id, run_key, stage, run_id, status, message_hash, attempts)
		VALUES ($1, $2, $3, $4, 'pending', $5, 0)
		ON CONFLICT (lead_id, run_key, stage) DO UPDATE SET updated_at = n.updated_at
		RETURNING `+columns, key.LeadID, key.RunKey, key.Stage, runID, messageHash)
	res := s.conn.SendBatch(ctx, b)
	_, err = res.Exec()
	s.locked = err == nil
	if err == nil {
		s.Entry, err = scan(res.QueryRow())
	}
	if cerr := res.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		s.Close()
		return nil, classify("ledger.open", err)
	}
	return s, nil
}

// Begin is Open for a delivery about to post: it locks the lead and, when
// key has no entry yet, creates it already recorded as posting (attempt 1,
// the hash of the text about to be posted), committed in the same round
// trip, so the first attempt needs no separate Posting before its post.
// Fresh reports that case. An existing entry is read as Open reads it and
// the caller decides from its status (Posting before any post).
func Begin(ctx context.Context, pool *pgxpool.Pool, key Key, runID, messageHash string) (*Session, error) {
	s, err := acquire(ctx, pool, key)
	if err != nil {
		return nil, err
	}
	b := &pgx.Batch{}
	b.Queue(lockSQL, LockKey(key.LeadID))
	b.Queue(beginSQL, key.LeadID, key.RunKey, key.Stage, runID, messageHash)
	res := s.conn.SendBatch(ctx, b)
	_, err = res.Exec()
	s.locked = err == nil
	if err == nil {
		e := &s.Entry
		err = res.QueryRow().Scan(&e.LeadID, &e.RunID, &e.RunKey, &e.Stage, &e.Status, &e.Route, &e.MessageHash, &e.Attempts,
			&e.Reason, &e.CreatedAt, &e.UpdatedAt, &e.SentAt, &s.Fresh)
	}
	if cerr := res.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		s.Close()
		return nil, classify("ledger.begin", err)
	}
	return s, nil
}

// OpenRun locks the lead and reads the entry of (lead, run id): the run the
// operator names. failure.NotFound when the run has no delivery.
func OpenRun(ctx context.Context, pool *pgxpool.Pool, leadID, runID string) (*Session, error) {
	s, err := acquire(ctx, pool, Key{LeadID: leadID})
	if err != nil {
		return nil, err
	}
	if _, err := s.conn.Exec(ctx, lockSQL, LockKey(leadID)); err != nil {
		s.Close()
		return nil, classify("ledger.open", err)
	}
	s.locked = true
	e, err := scan(s.conn.QueryRow(ctx, `SELECT `+columns+` FROM pipeline.notifications
		WHERE lead_id = $1 AND (run_id = $2 OR run_key = $2) ORDER BY created_at DESC LIMIT 1`, leadID, runID))
	if errors.Is(err, pgx.ErrNoRows) {
		s.Close()
		return nil, failure.NotFound("ledger.open")
	}
	if err != nil {
		s.Close()
		return nil, classify("ledger.open", err)
	}
	s.Entry, s.key = e, e.Key()
	return s, nil
}

func acquire(ctx context.Context, pool *pgxpool.Pool, key Key) (*Session, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, classify("ledger.open", err)
	}
	return &Session{conn: conn, key: key}, nil
}

// Posting records, committed before the post, that a post of the text with
// messageHash starts now: if its end is never recorded, the next attempt
// reads the lead first.
func (s *Session) Posting(ctx context.Context, messageHash string) error {
	e, err := scan(s.conn.QueryRow(ctx, postingSQL, s.key.LeadID, s.key.RunKey, s.key.Stage, messageHash))
	if err != nil {
		return classify("ledger.posting", err)
	}
	s.Entry = e
	return nil
}

// Uncertain records the route of a post whose outcome is unknown; the entry
// stays posting.
func (s *Session) Uncertain(ctx context.Context, route string) error {
	if _, err := s.conn.Exec(ctx, `UPDATE pipeline.notifications SET route = NULLIF($4, ''), updated_at = now()
		WHERE lead_id = $1 AND run_key = $2 AND stage = $3`, s.key.LeadID, s.key.RunKey, s.key.Stage, route); err != nil {
		return classify("ledger.uncertain", err)
	}
	s.Entry.Route = route
	return nil
}

// Finish records the end of this section (status sent, pending, uncertain
// or repost; route and reason when not empty) and releases the lead once it
// is committed, in one round trip. The session is done afterwards. It runs even when ctx has
// ended: a finished post must be recorded.
func (s *Session) Finish(ctx context.Context, status, route, reason string) error {
	_, err := s.FinishWith(ctx, status, route, reason, nil)
	return err
}

// FinishWith is Finish with the caller's own statements (the stage's trace
// step) queued in the transaction of the ledger's end: one round trip, one
// commit, then the unlock. If
// the caller's statements fail they take the end with them; the end is then
// recorded alone and done reports false (the caller writes its statements
// on its own). The ledger's end is never given up for the caller's sake.
func (s *Session) FinishWith(ctx context.Context, status, route, reason string, queue func(*pgx.Batch)) (done bool, err error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	e, err := s.end(ctx, status, route, reason, queue)
	if err != nil && queue != nil && s.conn != nil && !s.conn.Conn().IsClosed() {
		e, err = s.end(ctx, status, route, reason, nil)
		if err == nil {
			s.Entry, s.locked = e, false
			s.Close()
			return false, nil
		}
	}
	if err != nil {
		s.Close()
		return false, classify("ledger.finish", err)
	}
	s.Entry, s.locked = e, false
	s.Close()
	return true, nil
}

// end sends the ledger's end and the caller's statements in one explicit
// transaction, then the unlock, in one batch (one round trip). The unlock
// runs only after COMMIT: a session lock released inside a transaction is
// free before the transaction's writes are visible, and the next holder
// must read the end.
func (s *Session) end(ctx context.Context, status, route, reason string, queue func(*pgx.Batch)) (e Entry, err error) {
	b := &pgx.Batch{}
	b.BeginTx(pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	b.Queue(endSQL, s.key.LeadID, s.key.RunKey, s.key.Stage, status, route, reason)
	before := b.Len()
	if queue != nil {
		queue(b)
	}
	extra := b.Len() - before
	b.Queue("COMMIT")
	b.Queue(unlockSQL, LockKey(s.key.LeadID))
	res := s.conn.SendBatch(ctx, b)
	tx := res.Tx()
	defer func() {
		// After a failure, leave the aborted transaction (the lock is the
		// session's and stays held); after COMMIT this does nothing.
		_ = tx.Rollback(context.WithoutCancel(ctx))
	}()
	if _, err = res.Exec(); err == nil { // BEGIN
		e, err = scan(res.QueryRow())
	}
	for i := 0; i < extra && err == nil; i++ {
		_, err = res.Exec()
	}
	if err == nil {
		_, err = res.Exec() // COMMIT
	}
	if err == nil {
		_, err = res.Exec() // unlock
	}
	if cerr := res.Close(); err == nil {
		err = cerr
	}
	return e, err
}

// Close releases the lead (when still locked) and the connection. It is
// safe to call more than once.
func (s *Session) Close() {
	if s == nil || s.conn == nil {
		return
	}
	if s.locked {
		// A fresh context: the unlock must happen even when ctx is done.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := s.conn.Exec(ctx, unlockSQL, LockKey(s.key.LeadID))
		cancel()
		if err != nil {
			_ = s.conn.Conn().Close(context.Background()) // closing drops the session lock
		}
		s.locked = false
	}
	s.conn.Release()
	s.conn = nil
}

// DB is a pool or a transaction.
type DB interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// ListOpen lists the deliveries an operator should look at, oldest first:
// uncertain ones, reposts not yet done, and posting ones older than
// StaleAfter (an attempt that was interrupted and not retried).
func ListOpen(ctx context.Context, db DB, leadID string) ([]Entry, error) {
	rows, err := db.Query(ctx, `SELECT `+columns+` FROM pipeline.notifications
		WHERE (status IN ('uncertain', 'repost') OR (status = 'posting' AND updated_at < now() - $1::interval))
		  AND ($2 = '' OR lead_id = $2)
		ORDER BY updated_at, lead_id LIMIT 1000`, StaleAfter.String(), leadID)
	if err != nil {
		return nil, classify("ledger.list", err)
	}
	defer rows.Close()
	out := []Entry{}
	for rows.Next() {
		e, err := scan(rows)
		if err != nil {
			return nil, classify("ledger.list", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, classify("ledger.list", err)
	}
	return out, nil
}

// Get reads the entry of (lead, run id or run key) without locking.
func Get(ctx context.Context, db DB, leadID, runID string) (Entry, error) {
	e, err := scan(db.QueryRow(ctx, `SELECT `+columns+` FROM pipeline.notifications
		WHERE lead_id = $1 AND (run_id = $2 OR run_key = $2) ORDER BY created_at DESC LIMIT 1`, leadID, runID))
	if errors.Is(err, pgx.ErrNoRows) {
		return e, failure.NotFound("ledger.get")
	}
	return e, classify("ledger.get", err)
}

// CountUncertain is how many deliveries wait for an operator.
func CountUncertain(ctx context.Context, db DB) (int, error) {
	var n int
	err := db.QueryRow(ctx, `SELECT count(*) FROM pipeline.notifications WHERE status = 'uncertain'`).Scan(&n)
	return n, classify("ledger.count", err)
}

func classify(op string, err error) error {
	if err == nil {
		return nil
	}
	return store.Classify(op, fmt.Errorf("ledger: %w", err))
}
