package store_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"github.com/leadflow/leadflow/pkg/store"
	"github.com/leadflow/leadflow/pkg/store/budget"
	"github.com/leadflow/leadflow/pkg/store/coredb"
	"github.com/leadflow/leadflow/pkg/store/ledger"
	"github.com/leadflow/leadflow/pkg/store/pipeline"
	"github.com/leadflow/leadflow/pkg/store/runs"
	"github.com/leadflow/leadflow/pkg/testinfra"
)

// Every worker's warmers run their real statements on each connection and
// roll them back: each table they write got its first page (the statements
// ran), no row is kept and no advisory lock is left held.
func TestWarmersRunTheirStatementsAndKeepNothing(t *testing.T) {
	ctx := context.Background()
	url := testinfra.NewDatabase(t)
	warmup := &store.Warmup{}
	pool, err := store.Open(ctx, url, 3, false, warmup)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := store.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	payloads := pipeline.NewPayloads(pool, 2, 3, nil)
	writer := coredb.NewWriter(pool, decimal.NewFromInt(1))
	warmup.Add(runs.WarmRecord, pipeline.WarmResolution, payloads.Warm, writer.Warm, ledger.Warm, budget.Warm)
	if err := store.Warm(ctx, pool, 3, warmup); err != nil {
		t.Fatal(err)
	}
	testinfra.WrittenButEmpty(t, pool,
		"pipeline.lead_stages", "pipeline.lead_runs", // runs.WarmRecord
		"pipeline.identity_resolutions", "pipeline.lead_contacts", "pipeline.run_outcomes", // resolution
		"pipeline.workapi_attempts", "pipeline.workapi_payloads", // the paid-call claim
		"core.entities", "core.entity_profiles", "core.entity_financials", "core.entity_emails", "core.entity_phones",
		"core.addresses", "core.entity_addresses", // the person writer
		"pipeline.notifications", // the delivery ledger
		"pipeline.rate_budgets",  // the shared rate budgets
	)
	var locks int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&locks); err != nil {
		t.Fatal(err)
	}
	if locks != 0 {
		t.Errorf("%d advisory locks still held after the warm-up", locks)
	}
	// The warmed connections work: a real delivery takes the same lock.
	s, err := ledger.Begin(ctx, pool, ledger.Key{LeadID: store.WarmLead, RunKey: "r", Stage: ledger.StageEnriched}, "r", "h")
	if err != nil {
		t.Fatal(err)
	}
	if !s.Fresh {
		t.Error("the warm-up's ledger entry was kept")
	}
	s.Close()
}

// Every connection runs the warmers exactly once: those the pool opened
// before they were registered when Warm meets them, the rest as the pool
// opens them, including connections opened long after start-up.
func TestWarmupRunsOncePerConnection(t *testing.T) {
	ctx := context.Background()
	warmup := &store.Warmup{}
	pool, err := store.Open(ctx, testinfra.NewDatabase(t), 3, false, warmup)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	var ran atomic.Int32
	var mu sync.Mutex // the pool opens its minimum connections in the background
	pids := map[uint32]int{}
	warmup.Add(func(ctx context.Context, tx pgx.Tx) error {
		ran.Add(1)
		mu.Lock()
		pids[tx.Conn().PgConn().PID()]++
		mu.Unlock()
		_, err := tx.Exec(ctx, `SELECT pg_advisory_lock(pg_backend_pid())`) // left for the warm-up to release
		return err
	})
	if err := store.Warm(ctx, pool, 5, warmup); err != nil { // capped at the pool's 3
		t.Fatal(err)
	}
	if got := ran.Load(); got != 3 {
		t.Errorf("warmers ran %d times for 3 connections", got)
	}
	mu.Lock()
	for pid, n := range pids {
		if n != 1 {
			t.Errorf("connection %d warmed %d times", pid, n)
		}
	}
	mu.Unlock()
	// Warming again finds every connection warm.
	if err := store.Warm(ctx, pool, 3, warmup); err != nil {
		t.Fatal(err)
	}
	if got := ran.Load(); got != 3 {
		t.Errorf("warmers ran %d times after a second Warm, want still 3", got)
	}
	// A connection the pool opens later is warmed before it is used.
	pool.Reset()
	var held int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()`).Scan(&held); err != nil {
		t.Fatal(err)
	}
	if got := ran.Load(); got < 4 {
		t.Errorf("warmers ran %d times: the new connection was not warmed", got)
	}
	if held != 0 {
		t.Errorf("a warmed connection holds %d advisory locks", held)
	}
}

// A warmer that cannot run fails the start-up with its cause.
func TestWarmFailsOnABadStatement(t *testing.T) {
	ctx := context.Background()
	warmup := &store.Warmup{}
	pool, err := store.Open(ctx, testinfra.NewDatabase(t), 2, false, warmup)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	warmup.Add(func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `SELECT * FROM pipeline.no_such_table`)
		return err
	})
	err = store.Warm(ctx, pool, 2, warmup)
	if err == nil || !strings.Contains(err.Error(), "42P01") {
		t.Fatalf("Warm = %v, want the undefined-table error", err)
	}
	// The pool still serves: the failed connection was not handed back broken.
	var one int
	if err := pool.QueryRow(ctx, `SELECT 1`).Scan(&one); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("pool after a failed warm-up: %v", err)
	}
}
