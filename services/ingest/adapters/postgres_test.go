package adapters

import (
	"context"
	"testing"

	"github.com/leadflow/leadflow/pkg/store"
	"github.com/leadflow/leadflow/pkg/testinfra"
)

// The warm-up writes a new lead's rows on each connection and rolls them
// back: the tables got their first page (the inserts ran), and nothing is
// kept.
func TestWarmWebhookKeepsNothing(t *testing.T) {
	ctx := context.Background()
	pool := testinfra.NewPool(t, testinfra.NewDatabase(t))
	if err := store.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	warmup := &store.Warmup{}
	warmup.Add(WarmWebhook)
	if err := store.Warm(ctx, pool, 3, warmup); err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"pipeline.webhook_receipts", "pipeline.lead_runs"} {
		var rows, size int64
		if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM `+table+`), pg_relation_size($1::regclass)`, table).Scan(&rows, &size); err != nil {
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
