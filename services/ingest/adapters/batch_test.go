package adapters

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/leadflow/leadflow/pkg/clients/httpx/httpxtest"
	"github.com/leadflow/leadflow/pkg/store"
	"github.com/leadflow/leadflow/pkg/testinfra"
	"github.com/leadflow/leadflow/services/ingest/app"
)

// Receipts that arrive while a batch is in flight wait for it and then go
// in one batch together: one round trip and one commit for all of them, a
// repeat within the batch answered "not fresh", and every receipt written.
func TestReceiptsWaitingDuringAFlushShareTheNext(t *testing.T) {
	ctx := context.Background()
	db := testinfra.NewDatabase(t)
	pool, err := store.Open(ctx, db, 4, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := store.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(store.NewPoolCollector(pool))
	trips := func() float64 { return httpxtest.CounterValue(reg, "leadflow_postgres_round_trips_total", nil) }

	// Hold the first flush: its insert waits for this lock.
	other := testinfra.NewPool(t, db)
	blocker, err := other.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer blocker.Rollback(ctx)
	if _, err := blocker.Exec(ctx, `LOCK TABLE pipeline.webhook_receipts IN SHARE MODE`); err != nil {
		t.Fatal(err)
	}

	r := NewReceipts(pool)
	before := trips()
	receipt := func(lead string) app.Receipt {
		return app.Receipt{LeadID: lead, UpdatedKey: "k", Action: "on_create_lead", Status: app.StatusRecorded, Payload: []byte(`{}`)}
	}
	type answer struct {
		lead  string
		fresh bool
		err   error
	}
	answers := make(chan answer, 32)
	var wg sync.WaitGroup
	add := func(lead string) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fresh, err := r.AddReceipt(ctx, receipt(lead), nil)
			answers <- answer{lead, fresh, err}
		}()
	}
	add("first")
	waitFor(t, "the first flush to wait for the lock", func() bool {
		var n int
		err := other.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&n)
		return err == nil && n == 1
	})
	const later = 20
	for i := range later {
		add(fmt.Sprintf("lead-%02d", i))
	}
	add("lead-07") // the same event twice in one batch
	waitFor(t, "the later receipts to queue", func() bool { return len(r.batch.in) == later+1 })
	if err := blocker.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(answers)

	if got := trips() - before; got != 2 {
		t.Fatalf("%v round trips for a held flush and %d receipts waiting behind it, want 2 (one each)", got, later+1)
	}
	freshOf := map[string]int{}
	for a := range answers {
		if a.err != nil {
			t.Fatalf("%s: %v", a.lead, a.err)
		}
		if a.fresh {
			freshOf[a.lead]++
		}
	}
	if len(freshOf) != later+1 || freshOf["lead-07"] != 1 {
		t.Fatalf("fresh answers %v: want each of %d leads fresh exactly once", freshOf, later+1)
	}
	var rows int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM pipeline.webhook_receipts WHERE updated_key = 'k'`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != later+1 {
		t.Fatalf("%d receipts stored, want %d", rows, later+1)
	}
}

// waitFor polls cond until it holds (a state to reach, not a time to pass).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
