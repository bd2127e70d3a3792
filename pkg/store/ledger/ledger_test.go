package ledger_test

import (
	"context"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/leadflow/leadflow/pkg/backbone/failure"
	"github.com/leadflow/leadflow/pkg/store"
	"github.com/leadflow/leadflow/pkg/store/ledger"
	"github.com/leadflow/leadflow/pkg/testinfra"
)

func newPool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	pool := testinfra.NewPool(t, testinfra.NewDatabase(t))
	if err := store.Migrate(context.Background(), pool); err != nil {
		t.Fatal(err)
	}
	return pool
}

func TestSessionLifecycle(t *testing.T) {
	ctx := context.Background()
	pool := newPool(t)
	key := ledger.Key{LeadID: "L1", RunKey: "run1", Stage: ledger.StageEnriched}
	s, err := ledger.Open(ctx, pool, key, "run1", "hash-a")
	if err != nil {
		t.Fatal(err)
	}
	if s.Entry.Status != ledger.StatusPending || s.Entry.MessageHash != "hash-a" || s.Entry.Attempts != 0 {
		t.Fatalf("new entry = %+v", s.Entry)
	}
	if err := s.Posting(ctx, "hash-a"); err != nil {
		t.Fatal(err)
	}
	s.Close() // a crash after the post: the end is never recorded

	// The same event with another text (a formatter change) finds the row.
	s, err = ledger.Open(ctx, pool, key, "run1", "hash-b")
	if err != nil {
		t.Fatal(err)
	}
	if s.Entry.Status != ledger.StatusPosting || s.Entry.MessageHash != "hash-a" || s.Entry.Attempts != 1 {
		t.Fatalf("reopened entry = %+v, want posting with the first text's hash", s.Entry)
	}
	if err := s.Uncertain(ctx, "gateway"); err != nil {
		t.Fatal(err)
	}
	if err := s.Finish(ctx, ledger.StatusUncertain, "", "uncertain delivery"); err != nil {
		t.Fatal(err)
	}
	s.Close() // harmless after Finish
	open, err := ledger.ListOpen(ctx, pool, "")
	if err != nil || len(open) != 1 || open[0].Status != ledger.StatusUncertain || open[0].Route != "gateway" || open[0].Reason != "uncertain delivery" {
		t.Fatalf("open = %+v, %v", open, err)
	}
	if n, err := ledger.CountUncertain(ctx, pool); err != nil || n != 1 {
		t.Fatalf("count = %d, %v", n, err)
	}
	// Operators name the delivery by lead and run.
	s, err = ledger.OpenRun(ctx, pool, "L1", "run1")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Finish(ctx, ledger.StatusSent, "", "confirmed"); err != nil {
		t.Fatal(err)
	}
	e, err := ledger.Get(ctx, pool, "L1", "run1")
	if err != nil || e.Status != ledger.StatusSent || e.SentAt == nil || e.Route != "gateway" {
		t.Fatalf("entry = %+v, %v", e, err)
	}
	if _, err := ledger.OpenRun(ctx, pool, "L1", "nope"); !failure.Is(err, failure.KindNotFound) {
		t.Fatalf("unknown run: %v", err)
	}
	if open, _ := ledger.ListOpen(ctx, pool, ""); len(open) != 0 {
		t.Fatalf("still open: %+v", open)
	}
}

// TestOneSectionPerLead: sessions on one lead never overlap, and a session
// whose connection dies releases the lead.
func TestOneSectionPerLead(t *testing.T) {
	ctx := context.Background()
	pool := newPool(t)
	var inside, overlaps atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 6; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := ledger.Open(ctx, pool, ledger.Key{LeadID: "L1", RunKey: "r", Stage: ledger.StageEnriched}, "r", "h")
			if err != nil {
				t.Error(err)
				return
			}
			if inside.Add(1) > 1 {
				overlaps.Add(1)
			}
			time.Sleep(20 * time.Millisecond)
			inside.Add(-1)
			_ = s.Finish(ctx, ledger.StatusPending, "", "")
		}()
	}
	wg.Wait()
	if overlaps.Load() != 0 {
		t.Fatalf("%d overlapping sections on one lead", overlaps.Load())
	}
}

