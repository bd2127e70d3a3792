package store

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/leadflow/leadflow/pkg/testinfra"
)

// Batches sent while a shared transaction is in flight wait for it and then
// go together: one round trip for all of them, every row written, and each
// caller's callbacks run with its own results.
func TestGroupSendsTheBatchesWaitingDuringAFlushTogether(t *testing.T) {
	h := holdGroup(t)
	const later = 20
	for i := range later {
		h.send(fmt.Sprintf("k%02d", i), 1)
	}
	h.send("k07", 1) // the same key twice: the second adds to the first
	answers := h.release(later + 1)

	if got := roundTrips.Load() - h.before; got != 2 {
		t.Fatalf("%d round trips for a held flush and %d batches behind it, want 2", got, later+1)
	}
	for _, a := range answers {
		if a.err != nil {
			t.Fatalf("%s: %v", a.key, a.err)
		}
		if a.affected != 1 {
			t.Fatalf("%s: its callback saw %d rows, want its own 1", a.key, a.affected)
		}
	}
	if n, sum := h.rows(); n != later+1 || sum != later+2 {
		t.Fatalf("%d rows summing %d, want %d rows summing %d", n, sum, later+1, later+2)
	}
}

// A batch Postgres refuses fails only itself: the shared transaction is
// written again one batch at a time, the others are stored, and the
// refused one gets Postgres's error.
func TestGroupARefusedBatchFailsOnlyItself(t *testing.T) {
	h := holdGroup(t)
	h.send("good-1", 1)
	h.send("bad", -1) // the table's CHECK refuses it
	h.send("good-2", 1)
	got := map[string]groupAnswer{}
	for _, a := range h.release(3) {
		got[a.key] = a
	}
	for _, k := range []string{"first", "good-1", "good-2"} {
		if a := got[k]; a.err != nil || a.affected != 1 {
			t.Errorf("%s: %d rows, err %v; want stored", k, a.affected, a.err)
		}
	}
	var pgErr *pgconn.PgError
	if a := got["bad"]; !errors.As(a.err, &pgErr) || pgErr.Code != "23514" {
		t.Errorf("bad: err %v, want its check violation", a.err)
	}
	if n, _ := h.rows(); n != 3 {
		t.Fatalf("%d rows, want 3", n)
	}
}

// A caller whose context ends while its batch waits gets the context's
// error at once, without waiting for the transaction ahead.
func TestGroupSendReturnsWhenItsContextEnds(t *testing.T) {
	h := holdGroup(t)
	ctx, cancel := context.WithCancel(context.Background())
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO g (k, v) VALUES ('late', 1)`)
	errc := make(chan error, 1)
	go func() { errc <- h.g.Send(ctx, "late", b) }()
	testinfra.WaitFor(t, "the batch to queue", func() bool { return h.g.Waiting() == 1 })
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Send: %v, want context.Canceled", err)
	}
	if err := h.unlock(); err != nil {
		t.Fatal(err)
	}
	if a := <-h.answers; a.err != nil {
		t.Fatalf("first: %v", a.err)
	}
}

type groupAnswer struct {
	key      string
	affected int64
	err      error
}

// heldGroup is a Group whose first transaction (key "first") waits for a
// table lock the test holds, so that the batches sent next queue behind it.
type heldGroup struct {
	t       *testing.T
	pool    *pgxpool.Pool
	g       *Group
	unlock  func() error
	answers chan groupAnswer
	before  int64 // round trips before the first batch
}

func holdGroup(t *testing.T) *heldGroup {
	ctx := context.Background()
	db := testinfra.NewDatabase(t)
	pool, err := Open(ctx, db, 4, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if _, err := pool.Exec(ctx, `CREATE TABLE g (k text PRIMARY KEY, v int NOT NULL CHECK (v > 0))`); err != nil {
		t.Fatal(err)
	}
	h := &heldGroup{t: t, pool: pool, g: NewGroup(pool, 64), unlock: testinfra.HoldTable(t, db, "g"),
		answers: make(chan groupAnswer, 128), before: roundTrips.Load()}
	h.send("first", 1)
	testinfra.WaitForLockWaits(t, db, 1) // the first transaction
	return h
}

// send writes key with v (added to the row when key exists) and reports
// the rows its own statement touched, as its callback saw them.
func (h *heldGroup) send(key string, v int) {
	go func() {
		a := groupAnswer{key: key}
		b := &pgx.Batch{}
		b.Queue(`INSERT INTO g (k, v) VALUES ($1, $2) ON CONFLICT (k) DO UPDATE SET v = g.v + EXCLUDED.v`, key, v).
			Exec(func(ct pgconn.CommandTag) error { a.affected = ct.RowsAffected(); return nil })
		a.err = h.g.Send(context.Background(), key, b)
		h.answers <- a
	}()
}

// release waits until queued batches wait behind the held transaction, lets
// it go, and returns every answer (the first one's included).
func (h *heldGroup) release(queued int) []groupAnswer {
	h.t.Helper()
	testinfra.WaitFor(h.t, "the batches to queue", func() bool { return h.g.Waiting() == queued })
	if err := h.unlock(); err != nil {
		h.t.Fatal(err)
	}
	out := make([]groupAnswer, 0, queued+1)
	for range queued + 1 {
		out = append(out, <-h.answers)
	}
	return out
}

func (h *heldGroup) rows() (n, sum int) {
	if err := h.pool.QueryRow(context.Background(), `SELECT count(*), COALESCE(sum(v), 0) FROM g`).Scan(&n, &sum); err != nil {
		h.t.Fatal(err)
	}
	return n, sum
}
