package ledger

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/leadflow/leadflow/pkg/store"
)

// Warm is the delivery's store.Warmer: the lead's lock, the entry's start,
// a new attempt and the end, with the same arguments a delivery sends.
func Warm(ctx context.Context, tx pgx.Tx) error {
	key := Key{LeadID: store.WarmLead, RunKey: "warm-up", Stage: StageEnriched}
	var e Entry
	var fresh bool
	b := &pgx.Batch{}
	b.Queue(lockSQL, LockKey(key.LeadID))
	b.Queue(beginSQL, key.LeadID, key.RunKey, key.Stage, "warm-up", "warm-up").QueryRow(func(r pgx.Row) error {
		return r.Scan(&e.LeadID, &e.RunID, &e.RunKey, &e.Stage, &e.Status, &e.Route, &e.MessageHash, &e.Attempts,
			&e.Reason, &e.CreatedAt, &e.UpdatedAt, &e.SentAt, &fresh)
	})
	b.Queue(postingSQL, key.LeadID, key.RunKey, key.Stage, "warm-up").QueryRow(func(r pgx.Row) error {
		_, err := scan(r)
		return err
	})
	b.Queue(endSQL, key.LeadID, key.RunKey, key.Stage, StatusSent, "warm-up", "").QueryRow(func(r pgx.Row) error {
		_, err := scan(r)
		return err
	})
	b.Queue(unlockSQL, LockKey(key.LeadID))
	return tx.SendBatch(ctx, b).Close()
}
