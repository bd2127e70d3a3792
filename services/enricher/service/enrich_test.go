package service_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/leadflow/leadflow/pkg/backbone/events"
	"github.com/leadflow/leadflow/pkg/backbone/failure"
	"github.com/leadflow/leadflow/pkg/clients/httpx/httpxtest"
	"github.com/leadflow/leadflow/pkg/contracts"
	"github.com/leadflow/leadflow/pkg/domain/person"
	"github.com/leadflow/leadflow/pkg/enrichment"
	"github.com/leadflow/leadflow/pkg/sim"
)

const (
	metricPaid    = "leadflow_workapi_paid_calls_total"
	metricReused  = "leadflow_workapi_reused_total"
	metricToken   = "leadflow_workapi_token_invalid_total"
	metricCredits = "leadflow_workapi_credits_exhausted_total"
)

// TestEnrichedEventCarriesWhatTheNotifierNeeds: a two-people lead pays once
// per CPF, writes both persons, and publishes a lead.enriched event from
// which the notifier renders the contract message without calling anything.
func TestEnrichedEventCarriesWhatTheNotifierNeeds(t *testing.T) {
	r := newRig(t, sim.Config{})
	e := r.newInstance(t, instanceOptions{ttl: 24 * time.Hour})
	lead := leadID(t.Name())
	env, in := resolved(t, lead, false, false, helenaByPhone, otavioByEmail)
	in.Phone, in.Email = "5511987650123", "Helena.Duarte@Example.com" // as MESSAGE.md's different_people case
	if err := e.Handle(context.Background(), env, in); err != nil {
		t.Fatal(err)
	}

	out := r.enrichedOf(t, lead)
	if len(out.Persons) != 2 || len(out.Skipped) != 0 {
		t.Fatalf("enriched %d persons, skipped %d; want 2 and 0", len(out.Persons), len(out.Skipped))
	}
	for i, want := range []struct {
		cpf  string
		role events.Role
		file string
	}{{sim.HelenaCPF, events.RolePhone, "workapi/cpf.json"}, {sim.OtavioCPF, events.RoleEmail, "workapi/cpf_sparse.json"}} {
		p := out.Persons[i]
		if p.CPF != want.cpf || p.Role != want.role || !p.Paid {
			t.Errorf("person %d = %s/%s paid=%v, want %s/%s paid", i, p.CPF, p.Role, p.Paid, want.cpf, want.role)
		}
		answer, err := person.Parse(contracts.Read(want.file))
		if err != nil {
			t.Fatal(err)
		}
		summary, err := answer.Summary()
		if err != nil {
			t.Fatal(err)
		}
		if !jsonEqual(t, p.Person, summary) || len(p.Payload) != 0 {
			t.Errorf("person %d carries %d payload bytes and the summary %s; want the summary of the Work API answer %s and no payload",
				i, len(p.Payload), p.Person, want.file)
		}
		if n := r.count(t, `SELECT count(*) FROM core.entities WHERE entity_id::text = $1 AND national_id = $2`, p.EntityID, p.CPF); n != 1 {
			t.Errorf("person %d entity_id %q is not the core.entities row of its CPF", i, p.EntityID)
		}
		if got := r.sims.WorkAPI.PaidCalls(want.cpf); got != 1 {
			t.Errorf("%d paid calls for person %d, want 1", got, i)
		}
	}
	if out.Phone != in.Phone || out.Email != in.Email {
		t.Errorf("lead contacts not carried: %q %q", out.Phone, out.Email)
	}
	msg, err := enrichment.Compose(out, decimal.RequireFromString("1.9"))
	if err != nil {
		t.Fatal(err)
	}
	if want := string(contracts.Read("message/different_people.txt")); msg != want {
		t.Fatalf("message from the event alone differs from different_people.txt:\n%s", msg)
	}
	if e.counter(metricPaid) != 2 || e.counter(metricReused) != 0 {
		t.Errorf("metrics paid=%v reused=%v, want 2 and 0", e.counter(metricPaid), e.counter(metricReused))
	}
	if n := r.count(t, `SELECT count(*) FROM pipeline.workapi_payloads WHERE fetch_count = 1 AND fetched_at > now() - interval '1 minute'`); n != 2 {
		t.Errorf("%d raw payloads stored with their fetch time, want 2", n)
	}
	if n := r.count(t, `SELECT count(*) FROM pipeline.lead_runs WHERE lead_id = $1 AND status = 'enriched' AND cpfs_processed = 2 AND entities_stored = 2`, lead); n != 1 {
		t.Errorf("the run is not recorded as enriched with 2 CPFs and 2 entities")
	}

	// A redelivery reuses the stored payloads, leaves core.* as it was and
	// publishes nothing new.
	before := r.streamMsgs(t)
	if err := e.Handle(context.Background(), env, in); err != nil {
		t.Fatal(err)
	}
	if r.sims.WorkAPI.TotalPaidCalls() != 2 || r.streamMsgs(t) != before {
		t.Fatalf("redelivery paid %d calls in all and published %d new events", r.sims.WorkAPI.TotalPaidCalls(), r.streamMsgs(t)-before)
	}
	if n := r.count(t, `SELECT count(*) FROM core.entities`); n != 2 {
		t.Fatalf("%d entities after a redelivery, want 2", n)
	}
}

