package testinfra

import (
	"context"
	"testing"
)

// HoldTable locks table in SHARE MODE from a connection of its own on
// dbURL, so that writers of the table wait, and returns the release. The
// lock is released at the test's end anyway.
func HoldTable(t testing.TB, dbURL, table string) (release func() error) {
	t.Helper()
	ctx := context.Background()
	tx, err := NewPool(t, dbURL).Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback(ctx) })
	if _, err := tx.Exec(ctx, `LOCK TABLE `+table+` IN SHARE MODE`); err != nil {
		t.Fatal(err)
	}
	return func() error { return tx.Rollback(ctx) }
}

// WaitForLockWaits waits until n sessions of dbURL's database wait for a
// lock (a writer blocked by HoldTable, say).
func WaitForLockWaits(t testing.TB, dbURL string, n int) {
	t.Helper()
	pool := NewPool(t, dbURL)
	WaitFor(t, "sessions waiting for a lock", func() bool {
		var waiting int
		err := pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&waiting)
		return err == nil && waiting == n
	})
}
