package service_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/leadflow/leadflow/pkg/backbone/failure"
	"github.com/leadflow/leadflow/pkg/clients/httpx/httpxtest"
	"github.com/leadflow/leadflow/pkg/sim"
	"github.com/leadflow/leadflow/pkg/store"
)

// A person paid for just now costs the enricher two round trips: the claim
// (lock, cap, attempt), then one batch with the payload, the persons, the
// trace step and the claim's release. The payload is stored, the attempt
// answered and the claim free afterwards.
func TestPaidPersonTakesTwoRoundTrips(t *testing.T) {
	r := newRig(t, sim.Config{})
	e := r.newInstance(t, instanceOptions{ttl: 24 * time.Hour})
	reg := prometheus.NewRegistry()
	reg.MustRegister(store.NewPoolCollector(r.pool))
	env, in := resolved(t, leadID(t.Name()), false, false, helenaByPhone)
	before := httpxtest.CounterValue(reg, "leadflow_postgres_round_trips_total", nil)
	if err := e.Handle(context.Background(), env, in); err != nil {
		t.Fatal(err)
	}
	if trips := httpxtest.CounterValue(reg, "leadflow_postgres_round_trips_total", nil) - before; trips != 2 {
		t.Fatalf("%v Postgres round trips for one paid person, want 2", trips)
	}
	if got := r.count(t, `SELECT count(*) FROM pipeline.workapi_payloads WHERE cpf = $1`, sim.HelenaCPF); got != 1 {
		t.Fatalf("%d stored payloads, want 1", got)
	}
	if got := r.count(t, `SELECT count(*) FROM pipeline.workapi_attempts WHERE cpf = $1 AND status = 'answered'`, sim.HelenaCPF); got != 1 {
		t.Fatalf("%d answered attempts, want 1", got)
	}
	if got := r.count(t, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`); got != 0 {
		t.Fatalf("%d advisory locks still held, want the claim released", got)
	}
}

// When the persons' transaction fails after the payment, the payload is
// stored on its own all the same: the retry reuses it and pays nothing.
func TestPersonsWriteFailureKeepsThePaidPayload(t *testing.T) {
	r := newRig(t, sim.Config{})
	e := r.newInstance(t, instanceOptions{ttl: 24 * time.Hour})
	ctx := context.Background()
	// The first core.entities insert fails as a serialization failure
	// (transient); a sequence is not rolled back, so only the first does.
	if _, err := r.pool.Exec(ctx, `CREATE SEQUENCE fail_once;
		CREATE FUNCTION fail_once() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF nextval('fail_once') = 1 THEN
				RAISE EXCEPTION 'injected' USING ERRCODE = '40001';
			END IF;
			RETURN NEW;
		END $$;
		CREATE TRIGGER fail_once BEFORE INSERT ON core.entities FOR EACH ROW EXECUTE FUNCTION fail_once()`); err != nil {
		t.Fatal(err)
	}
	env, in := resolved(t, leadID(t.Name()), false, false, helenaByPhone)
	err := e.Handle(ctx, env, in)
	if !failure.Is(err, failure.KindTransient) {
		t.Fatalf("first try: %v, want a transient failure", err)
	}
	if got := r.count(t, `SELECT count(*) FROM pipeline.workapi_payloads WHERE cpf = $1`, sim.HelenaCPF); got != 1 {
		t.Fatalf("after the failed write: %d stored payloads, want the paid one", got)
	}
	if got := r.count(t, `SELECT count(*) FROM core.entities`); got != 0 {
		t.Fatalf("after the failed write: %d entities, want none", got)
	}
	if got := r.count(t, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`); got != 0 {
		t.Fatalf("%d advisory locks still held after the failure, want the claim released", got)
	}
	if err := e.Handle(ctx, env, in); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if got := r.sims.WorkAPI.PaidCalls(sim.HelenaCPF); got != 1 {
		t.Fatalf("%d paid calls, want 1: the retry must reuse the stored payload", got)
	}
	if got := r.count(t, `SELECT count(*) FROM core.entities WHERE national_id = $1`, sim.HelenaCPF); got != 1 {
		t.Fatalf("%d entities after the retry, want 1", got)
	}
	if got := r.count(t, `SELECT fetch_count FROM pipeline.workapi_payloads WHERE cpf = $1`, sim.HelenaCPF); got != 1 {
		t.Fatalf("fetch_count %d, want 1 (stored once)", got)
	}
}