// TestConcurrentEnrichmentsPayOnce: 20 leads about the same CPF, handled at
// once by two enricher instances (separate singleflight groups and
// connection pools, one database), make ONE paid Work API call and one
// entity. The Postgres claim is what stops the second instance.
func TestConcurrentEnrichmentsPayOnce(t *testing.T) {
	r := newRig(t, sim.Config{})
	// The Work API answers slowly so that both instances really overlap.
	r.sims.WorkAPI.SetFaults(sim.Faults{LatencyMin: 300 * time.Millisecond})
	instances := []*instance{
		r.newInstance(t, instanceOptions{ttl: 24 * time.Hour, pool: r.newPool(t)}),
		r.newInstance(t, instanceOptions{ttl: 24 * time.Hour, pool: r.newPool(t)}),
	}
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			env, in := resolved(t, leadID(fmt.Sprint(t.Name(), i)), false, false, helenaByPhone)
			<-start
			errs <- instances[i%2].Handle(context.Background(), env, in)
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := r.sims.WorkAPI.PaidCalls(sim.HelenaCPF); got != 1 {
		t.Fatalf("%d paid Work API calls for one CPF, want 1", got)
	}
	if got := r.count(t, `SELECT count(*) FROM core.entities WHERE national_id = $1`, sim.HelenaCPF); got != 1 {
		t.Fatalf("%d entities for one CPF, want 1", got)
	}
	if got := r.count(t, `SELECT count(*) FROM core.entity_phones`); got != 4 {
		t.Fatalf("%d phones, want the payload's 4 once", got)
	}
	// Exactly one event says it paid, and the metrics agree across instances.
	paidEvents := 0
	for _, env := range r.published(t, events.SubjectEnriched) {
		out := r.enrichedOf(t, env.LeadID)
		if out.Persons[0].Paid {
			paidEvents++
		}
	}
	if paidEvents != 1 {
		t.Fatalf("%d lead.enriched events claim a paid call, want 1", paidEvents)
	}
	paid := instances[0].counter(metricPaid) + instances[1].counter(metricPaid)
	reused := instances[0].counter(metricReused) + instances[1].counter(metricReused)
	if paid != 1 || reused != n-1 {
		t.Fatalf("metrics: %v paid, %v reused; want 1 and %d", paid, reused, n-1)
	}
}