// TestLegacyRowsMigrate: rows keyed by the text hash become rows keyed by
// the event; an unfinished one is checked before posting again, and two rows
// of one event (a formatter change) become one, the sent one.
func TestLegacyRowsMigrate(t *testing.T) {
	ctx := context.Background()
	pool := testinfra.NewPool(t, testinfra.NewDatabase(t))
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, db, os.DirFS("../migrations"), goose.WithTableName("pipeline_goose_version"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(ctx, 2); err != nil {
		t.Fatal(err)
	}
	_, err = pool.Exec(ctx, `INSERT INTO pipeline.lead_stages (event_id, run_id, lead_id, stage, outcome) VALUES ('e', 'run3', 'L3', 'unresolved', 'nobody');
		INSERT INTO pipeline.notifications (lead_id, message_hash, replay_key, run_id, status, attempts, created_at) VALUES
		('L1', 'h1', '', 'run1', 'sent', 1, now() - interval '2 hours'),
		('L1', 'h2', '', 'run1', 'pending', 2, now() - interval '1 hour'),
		('L2', 'h3', 'rp-1', 'run2', 'pending', 1, now()),
		('L3', 'h4', '', 'run3', 'sent', 1, now())`)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Up(ctx); err != nil {
		t.Fatal(err)
	}
	for _, want := range []ledger.Entry{
		{LeadID: "L1", RunKey: "run1", Stage: "enriched", Status: "sent", MessageHash: "h1"},
		{LeadID: "L2", RunKey: "rp-1", Stage: "enriched", Status: "posting", MessageHash: "h3"},
		{LeadID: "L3", RunKey: "run3", Stage: "unresolved", Status: "sent", MessageHash: "h4"},
	} {
		e, err := ledger.Get(ctx, pool, want.LeadID, want.RunKey)
		if err != nil || e.RunKey != want.RunKey || e.Stage != want.Stage || e.Status != want.Status || e.MessageHash != want.MessageHash {
			t.Errorf("%s: %+v, %v; want %+v", want.LeadID, e, err, want)
		}
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM pipeline.notifications`).Scan(&n); err != nil || n != 3 {
		t.Fatalf("%d rows, want 3", n)
	}
	if _, err := p.DownTo(ctx, 2); err != nil {
		t.Fatalf("down: %v", err)
	}
}

// TestBeginRecordsPosting: a new delivery is created already posting (the
// first attempt is on record before the post), an existing one is read as
// it is; FinishWith commits the caller's statements with the end, and when
// they fail the end is still recorded on its own.
func TestBeginRecordsPosting(t *testing.T) {
	ctx := context.Background()
	pool := newPool(t)
	key := ledger.Key{LeadID: "L1", RunKey: "run1", Stage: ledger.StageEnriched}
	s, err := ledger.Begin(ctx, pool, key, "run1", "hash-a")
	if err != nil {
		t.Fatal(err)
	}
	if !s.Fresh || s.Entry.Status != ledger.StatusPosting || s.Entry.Attempts != 1 || s.Entry.MessageHash != "hash-a" {
		t.Fatalf("new entry = %+v (fresh %v)", s.Entry, s.Fresh)
	}
	s.Close() // a crash after the post
	s, err = ledger.Begin(ctx, pool, key, "run1", "hash-b")
	if err != nil {
		t.Fatal(err)
	}
	if s.Fresh || s.Entry.Status != ledger.StatusPosting || s.Entry.Attempts != 1 || s.Entry.MessageHash != "hash-a" {
		t.Fatalf("reopened entry = %+v (fresh %v)", s.Entry, s.Fresh)
	}
	done, err := s.FinishWith(ctx, ledger.StatusSent, "direct", "", func(b *pgx.Batch) {
		b.Queue(`SELECT 1/0`) // the caller's statement fails
	})
	if err != nil || done {
		t.Fatalf("finish with a failing statement: done %v, %v", done, err)
	}
	if e, err := ledger.Get(ctx, pool, "L1", "run1"); err != nil || e.Status != ledger.StatusSent || e.Route != "direct" {
		t.Fatalf("entry = %+v, %v", e, err)
	}
	// The lead was released.
	s, err = ledger.Begin(ctx, pool, ledger.Key{LeadID: "L1", RunKey: "run2", Stage: ledger.StageEnriched}, "run2", "h")
	if err != nil {
		t.Fatal(err)
	}
	done, err = s.FinishWith(ctx, ledger.StatusSent, "gateway", "", func(b *pgx.Batch) {
		b.Queue(`INSERT INTO pipeline.lead_stages (event_id, run_id, lead_id, stage, outcome) VALUES ('e2', 'run2', 'L1', 'notified', 'sent')`)
	})
	if err != nil || !done {
		t.Fatalf("finish: done %v, %v", done, err)
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM pipeline.lead_stages WHERE event_id = 'e2'`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("step rows = %d, %v", n, err)
	}
}
