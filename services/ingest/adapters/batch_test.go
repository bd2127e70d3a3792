package adapters

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
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
	h := holdFlush(t)
	const later = 20
	for i := range later {
		h.add(fmt.Sprintf("lead-%02d", i), `{}`)
	}
	h.add("lead-07", `{}`) // the same event twice in one batch
	answers := h.release(later + 1)

	if got := h.trips() - h.before; got != 2 {
		t.Fatalf("%v round trips for a held flush and %d receipts waiting behind it, want 2 (one each)", got, later+1)
	}
	freshOf := map[string]int{}
	for _, a := range answers {
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
	if rows := h.stored(); rows != later+1 {
		t.Fatalf("%d receipts stored, want %d", rows, later+1)
	}
}

// A receipt Postgres refuses fails only itself: its batch is written again
// one receipt at a time, the others are stored and answered fresh, and the
// refused one gets its error.
func TestARefusedReceiptFailsOnlyItself(t *testing.T) {
	h := holdFlush(t)
	h.add("good-1", `{}`)
	h.add("bad", `{"not json`)
	h.add("good-2", `{"a":1}`)
	got := map[string]answer{}
	for _, a := range h.release(3) {
		got[a.lead] = a
	}
	for _, lead := range []string{"first", "good-1", "good-2"} {
		if a := got[lead]; a.err != nil || !a.fresh {
			t.Errorf("%s: fresh %v, err %v; want stored and fresh", lead, a.fresh, a.err)
		}
	}
	if a := got["bad"]; a.err == nil || a.fresh {
		t.Errorf("bad: fresh %v, err %v; want its own error", a.fresh, a.err)
	}
	if rows := h.stored(); rows != 3 {
		t.Fatalf("%d receipts stored, want 3", rows)
	}
}

type answer struct {
	lead  string
	fresh bool
	err   error
}

// heldFlush is batched Receipts whose first flush (receipt "first") waits
// for a table lock the test holds, so that the receipts added next queue
// behind it.
type heldFlush struct {
	t       *testing.T
	pool    *pgxpool.Pool
	r       Receipts
	unlock  func() error
	answers chan answer
	trips   func() float64
	before  float64 // round trips before the first receipt
}

func holdFlush(t *testing.T) *heldFlush {
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
	h := &heldFlush{t: t, pool: pool, r: NewReceipts(pool), unlock: testinfra.HoldTable(t, db, "pipeline.webhook_receipts"),
		answers: make(chan answer, 128),
		trips:   func() float64 { return httpxtest.CounterValue(reg, "leadflow_postgres_round_trips_total", nil) }}
	h.before = h.trips()
	h.add("first", `{}`)
	testinfra.WaitForLockWaits(t, db, 1) // the first flush
	return h
}

func (h *heldFlush) add(lead, payload string) {
	go func() {
		fresh, err := h.r.AddReceipt(context.Background(), app.Receipt{LeadID: lead, UpdatedKey: "k", Action: "on_create_lead",
			Status: app.StatusRecorded, Payload: []byte(payload)}, nil)
		h.answers <- answer{lead, fresh, err}
	}()
}

// release waits until the queued receipts are all waiting behind the held
// flush, lets it go, and returns every answer (the first one's included).
func (h *heldFlush) release(queued int) []answer {
	h.t.Helper()
	testinfra.WaitFor(h.t, "the receipts to queue", func() bool { return h.r.group.Waiting() == queued })
	if err := h.unlock(); err != nil {
		h.t.Fatal(err)
	}
	out := make([]answer, 0, queued+1)
	for range queued + 1 {
		out = append(out, <-h.answers)
	}
	return out
}

func (h *heldFlush) stored() int {
	var rows int
	if err := h.pool.QueryRow(context.Background(), `SELECT count(*) FROM pipeline.webhook_receipts WHERE updated_key = 'k'`).Scan(&rows); err != nil {
		h.t.Fatal(err)
	}
	return rows
}