// TestPayloadReuse: ENRICH_REUSE_TTL and replays decide whether a stored
// payload stands in for a paid call. The stored payload is marked so the
// test can tell which one was used.
func TestPayloadReuse(t *testing.T) {
	cases := []struct {
		name            string
		ttl             time.Duration
		storedAge       time.Duration
		replay, refresh bool
		wantPaid        bool
	}{
		{name: "fresh payload is reused", ttl: 24 * time.Hour, storedAge: time.Hour},
		{name: "stale payload is refreshed", ttl: 24 * time.Hour, storedAge: 25 * time.Hour, wantPaid: true},
		{name: "TTL 0 always calls", ttl: 0, storedAge: 0, wantPaid: true},
		{name: "replay reuses any stored payload", ttl: time.Hour, storedAge: 30 * 24 * time.Hour, replay: true},
		{name: "replay with TTL 0 still reuses", ttl: 0, storedAge: 30 * 24 * time.Hour, replay: true},
		{name: "replay with refresh pays", ttl: 24 * time.Hour, storedAge: 0, replay: true, refresh: true, wantPaid: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, sim.Config{})
			e := r.newInstance(t, instanceOptions{ttl: tc.ttl})
			// The stored copy carries a marker name the Work API never sends.
			stored := strings.Replace(string(contracts.Read("workapi/cpf.json")), "HELENA MARQUES DUARTE", "HELENA STORED COPY", 1)
			r.exec(t, `INSERT INTO pipeline.workapi_payloads (cpf, payload, fetched_at) VALUES ($1, $2, now() - $3::bigint * interval '1 microsecond')`,
				sim.HelenaCPF, stored, tc.storedAge.Microseconds())
			lead := leadID(tc.name)
			env, in := resolved(t, lead, tc.replay, tc.refresh, helenaByPhone)
			if err := e.Handle(context.Background(), env, in); err != nil {
				t.Fatal(err)
			}
			out := r.enrichedOf(t, lead)
			usedStored := strings.Contains(string(out.Persons[0].Person), "HELENA STORED COPY")
			paidCalls := r.sims.WorkAPI.PaidCalls(sim.HelenaCPF)
			if tc.wantPaid {
				if paidCalls != 1 || usedStored || !out.Persons[0].Paid {
					t.Fatalf("paid calls %d, used stored %v, event paid %v; want a fresh paid payload", paidCalls, usedStored, out.Persons[0].Paid)
				}
				// The fresh payload replaces the stored one, with its fetch time.
				if n := r.count(t, `SELECT count(*) FROM pipeline.workapi_payloads WHERE cpf = $1 AND fetch_count = 2
					AND fetched_at > now() - interval '1 minute' AND payload->'DadosBasicos'->>'nome' = 'HELENA MARQUES DUARTE'`, sim.HelenaCPF); n != 1 {
					t.Fatal("the refreshed payload was not stored with its fetch time")
				}
			} else {
				if paidCalls != 0 || !usedStored || out.Persons[0].Paid {
					t.Fatalf("paid calls %d, used stored %v, event paid %v; want the stored payload at no cost", paidCalls, usedStored, out.Persons[0].Paid)
				}
				if e.counter(metricReused) != 1 {
					t.Fatalf("reused metric = %v, want 1", e.counter(metricReused))
				}
			}
			// Either way core.* holds what the payload used says.
			wantName := "HELENA MARQUES DUARTE"
			if usedStored {
				wantName = "HELENA STORED COPY"
			}
			if n := r.count(t, `SELECT count(*) FROM core.entities WHERE national_id = $1 AND name = $2`, sim.HelenaCPF, wantName); n != 1 {
				t.Fatalf("core.entities does not hold %q", wantName)
			}
		})
	}
}

