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
	testinfra.WrittenButEmpty(t, pool, "pipeline.webhook_receipts", "pipeline.lead_runs")
}
