// Package adapters connects the notifier to Postgres and C2S.
package adapters

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/leadflow/leadflow/pkg/backbone/events"
	"github.com/leadflow/leadflow/pkg/store"
	"github.com/leadflow/leadflow/pkg/store/runs"
	"github.com/leadflow/leadflow/services/notifier/app"
)

// Ledger is pipeline.notifications.
type Ledger struct {
	Pool *pgxpool.Pool
}

// Deliver implements app.Ledger. It holds a session advisory lock per lead on
// one connection, so two runs of the same lead never post concurrently; the
// lock dies with the connection if the process crashes. The attempt counter
// is committed before posting, so a crash after the post leaves the entry
// "uncertain" and the next delivery checks C2S before posting again.
func (l Ledger) Deliver(ctx context.Context, key app.Key, attempt func(context.Context, app.State) (app.Delivery, error)) (app.Delivery, error) {
	conn, err := l.Pool.Acquire(ctx)
	if err != nil {
		return app.Delivery{}, classify(err)
	}
	defer conn.Release()
	lockKey := "notify:" + key.LeadID
	locked := false
	defer func() {
		if !locked {
			return
		}
		// A fresh context: the unlock must happen even when ctx is done.
		_, uerr := conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(hashtextextended($1, 0))`, lockKey)
		if uerr != nil {
			conn.Conn().Close(context.Background()) //nolint:errcheck // closing drops the session lock
		}
	}()
	// Lock, then count the attempt, in one round trip.
	b := &pgx.Batch{}
	b.Queue(`SELECT pg_advisory_lock(hashtextextended($1, 0))`, lockKey)
	b.Queue(`INSERT INTO pipeline.notifications (lead_id, message_hash, replay_key, run_id, status, attempts)
		VALUES ($1, $2, $3, $4, 'pending', 1)
		ON CONFLICT (lead_id, message_hash, replay_key) DO UPDATE SET attempts = pipeline.notifications.attempts + 1
		RETURNING status, attempts`, key.LeadID, key.MessageHash, key.ReplayKey, key.RunID)
	res := conn.SendBatch(ctx, b)
	_, err = res.Exec()
	locked = err == nil
	var status string
	var attempts int
	if err == nil {
		err = res.QueryRow().Scan(&status, &attempts)
	}
	if cerr := res.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return app.Delivery{}, classify(err)
	}
	d, err := attempt(ctx, app.State{Sent: status == "sent", Uncertain: status != "sent" && attempts > 1})
	if err != nil {
		return d, err
	}
	// Record the end and release the lead in one round trip.
	b = &pgx.Batch{}
	b.Queue(`UPDATE pipeline.notifications SET status = 'sent', route = COALESCE(NULLIF($4, ''), route),
		sent_at = COALESCE(sent_at, now()) WHERE lead_id = $1 AND message_hash = $2 AND replay_key = $3`,
		key.LeadID, key.MessageHash, key.ReplayKey, d.Route)
	b.Queue(`SELECT pg_advisory_unlock(hashtextextended($1, 0))`, lockKey)
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return d, classify(err)
	}
	locked = false
	return d, nil
}

// Store records the notification step.
type Store struct {
	Pool *pgxpool.Pool
}

// SaveNotification implements app.Store.
func (s Store) SaveNotification(ctx context.Context, env events.Envelope, n events.LeadNotified) error {
	return runs.Record(ctx, s.Pool, env, runs.Outcome{
		Stage:   runs.StageNotified,
		Outcome: n.Status,
		Detail:  map[string]any{"route": n.Route, "message_hash": n.MessageHash, "reason": n.Reason},
	})
}

func classify(err error) error {
	if err == nil {
		return nil
	}
	return store.Classify("notifier.db", fmt.Errorf("ledger: %w", err))
}