// TestWorkAPIErrorClasses: each Work API failure ends where workapi/API.md
// says: dead letter, long delay, skipped person, or backoff.
func TestWorkAPIErrorClasses(t *testing.T) {
	unknown := events.ResolvedPerson{CPF: unknownCPF(), Role: events.RoleEmail, EmailSource: "diretrix"}
	cases := []struct {
		name    string
		faults  sim.Faults
		timeout time.Duration // client per-attempt timeout; 0 = default
		persons []events.ResolvedPerson
		// errKind is checked when the handler fails; then nothing is published.
		fails    bool
		errKind  failure.Kind
		nack     bool
		metric   string // the alert counter that must read 1
		requests int64  // Work API requests made; 0 = not checked
		// Otherwise the published event type and the persons kept/skipped.
		eventType string
		kept      []string
		skipped   []string
	}{
		{
			name: "invalid token: dead letter, alert, no retry", faults: sim.Faults{TokenExpired: true},
			persons: []events.ResolvedPerson{helenaByPhone, otavioByEmail},
			fails:   true, errKind: failure.KindUnauthorized, nack: false, metric: metricToken, requests: 1,
		},
		{
			name: "out of credits: delayed retry, alert, consumer pause", faults: sim.Faults{OutOfCredits: true},
			persons: []events.ResolvedPerson{helenaByPhone},
			fails:   true, errKind: failure.KindCreditsExhausted, nack: true, metric: metricCredits, requests: 1,
		},
		{
			name: "5xx: transient, backoff", faults: sim.Faults{ErrorRate: 1, ErrorStatus: 502},
			persons: []events.ResolvedPerson{helenaByPhone},
			fails:   true, errKind: failure.KindTransient, nack: true,
		},
		{
			name: "timeout: transient, backoff", faults: sim.Faults{LatencyMin: time.Minute}, timeout: 100 * time.Millisecond,
			persons: []events.ResolvedPerson{helenaByPhone},
			fails:   true, errKind: failure.KindTransient, nack: true,
		},
		{
			name:      "erro for one of two people: the other continues",
			persons:   []events.ResolvedPerson{helenaByPhone, unknown},
			eventType: events.TypeEnriched, kept: []string{sim.HelenaCPF}, skipped: []string{unknown.CPF},
		},
		{
			name:      "erro for the only person: lead unresolved",
			persons:   []events.ResolvedPerson{unknown},
			eventType: events.TypeUnresolved, skipped: []string{unknown.CPF},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, sim.Config{})
			policy := httpxtest.Policy()
			if tc.timeout > 0 {
				policy.Timeout = tc.timeout
			}
			e := r.newInstance(t, instanceOptions{ttl: 24 * time.Hour, policy: policy})
			r.sims.WorkAPI.SetFaults(tc.faults)
			lead := leadID(tc.name)
			env, in := resolved(t, lead, false, false, tc.persons...)
			err := e.Handle(context.Background(), env, in)
			if tc.fails {
				if err == nil {
					t.Fatal("Handle succeeded")
				}
				if k := failure.KindOf(err); k != tc.errKind || failure.ShouldNack(err) != tc.nack {
					t.Fatalf("error %v: kind %v nack %v, want %v nack %v", err, k, failure.ShouldNack(err), tc.errKind, tc.nack)
				}
				if n := r.streamMsgs(t); n != 0 {
					t.Fatalf("%d events published, want none", n)
				}
				if n := r.count(t, `SELECT count(*) FROM core.entities`); n != 0 {
					t.Fatalf("%d entities written, want none", n)
				}
				if tc.metric != "" {
					if v := e.counter(tc.metric); v != 1 {
						t.Fatalf("%s = %v, want 1", tc.metric, v)
					}
					logs := e.log.String()
					if !strings.Contains(logs, `"level":"error"`) || !strings.Contains(logs, "ALERT") {
						t.Fatalf("no loud log for an account problem: %s", logs)
					}
					if strings.Contains(logs, sim.HelenaCPF) || strings.Contains(logs, r.sims.Config.WorkToken) {
						t.Fatalf("the log leaks a CPF or the token: %s", logs)
					}
				}
				if tc.requests > 0 {
					if n := r.sims.WorkAPI.RequestCount(); n != tc.requests {
						t.Fatalf("%d Work API requests, want %d (no retry storm)", n, tc.requests)
					}
				}
				if paused := e.creditsOut.Load(); (tc.errKind == failure.KindCreditsExhausted) != (paused == 1) {
					t.Fatalf("%v: the credits hook (which pauses the consumer) ran %d times", err, paused)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.eventType == events.TypeUnresolved {
				pub := r.published(t, events.SubjectUnresolved)
				if len(pub) != 1 || r.streamMsgs(t) != 1 {
					t.Fatalf("want exactly one lead.unresolved, stream holds %d", r.streamMsgs(t))
				}
				if n := r.count(t, `SELECT count(*) FROM pipeline.lead_runs WHERE lead_id = $1 AND status = 'unresolved' AND finished_at IS NOT NULL`, lead); n != 1 {
					t.Fatal("the run is not finished as unresolved")
				}
				return
			}
			out := r.enrichedOf(t, lead)
			var kept, skipped []string
			for _, p := range out.Persons {
				kept = append(kept, p.CPF)
			}
			for _, s := range out.Skipped {
				skipped = append(skipped, s.CPF)
				if s.Reason == "" || strings.Contains(s.Reason, s.CPF) {
					t.Errorf("skip reason %q is empty or carries the CPF", s.Reason)
				}
			}
			if fmt.Sprint(kept) != fmt.Sprint(tc.kept) || fmt.Sprint(skipped) != fmt.Sprint(tc.skipped) {
				t.Fatalf("kept %v skipped %v, want %v and %v", kept, skipped, tc.kept, tc.skipped)
			}
			if n := r.count(t, `SELECT count(*) FROM core.entities`); n != len(tc.kept) {
				t.Fatalf("%d entities, want %d", n, len(tc.kept))
			}
		})
	}
}
