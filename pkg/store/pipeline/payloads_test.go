package pipeline_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/leadflow/leadflow/pkg/backbone/failure"
	"github.com/leadflow/leadflow/pkg/clients/httpx"
	"github.com/leadflow/leadflow/pkg/clients/httpx/httpxtest"
	"github.com/leadflow/leadflow/pkg/enrichment"
	"github.com/leadflow/leadflow/pkg/store"
	"github.com/leadflow/leadflow/pkg/store/pipeline"
	"github.com/leadflow/leadflow/pkg/testinfra"
)

const cpf = "31860457207"

func newPayloads(t *testing.T, maxPerDay int) (*pipeline.Payloads, *int) {
	t.Helper()
	ctx := context.Background()
	// store.Open, as the services open theirs: its pool counts round trips.
	pool, err := store.Open(ctx, testinfra.NewDatabase(t), 8, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := store.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	calls := 0
	return pipeline.NewPayloads(pool, 0, maxPerDay, enrichment.Charge), &calls
}

func payWith(calls *int, raw string, err error) func(context.Context) (json.RawMessage, error) {
	return func(context.Context) (json.RawMessage, error) {
		*calls++
		if err != nil {
			return nil, err
		}
		return json.RawMessage(raw), nil
	}
}

func statuses(t *testing.T, p *pipeline.Payloads) string {
	t.Helper()
	var s string
	if err := p.Pool.QueryRow(context.Background(), `SELECT coalesce(string_agg(status, ',' ORDER BY attempt_id), '') FROM pipeline.workapi_attempts WHERE cpf = $1`, cpf).Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

var person = `{"DadosBasicos":{"cpf":"31860457207","nome":"X"}}`

// A lost reply was charged: it is on record, and only it is repeated.
func TestLostReplyIsChargedAndRepeatedOnce(t *testing.T) {
	p, calls := newPayloads(t, 5)
	ctx := context.Background()
	reuse := pipeline.Reuse{MaxAge: time.Hour}
	_, _, err := p.Fetch(ctx, cpf, reuse, payWith(calls, "", failure.Transient("workapi.cpf", context.DeadlineExceeded)))
	if !failure.Is(err, failure.KindTransient) {
		t.Fatalf("lost reply: err %v, want transient", err)
	}
	raw, paid, err := p.Fetch(ctx, cpf, reuse, payWith(calls, person, nil))
	if err != nil || !paid || string(raw) != person {
		t.Fatalf("second try: %s %v %v", raw, paid, err)
	}
	if _, paid, err := p.Fetch(ctx, cpf, reuse, payWith(calls, person, nil)); err != nil || paid {
		t.Fatalf("third fetch paid=%v err=%v, want the stored payload", paid, err)
	}
	if *calls != 2 || statuses(t, p) != "lost,answered" {
		t.Fatalf("%d calls, attempts %q; want 2 and lost,answered", *calls, statuses(t, p))
	}
	if n, _ := p.Attempts(ctx, cpf); n != 2 {
		t.Fatalf("%d charged attempts, want 2", n)
	}
}

// A call that never reached the API costs nothing and does not count
// toward the cap; charged attempts past the cap are refused before paying.
func TestCapCountsOnlyChargedAttempts(t *testing.T) {
	p, calls := newPayloads(t, 2)
	ctx := context.Background()
	reuse := pipeline.Reuse{MaxAge: time.Hour}
	for range 3 {
		_, _, err := p.Fetch(ctx, cpf, reuse, payWith(calls, "", failure.Transient("workapi.cpf", httpx.ErrBreakerOpen)))
		if !failure.Is(err, failure.KindTransient) {
			t.Fatal(err)
		}
	}
	for range 2 {
		_, _, _ = p.Fetch(ctx, cpf, reuse, payWith(calls, "", failure.Transient("workapi.cpf", errors.New("502"))))
	}
	_, _, err := p.Fetch(ctx, cpf, reuse, payWith(calls, person, nil))
	if !errors.Is(err, pipeline.ErrPaidAttemptsExhausted) || failure.ShouldNack(err) {
		t.Fatalf("past the cap: err %v, want a permanent ErrPaidAttemptsExhausted", err)
	}
	if *calls != 5 || statuses(t, p) != "not_charged,not_charged,not_charged,lost,lost" {
		t.Fatalf("%d calls, attempts %q", *calls, statuses(t, p))
	}
}

// An attempt whose process died (still "started") was charged.
func TestStartedAttemptCountsAsCharged(t *testing.T) {
	p, calls := newPayloads(t, 1)
	ctx := context.Background()
	if _, err := p.Pool.Exec(ctx, `INSERT INTO pipeline.workapi_attempts (cpf) VALUES ($1)`, cpf); err != nil {
		t.Fatal(err)
	}
	_, _, err := p.Fetch(ctx, cpf, pipeline.Reuse{MaxAge: time.Hour}, payWith(calls, person, nil))
	if !errors.Is(err, pipeline.ErrPaidAttemptsExhausted) || *calls != 0 {
		t.Fatalf("err %v after %d calls, want the cap before paying", err, *calls)
	}
}

// "Nobody" was an answer: it is reused like a payload, not paid again.
func TestNotFoundIsRemembered(t *testing.T) {
	p, calls := newPayloads(t, 5)
	ctx := context.Background()
	reuse := pipeline.Reuse{MaxAge: time.Hour}
	for range 2 {
		_, _, err := p.Fetch(ctx, cpf, reuse, payWith(calls, "", failure.NotFound("workapi.cpf")))
		if !failure.Is(err, failure.KindNotFound) {
			t.Fatalf("err %v, want not found", err)
		}
	}
	if *calls != 1 || statuses(t, p) != "not_found" {
		t.Fatalf("%d calls, attempts %q; want 1 and not_found", *calls, statuses(t, p))
	}
}

// A refresh is done once a payload was fetched after it began: its
// redelivery reuses that payload.
func TestRefreshPaysOncePerRefresh(t *testing.T) {
	p, calls := newPayloads(t, 5)
	ctx := context.Background()
	if _, _, err := p.Fetch(ctx, cpf, pipeline.Reuse{MaxAge: time.Hour}, payWith(calls, person, nil)); err != nil {
		t.Fatal(err)
	}
	var dbNow time.Time
	if err := p.Pool.QueryRow(ctx, `SELECT now()`).Scan(&dbNow); err != nil {
		t.Fatal(err)
	}
	refresh := pipeline.Reuse{FetchedAfter: dbNow}
	for i := range 3 {
		_, paid, err := p.Fetch(ctx, cpf, refresh, payWith(calls, person, nil))
		if err != nil || paid != (i == 0) {
			t.Fatalf("refresh delivery %d: paid=%v err=%v", i, paid, err)
		}
	}
	if *calls != 2 {
		t.Fatalf("%d calls, want 2 (the first fetch and one refresh)", *calls)
	}
}

// Any JSON the API returns is stored, including what jsonb refuses as sent;
// a reply that is not JSON at all is a storage failure, never "no data".
func TestEveryJSONIsStorable(t *testing.T) {
	p, calls := newPayloads(t, 5)
	ctx := context.Background()
	odd := `{"DadosBasicos":{"cpf":"31860457207","nome":"A\ud800B\u0000"}}`
	raw, paid, err := p.Fetch(ctx, cpf, pipeline.Reuse{MaxAge: time.Hour}, payWith(calls, odd, nil))
	if err != nil || !paid || !json.Valid(raw) {
		t.Fatalf("odd payload: %s %v %v", raw, paid, err)
	}
	_, _, err = p.Fetch(ctx, "52998224725", pipeline.Reuse{MaxAge: time.Hour}, payWith(calls, `{"cut":`, nil))
	if err == nil || failure.Is(err, failure.KindNotFound) {
		t.Fatalf("unstorable reply: err %v, want a storage failure", err)
	}
}

// Waiting for a paid-call slot is pacing: when the try's time runs out in
// the queue, the error is a wait (same delivery), not a failure.
func TestWaitingForASlotIsAWait(t *testing.T) {
	pool := testinfra.NewPool(t, testinfra.NewDatabase(t))
	if err := store.Migrate(context.Background(), pool); err != nil {
		t.Fatal(err)
	}
	p := pipeline.NewPayloads(pool, 1, 5, enrichment.Charge)
	holding, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, _, err := p.Fetch(context.Background(), cpf, pipeline.Reuse{}, func(context.Context) (json.RawMessage, error) {
			close(holding)
			<-release
			return json.RawMessage(person), nil
		})
		done <- err
	}()
	<-holding
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	calls := 0
	_, _, err := p.Fetch(ctx, "52998224725", pipeline.Reuse{}, payWith(&calls, person, nil))
	close(release)
	if !failure.ShouldWait(err) {
		t.Fatalf("err %v (%s): waiting for a slot must be a wait", err, failure.KindOf(err))
	}
	if calls != 0 {
		t.Fatalf("%d calls without a slot", calls)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// roundTrips reads the process's Postgres round trips (every pool).
func roundTrips(reg prometheus.Gatherer) float64 {
	return httpxtest.CounterValue(reg, "leadflow_postgres_round_trips_total", nil)
}

// A CPF new to the records (Reuse.New) is claimed without the look-up
// first: one round trip less when nothing is stored. When something is
// stored after all, the claim finds it: reused, not paid, no attempt.
func TestNewCPFSkipsTheLookUpAndStillPaysOnce(t *testing.T) {
	p, calls := newPayloads(t, 5)
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	reg.MustRegister(store.NewPoolCollector(p.Pool))
	fetch := func(reuse pipeline.Reuse, c string) (trips float64, paid bool) {
		t.Helper()
		before := roundTrips(reg)
		raw, paid, err := p.Fetch(ctx, c, reuse, payWith(calls, `{"DadosBasicos":{"cpf":"`+c+`","nome":"X"}}`, nil))
		if err != nil || len(raw) == 0 {
			t.Fatalf("fetch %s: %s %v", c, raw, err)
		}
		return roundTrips(reg) - before, paid
	}
	const other = "52998224725"
	old, _ := fetch(pipeline.Reuse{MaxAge: time.Hour}, other)
	fresh, paid := fetch(pipeline.Reuse{MaxAge: time.Hour, New: true}, cpf)
	if !paid || fresh != old-1 {
		t.Fatalf("nothing stored: New took %v round trips (paid %v), the look-up first %v; want one less, paid", fresh, paid, old)
	}
	again, paid := fetch(pipeline.Reuse{MaxAge: time.Hour, New: true}, cpf)
	if paid || *calls != 2 || statuses(t, p) != "answered" {
		t.Fatalf("stored: paid %v, %d calls, attempts %q; want the stored payload, 2 calls, answered", paid, *calls, statuses(t, p))
	}
	if reused, _ := fetch(pipeline.Reuse{MaxAge: time.Hour}, cpf); again != reused+1 {
		t.Fatalf("stored: New took %v round trips, the look-up %v; want the claim and its release", again, reused)
	}
}

// A held claim's payload stored in the caller's transaction and stored
// again by Close (the caller never heard its COMMIT's answer) is stored
// once; the claim blocks other holders until it is released.
func TestHeldClaimStoresOnce(t *testing.T) {
	p, calls := newPayloads(t, 5)
	ctx := context.Background()
	raw, claim, err := p.FetchHeld(ctx, cpf, pipeline.Reuse{MaxAge: time.Hour, New: true}, payWith(calls, person, nil))
	if err != nil || claim == nil || string(raw) != person {
		t.Fatalf("FetchHeld: %s %v %v, want the paid payload under a claim", raw, claim, err)
	}
	free := func() bool {
		var ok bool
		if err := p.Pool.QueryRow(ctx, `SELECT pg_try_advisory_lock(hashtextextended('workapi:' || $1::text, 0))`, cpf).Scan(&ok); err != nil {
			t.Fatal(err)
		}
		if ok {
			if _, err := p.Pool.Exec(ctx, `SELECT pg_advisory_unlock(hashtextextended('workapi:' || $1::text, 0))`, cpf); err != nil {
				t.Fatal(err)
			}
		}
		return ok
	}
	if free() {
		t.Fatal("the claim is free while held")
	}
	if statuses(t, p) != "started" {
		t.Fatalf("attempts %q before the store, want started", statuses(t, p))
	}
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	claim.QueueStore(b)
	b.Queue("COMMIT")
	claim.QueueRelease(b)
	if err := claim.Conn().SendBatch(ctx, b).Close(); err != nil {
		t.Fatal(err)
	}
	// Neither Stored nor Released: Close sends the store again.
	if err := claim.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := claim.Close(ctx); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	var fetches int
	if err := p.Pool.QueryRow(ctx, `SELECT fetch_count FROM pipeline.workapi_payloads WHERE cpf = $1`, cpf).Scan(&fetches); err != nil {
		t.Fatal(err)
	}
	if fetches != 1 || statuses(t, p) != "answered" || *calls != 1 {
		t.Fatalf("fetch_count %d, attempts %q, %d calls; want 1, answered, 1", fetches, statuses(t, p), *calls)
	}
	if !free() {
		t.Fatal("the claim is still held after Close")
	}
}
