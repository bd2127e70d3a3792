package testinfra

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
)

// WrittenButEmpty checks that a warm-up ran its statements and kept
// nothing: each table has been written to (it has a page) and holds no row.
func WrittenButEmpty(t testing.TB, pool *pgxpool.Pool, tables ...string) {
	t.Helper()
	for _, table := range tables {
		var rows, size int64
		if err := pool.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM `+table+`), pg_relation_size($1::regclass)`, table).
			Scan(&rows, &size); err != nil {
			t.Fatal(err)
		}
		if rows != 0 {
			t.Errorf("%s: %d rows kept by the warm-up", table, rows)
		}
		if size == 0 {
			t.Errorf("%s: never written, so the warm-up did not run its statements", table)
		}
	}
}
