// Package adapters connects ingest to Postgres.
package adapters

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/leadflow/leadflow/pkg/backbone/events"
	"github.com/leadflow/leadflow/pkg/store"
	"github.com/leadflow/leadflow/pkg/store/runs"
	"github.com/leadflow/leadflow/services/ingest/app"
)

// Receipts stores webhook receipts, one statement per call.
type Receipts struct {
	Pool *pgxpool.Pool
}

// ReceiptExists implements app.Receipts.
func (r Receipts) ReceiptExists(ctx context.Context, leadID, key string) (bool, error) {
	var seen bool
	err := r.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pipeline.webhook_receipts WHERE lead_id = $1 AND updated_key = $2)`,
		leadID, key).Scan(&seen)
	return seen, classify(err)
}

// LastContacts implements app.Receipts.
func (r Receipts) LastContacts(ctx context.Context, leadID string) (string, string, bool, error) {
	phone, email, found, err := lastContacts(ctx, r.Pool, leadID)
	return phone, email, found, classify(err)
}

// AddReceipt implements app.Receipts: the receipt and the run start go in
// one round trip.
func (r Receipts) AddReceipt(ctx context.Context, rc app.Receipt, run *events.Envelope) (bool, error) {
	var payload any
	if len(rc.Payload) > 0 {
		payload = []byte(rc.Payload)
	}
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO pipeline.webhook_receipts (lead_id, updated_key, action, status, event_id, payload)
		VALUES ($1, $2, $3, $4, NULLIF($5, ''), $6) ON CONFLICT (lead_id, updated_key) DO NOTHING`,
		rc.LeadID, rc.UpdatedKey, rc.Action, rc.Status, rc.EventID, payload)
	if run != nil {
		runs.QueueStartRun(ctx, b, *run)
	}
	res := r.Pool.SendBatch(ctx, b)
	tag, err := res.Exec()
	if err == nil && run != nil {
		_, err = res.Exec()
	}
	if cerr := res.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return false, classify(err)
	}
	return tag.RowsAffected() == 1, nil
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
