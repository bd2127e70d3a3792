package budget

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// warmName is the warm-up's budget row, rolled back. Real names are
// "<upstream>:<12 hex digits>", so it is never one of them.
const warmName = "leadflow-warm-up"

// Warm is the rate budgets' store.Warmer: a row's creation, a reservation
// and the check after a sleep, as Wait sends them.
func Warm(ctx context.Context, tx pgx.Tx) error {
	if _, err := tx.Exec(ctx, ensureSQL, warmName); err != nil {
		return err
	}
	var r Reservation
	if err := tx.QueryRow(ctx, reserveSQL, warmName, int64(1000), int64(0), int64(-1)).Scan(&r.tat, &r.AllowedAt, &r.DBNow); err != nil {
		return err
	}
	var void bool
	return tx.QueryRow(ctx, voidedSQL, warmName, r.AllowedAt).Scan(&void)
}
