// Package adapters connects ingest to Postgres.
package adapters

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/leadflow/leadflow/pkg/backbone/events"
	"github.com/leadflow/leadflow/pkg/backbone/failure"
	"github.com/leadflow/leadflow/pkg/store"
	"github.com/leadflow/leadflow/pkg/store/runs"
	"github.com/leadflow/leadflow/services/ingest/app"
)

// Receipts stores webhook receipts. Built with NewReceipts, concurrent
// AddReceipt calls share one batch (one round trip, one commit) instead of a
// transaction each; the zero value with Pool set writes each on its own.
type Receipts struct {
	Pool  *pgxpool.Pool
	group *store.Group
}

// NewReceipts returns Receipts whose AddReceipt calls made at the same time
// are written together (store.Group): a lone webhook waits for nothing, and
// receipts that arrive while a batch is in flight all go in the next one.
// Under 64 concurrent webhooks that is about 9 receipts per commit; four
// flushers each took what was there at once, about 2-3 (docs/BENCHMARKS.md,
// 2026-12-07 fourth session).
func NewReceipts(pool *pgxpool.Pool) Receipts {
	return Receipts{Pool: pool, group: store.NewGroup(pool, maxReceiptBatch)}
}

const maxReceiptBatch = 64

// AddReceipt implements app.Receipts: the receipt and the run start go in
// one round trip (shared with concurrent calls when grouped). If the shared
// transaction fails (one bad receipt, a deadlock with another batch), each
// receipt is written on its own, so one cannot fail the others.
func (r Receipts) AddReceipt(ctx context.Context, rc app.Receipt, run *events.Envelope) (bool, error) {
	var fresh bool
	b := &pgx.Batch{}
	queueReceipt(ctx, b, rc, run).Exec(func(tag pgconn.CommandTag) error {
		fresh = tag.RowsAffected() == 1
		return nil
	})
	var err error
	if r.group == nil {
		err = r.Pool.SendBatch(ctx, b).Close()
	} else {
		err = r.group.Send(ctx, rc.LeadID+"\x00"+rc.UpdatedKey, b)
	}
	switch {
	case err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()):
		// It may still be written: the sender's retry answers duplicate.
		return false, failure.Transient("ingest.db", err)
	case err != nil:
		return false, classify(err)
	}
	return fresh, nil
}

const addReceiptSQL = `INSERT INTO pipeline.webhook_receipts (lead_id, updated_key, action, status, event_id, payload)
		VALUES ($1, $2, $3, $4, NULLIF($5, ''), $6) ON CONFLICT (lead_id, updated_key) DO NOTHING`

// WarmWebhook is ingest's store.Warmer: a new lead's receipt and run start
// (one batch, as a webhook sends them) and an update's two reads, with
// every parameter of the same Go type as a real webhook's (the payload
// too: pgx builds its encoding plans per connection on first use).
// Preparing alone was not enough: a backend's first receipt took 4.2-6.1 ms
// after preparing, and 1.5-2.1 ms after this warm-up (later ones 0.5-1.5).
func WarmWebhook(ctx context.Context, tx pgx.Tx) error {
	run := runs.WarmEnvelope()
	rc := app.Receipt{LeadID: store.WarmLead, UpdatedKey: "warm-up", Action: "warm-up", Status: app.StatusQueued, EventID: run.EventID,
		Payload: []byte(`{}`)}
	b := &pgx.Batch{}
	queueReceipt(ctx, b, rc, &run)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return err
	}
	if _, err := receiptExists(ctx, tx, rc.LeadID, rc.UpdatedKey); err != nil {
		return err
	}
	_, _, _, err := lastContacts(ctx, tx, rc.LeadID)
	return err
}

// queueReceipt queues the receipt and, for a new run, its start; it
// returns the receipt's statement (whether it wrote a row tells a first
// receipt from a repeat).
func queueReceipt(ctx context.Context, b *pgx.Batch, rc app.Receipt, run *events.Envelope) *pgx.QueuedQuery {
	var payload any
	if len(rc.Payload) > 0 {
		payload = []byte(rc.Payload)
	}
	q := b.Queue(addReceiptSQL, rc.LeadID, rc.UpdatedKey, rc.Action, rc.Status, rc.EventID, payload)
	if run != nil {
		runs.QueueStartRun(ctx, b, *run)
	}
	return q
}

// ReceiptExists implements app.Receipts.
func (r Receipts) ReceiptExists(ctx context.Context, leadID, key string) (bool, error) {
	seen, err := receiptExists(ctx, r.Pool, leadID, key)
	return seen, classify(err)
}

func receiptExists(ctx context.Context, db runs.DB, leadID, key string) (bool, error) {
	var seen bool
	err := db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pipeline.webhook_receipts WHERE lead_id = $1 AND updated_key = $2)`,
		leadID, key).Scan(&seen)
	return seen, err
}

// LastContacts implements app.Receipts.
func (r Receipts) LastContacts(ctx context.Context, leadID string) (string, string, bool, error) {
	phone, email, found, err := lastContacts(ctx, r.Pool, leadID)
	return phone, email, found, classify(err)
}

// UnitOfWork runs a trigger's steps in one Postgres transaction.
type UnitOfWork struct {
	Pool *pgxpool.Pool
}

// Do implements app.UnitOfWork.
func (u UnitOfWork) Do(ctx context.Context, fn func(app.Tx) error) error {
	return classify(pgx.BeginFunc(ctx, u.Pool, func(tx pgx.Tx) error {
		return fn(txAdapter{tx})
	}))
}

func classify(err error) error {
	var pgErr interface{ SQLState() string }
	if err != nil && errors.As(err, &pgErr) {
		return store.Classify("ingest.db", err)
	}
	return err
}

type txAdapter struct{ tx pgx.Tx }

func lastContacts(ctx context.Context, db runs.DB, leadID string) (string, string, bool, error) {
	var phone, email *string
	err := db.QueryRow(ctx, `SELECT phone, email FROM pipeline.lead_contacts WHERE lead_id = $1`, leadID).Scan(&phone, &email)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", "", false, nil
	}
	if err != nil {
		return "", "", false, err
	}
	return deref(phone), deref(email), true, nil
}

func (t txAdapter) LockLead(ctx context.Context, leadID string) error {
	_, err := t.tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('trigger:' || $1, 0))`, leadID)
	return err
}

func (t txAdapter) LatestLiveRun(ctx context.Context, leadID string, since time.Time) (*runs.Run, error) {
	return runs.LatestLiveRun(ctx, t.tx, leadID, since)
}

func (t txAdapter) StartRun(ctx context.Context, env events.Envelope) error {
	return runs.StartRun(ctx, t.tx, env)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
