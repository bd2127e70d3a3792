// Package adapters connects ingest to Postgres.
package adapters

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/leadflow/leadflow/pkg/events"
	"github.com/leadflow/leadflow/pkg/runs"
	"github.com/leadflow/leadflow/services/ingest/app"
)

// UnitOfWork runs intake steps in one Postgres transaction.
type UnitOfWork struct {
	Pool *pgxpool.Pool
}

// Do implements app.UnitOfWork.
func (u UnitOfWork) Do(ctx context.Context, fn func(app.Tx) error) error {
	err := pgx.BeginFunc(ctx, u.Pool, func(tx pgx.Tx) error {
		// A lost commit only means a C2S retry is processed again, which
		// every later stage tolerates; not waiting for the WAL flush is what
		// lets ingest ack thousands of webhooks a second.
		if _, err := tx.Exec(ctx, "SET LOCAL synchronous_commit = off"); err != nil {
			return err
		}
		return fn(txAdapter{tx})
	})
	var pgErr interface{ SQLState() string }
	if err != nil && errors.As(err, &pgErr) {
		return runs.Classify("ingest.db", err)
	}
	return err
}

type txAdapter struct{ tx pgx.Tx }

func (t txAdapter) AddReceipt(ctx context.Context, r app.Receipt) (bool, error) {
	var payload any
	if len(r.Payload) > 0 {
		payload = []byte(r.Payload)
	}
	tag, err := t.tx.Exec(ctx, `INSERT INTO pipeline.webhook_receipts (lead_id, updated_key, action, status, payload)
		VALUES ($1, $2, $3, $4, $5) ON CONFLICT (lead_id, updated_key) DO NOTHING`,
		r.LeadID, r.UpdatedKey, r.Action, r.Status, payload)
	if err != nil {
		return false, err
	}
	return tag.RowsAffected() == 1, nil
}

func (t txAdapter) SetReceiptEvent(ctx context.Context, leadID, key, status, eventID string) error {
	_, err := t.tx.Exec(ctx, `UPDATE pipeline.webhook_receipts SET status = $3, event_id = NULLIF($4, '')
		WHERE lead_id = $1 AND updated_key = $2`, leadID, key, status, eventID)
	return err
}

func (t txAdapter) LastContacts(ctx context.Context, leadID string) (string, string, bool, error) {
	var phone, email *string
	err := t.tx.QueryRow(ctx, `SELECT phone, email FROM pipeline.lead_contacts WHERE lead_id = $1`, leadID).Scan(&phone, &email)
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
