package service_test

import (
	"context"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/leadflow/leadflow/pkg/backbone/events"
	"github.com/leadflow/leadflow/pkg/backbone/failure"
	"github.com/leadflow/leadflow/pkg/backbone/messaging"
	"github.com/leadflow/leadflow/pkg/sim"
	"github.com/leadflow/leadflow/pkg/testinfra"
)

const (
	phonePath     = "/Consultas/Pessoa/Telefone/"
	emailPath     = "/Consultas/Pessoa/Email/"
	unknownPhone  = "5511900001111"
	unknownEmail  = "ninguem@example.com"
	invalidFirst  = "11955550000" // Diretrix lists broken CPFs before Otavio
	helenaPhone55 = "5511987650123"
)

// TestResolutionOutcomes walks RESOLUTION.md's table and the failure rules on
// the real resolver: Postgres records, the Diretrix and C2S simulators and a
// JetStream publisher. Each case checks the published event (or that nothing
// was published), what Diretrix and C2S were asked, and what was stored.
func TestResolutionOutcomes(t *testing.T) {
	type want struct {
		// eventType is TypeResolved or TypeUnresolved; "" means Handle
		// fails and nothing is published or stored.
		eventType  string
		persons    []events.ResolvedPerson
		phone      string   // normalised, in the event and lead_contacts
		email      string   // normalised
		reason     []string // substrings of the unresolved reason
		errKind    failure.Kind
		diretrix   []string // distinct paths asked; nil = none
		c2sFetches int
		identities int // pipeline.identity_resolutions rows afterwards
	}
	helena, otavio := sim.HelenaCPF, sim.OtavioCPF
	cases := []struct {
		name     string
		opts     rigOptions
		setup    func(t *testing.T, r *rig, lead string)
		customer events.Customer
		want     want
	}{
		{
			name:     "same person",
			customer: events.Customer{Phone: "+55 (11) 98765-0123", Email: " Helena.Duarte@Example.com "},
			want: want{eventType: events.TypeResolved, phone: sim.HelenaPhone, email: sim.HelenaEmail,
				persons:  []events.ResolvedPerson{{CPF: helena, Role: events.RoleBoth, PhoneSource: "diretrix", EmailSource: "diretrix"}},
				diretrix: []string{emailPath + sim.HelenaEmail, phonePath + sim.HelenaPhone}, identities: 2},
		},
		{
			name:     "phone only: the email leads nowhere",
			customer: events.Customer{Phone: helenaPhone55, Email: unknownEmail},
			want: want{eventType: events.TypeResolved, phone: sim.HelenaPhone, email: unknownEmail,
				persons:  []events.ResolvedPerson{{CPF: helena, Role: events.RolePhone, PhoneSource: "diretrix"}},
				diretrix: []string{emailPath + unknownEmail, phonePath + sim.HelenaPhone}, identities: 1},
		},
		{
			name:     "email only: the phone leads nowhere",
			customer: events.Customer{Phone: unknownPhone, Email: sim.OtavioEmail},
			want: want{eventType: events.TypeResolved, phone: "11900001111", email: sim.OtavioEmail,
				persons:  []events.ResolvedPerson{{CPF: otavio, Role: events.RoleEmail, EmailSource: "diretrix"}},
				diretrix: []string{emailPath + sim.OtavioEmail, phonePath + "11900001111"}, identities: 1},
		},
		{
			name:     "email only: the phone is missing and C2S does not know the lead",
			customer: events.Customer{Email: sim.OtavioEmail},
			want: want{eventType: events.TypeResolved, email: sim.OtavioEmail,
				persons:  []events.ResolvedPerson{{CPF: otavio, Role: events.RoleEmail, EmailSource: "diretrix"}},
				diretrix: []string{emailPath + sim.OtavioEmail}, c2sFetches: 1, identities: 1},
		},
		{
			name:     "two different people, the phone's first",
			customer: events.Customer{Phone: helenaPhone55, Email: sim.OtavioEmail},
			want: want{eventType: events.TypeResolved, phone: sim.HelenaPhone, email: sim.OtavioEmail,
				persons: []events.ResolvedPerson{
					{CPF: helena, Role: events.RolePhone, PhoneSource: "diretrix"},
					{CPF: otavio, Role: events.RoleEmail, EmailSource: "diretrix"},
				},
				diretrix: []string{emailPath + sim.OtavioEmail, phonePath + sim.HelenaPhone}, identities: 2},
		},
		{
			name:     "nobody: unresolved with the reason",
			customer: events.Customer{Phone: unknownPhone, Email: unknownEmail},
			want: want{eventType: events.TypeUnresolved, phone: "11900001111", email: unknownEmail,
				reason:   []string{"phone: not_found", "email: not_found"},
				diretrix: []string{emailPath + unknownEmail, phonePath + "11900001111"}},
		},
		{
			name:     "identifiers missing, C2S does not know the lead",
			customer: events.Customer{Name: "Sem Contato"},
			want:     want{eventType: events.TypeUnresolved, reason: []string{"phone: missing", "email: missing"}, c2sFetches: 1},
		},
		{
			name:     "identifiers invalid: nothing is sent to Diretrix",
			customer: events.Customer{Phone: "12345", Email: "not-an-email"},
			want:     want{eventType: events.TypeUnresolved, reason: []string{"phone: invalid", "email: invalid"}, c2sFetches: 1},
		},
		{
			name: "partial phone and missing email: the lead is fetched through C2S",
			setup: func(t *testing.T, r *rig, lead string) {
				if err := r.sims.Pop.AddLead(sim.Lead{ID: lead, Name: "Helena Duarte", Phone: helenaPhone55, Email: sim.OtavioEmail}); err != nil {
					t.Fatal(err)
				}
			},
			customer: events.Customer{Phone: "98765-0123"},
			want: want{eventType: events.TypeResolved, phone: sim.HelenaPhone, email: sim.OtavioEmail,
				persons: []events.ResolvedPerson{
					{CPF: helena, Role: events.RolePhone, PhoneSource: "diretrix"},
					{CPF: otavio, Role: events.RoleEmail, EmailSource: "diretrix"},
				},
				diretrix: []string{emailPath + sim.OtavioEmail, phonePath + sim.HelenaPhone}, c2sFetches: 1, identities: 2},
		},
		{
			name:     "phone known in core.entity_phones: Diretrix is asked only for the email",
			setup:    func(t *testing.T, r *rig, _ string) { r.writeContractPerson(t, "workapi/cpf.json") },
			customer: events.Customer{Phone: helenaPhone55, Email: sim.OtavioEmail},
			want: want{eventType: events.TypeResolved, phone: sim.HelenaPhone, email: sim.OtavioEmail,
				persons: []events.ResolvedPerson{
					{CPF: helena, Role: events.RolePhone, PhoneSource: "db"},
					{CPF: otavio, Role: events.RoleEmail, EmailSource: "diretrix"},
				},
				diretrix: []string{emailPath + sim.OtavioEmail}, identities: 1},
		},
		{
			name:     "email known in core.entity_emails: Diretrix is asked only for the phone",
			setup:    func(t *testing.T, r *rig, _ string) { r.writeContractPerson(t, "workapi/cpf.json") },
			customer: events.Customer{Phone: "55" + sim.OtavioPhone, Email: "H.Marques.Duarte@example.com"},
			want: want{eventType: events.TypeResolved, phone: sim.OtavioPhone, email: "h.marques.duarte@example.com",
				persons: []events.ResolvedPerson{
					{CPF: otavio, Role: events.RolePhone, PhoneSource: "diretrix"},
					{CPF: helena, Role: events.RoleEmail, EmailSource: "db"},
				},
				diretrix: []string{phonePath + sim.OtavioPhone}, identities: 1},
		},
		{
			// The earlier resolution wins over what Diretrix would say
			// (Otavio), and the outcome depends only on the CPFs: Helena
			// by phone (Diretrix) and by email (records) is one person.
			name: "email known from an earlier resolution: same person across sources",
			setup: func(t *testing.T, r *rig, _ string) {
				r.exec(t, `INSERT INTO pipeline.identity_resolutions (kind, value, cpf, source) VALUES ('email', $1, $2, 'diretrix')`,
					sim.OtavioEmail, helena)
			},
			customer: events.Customer{Phone: helenaPhone55, Email: sim.OtavioEmail},
			want: want{eventType: events.TypeResolved, phone: sim.HelenaPhone, email: sim.OtavioEmail,
				persons:  []events.ResolvedPerson{{CPF: helena, Role: events.RoleBoth, PhoneSource: "diretrix", EmailSource: "db"}},
				diretrix: []string{phonePath + sim.HelenaPhone}, identities: 2},
		},
		{
			name: "Diretrix answers invalid CPFs first: the first valid one is taken",
			setup: func(t *testing.T, r *rig, _ string) {
				r.sims.Pop.AddDiretrixCandidate(invalidFirst, sim.Candidate{Nome: "QUEBRADO", CPF: "12345678900"})
				r.sims.Pop.AddDiretrixCandidate(invalidFirst, sim.Candidate{Nome: "REPETIDO", CPF: "11111111111"})
				r.sims.Pop.AddDiretrixCandidate(invalidFirst, sim.Candidate{Nome: "OTAVIO PRADO LINS", CPF: otavio})
			},
			customer: events.Customer{Phone: "55" + invalidFirst, Email: unknownEmail},
			want: want{eventType: events.TypeResolved, phone: invalidFirst, email: unknownEmail,
				persons:  []events.ResolvedPerson{{CPF: otavio, Role: events.RolePhone, PhoneSource: "diretrix"}},
				diretrix: []string{emailPath + unknownEmail, phonePath + invalidFirst}, identities: 1},
		},
		{
			name: "one lookup fails transiently while the other succeeded: retry, publish nothing",
			setup: func(t *testing.T, r *rig, _ string) {
				r.writeContractPerson(t, "workapi/cpf.json") // the phone is answered by the records
				r.sims.Diretrix.SetFaults(sim.Faults{ErrorRate: 1, ErrorStatus: 503})
			},
			customer: events.Customer{Phone: helenaPhone55, Email: sim.OtavioEmail},
			want:     want{errKind: failure.KindTransient, diretrix: []string{emailPath + sim.OtavioEmail}},
		},
		{
			name: "Diretrix answers 5xx: transient",
			setup: func(t *testing.T, r *rig, _ string) {
				r.sims.Diretrix.SetFaults(sim.Faults{ErrorRate: 1, ErrorStatus: 500})
			},
			customer: events.Customer{Phone: helenaPhone55, Email: sim.HelenaEmail},
			want:     want{errKind: failure.KindTransient, diretrix: []string{emailPath + sim.HelenaEmail, phonePath + sim.HelenaPhone}},
		},
		{
			name:     "Diretrix unreachable: transient",
			setup:    func(t *testing.T, r *rig, _ string) { r.sims.Diretrix.SetFaults(sim.Faults{Down: true}) },
			customer: events.Customer{Phone: helenaPhone55, Email: sim.HelenaEmail},
			want:     want{errKind: failure.KindTransient, diretrix: []string{emailPath + sim.HelenaEmail, phonePath + sim.HelenaPhone}},
		},
		{
			name:     "Diretrix slower than the lookup timeout: transient",
			opts:     rigOptions{lookupTimeout: 200 * time.Millisecond},
			setup:    func(t *testing.T, r *rig, _ string) { r.sims.Diretrix.SetFaults(sim.Faults{LatencyMin: time.Minute}) },
			customer: events.Customer{Phone: helenaPhone55, Email: sim.HelenaEmail},
			want:     want{errKind: failure.KindTransient, diretrix: []string{emailPath + sim.HelenaEmail, phonePath + sim.HelenaPhone}},
		},
		{
			name:     "Diretrix rejects the credentials (401): permanent, dead-lettered",
			opts:     rigOptions{diretrixPass: "wrong-pass"},
			customer: events.Customer{Phone: helenaPhone55, Email: sim.HelenaEmail},
			want:     want{errKind: failure.KindUnauthorized, diretrix: []string{emailPath + sim.HelenaEmail, phonePath + sim.HelenaPhone}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, tc.opts)
			lead := leadID(tc.name)
			if tc.setup != nil {
				tc.setup(t, r, lead)
			}
			env, in := received(t, lead, tc.customer)
			ctx := context.Background()
			err := r.resolver.Handle(ctx, env, in)

			if tc.want.diretrix != nil {
				// The simulator records a request once it ends, which for
				// an abandoned one is a moment after the client left.
				testinfra.WaitFor(t, "Diretrix to record its requests", func() bool { return len(r.diretrixPaths()) > 0 })
			}
			gotPaths := slices.Compact(slices.Sorted(slices.Values(r.diretrixPaths())))
			if tc.want.eventType == "" {
				// A failed lookup cancels its sibling, which may not have
				// reached Diretrix yet: only identifiers of this lead may
				// have been asked, and at least one was.
				for _, p := range gotPaths {
					if !slices.Contains(tc.want.diretrix, p) {
						t.Errorf("Diretrix was asked %q, want only %q", p, tc.want.diretrix)
					}
				}
				if len(gotPaths) == 0 {
					t.Errorf("Diretrix was never asked")
				}
			} else if !reflect.DeepEqual(gotPaths, tc.want.diretrix) {
				t.Errorf("Diretrix was asked %q, want %q", gotPaths, tc.want.diretrix)
			}
			if got := r.c2sLeadFetches(lead); got != tc.want.c2sFetches {
				t.Errorf("C2S lead fetched %d times, want %d", got, tc.want.c2sFetches)
			}

			if tc.want.eventType == "" {
				if err == nil {
					t.Fatal("Handle succeeded, want an error")
				}
				if k := failure.KindOf(err); k != tc.want.errKind {
					t.Fatalf("error kind = %v (%v), want %v", k, err, tc.want.errKind)
				}
				// Transient errors are nak'ed and retried; anything else
				// is acked and dead-lettered.
				if failure.ShouldNack(err) != (tc.want.errKind == failure.KindTransient) {
					t.Fatalf("ShouldNack = %v for %v", failure.ShouldNack(err), err)
				}
				if n := r.streamMsgs(t); n != 0 {
					t.Fatalf("%d events published after a failed resolution, want none", n)
				}
				for _, table := range []string{"pipeline.identity_resolutions", "pipeline.lead_contacts", "pipeline.lead_stages"} {
					if n := r.count(t, "SELECT count(*) FROM "+table); n != 0 {
						t.Fatalf("%s has %d rows after a failed resolution, want none", table, n)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Handle: %v", err)
			}
			// A redelivery publishes nothing new and stores nothing twice.
			if err := r.resolver.Handle(ctx, env, in); err != nil {
				t.Fatalf("Handle (redelivery): %v", err)
			}
			if n := r.streamMsgs(t); n != 1 {
				t.Fatalf("%d events in the stream, want exactly one", n)
			}
			subject, _ := events.SubjectOf(tc.want.eventType)
			pub := r.published(t, subject)
			if len(pub) != 1 {
				t.Fatalf("%d events on %s, want 1", len(pub), subject)
			}
			if pub[0].RunID != env.RunID || pub[0].LeadID != lead {
				t.Fatalf("published event not in the lead's run: %+v", pub[0])
			}
			if tc.want.eventType == events.TypeResolved {
				var out events.LeadResolved
				if _, err := events.Decode(mustJSON(t, pub[0]), events.TypeResolved, &out); err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(out.Persons, tc.want.persons) {
					t.Errorf("persons = %+v\nwant      %+v", out.Persons, tc.want.persons)
				}
				if out.Phone != tc.want.phone || out.Email != tc.want.email {
					t.Errorf("event contacts = %q %q, want %q %q", out.Phone, out.Email, tc.want.phone, tc.want.email)
				}
			} else {
				var out events.LeadUnresolved
				if _, err := events.Decode(mustJSON(t, pub[0]), events.TypeUnresolved, &out); err != nil {
					t.Fatal(err)
				}
				for _, s := range tc.want.reason {
					if !strings.Contains(out.Reason, s) {
						t.Errorf("reason %q lacks %q", out.Reason, s)
					}
				}
				if out.Phone != tc.want.phone || out.Email != tc.want.email {
					t.Errorf("event contacts = %q %q, want %q %q", out.Phone, out.Email, tc.want.phone, tc.want.email)
				}
			}

			// What Diretrix taught us is kept for next time, with the
			// identifiers normalised as the event has them.
			if n := r.count(t, "SELECT count(*) FROM pipeline.identity_resolutions"); n != tc.want.identities {
				t.Errorf("identity_resolutions has %d rows, want %d", n, tc.want.identities)
			}
			for _, p := range tc.want.persons {
				if p.PhoneSource == "diretrix" && r.count(t, `SELECT count(*) FROM pipeline.identity_resolutions WHERE kind = 'phone' AND value = $1 AND cpf = $2`, tc.want.phone, p.CPF) != 1 {
					t.Errorf("phone resolution to %s not stored", p.CPF)
				}
				if p.EmailSource == "diretrix" && r.count(t, `SELECT count(*) FROM pipeline.identity_resolutions WHERE kind = 'email' AND value = $1 AND cpf = $2`, tc.want.email, p.CPF) != 1 {
					t.Errorf("email resolution to %s not stored", p.CPF)
				}
			}
			if n := r.count(t, `SELECT count(*) FROM pipeline.lead_contacts WHERE lead_id = $1 AND coalesce(phone, '') = $2 AND coalesce(email, '') = $3`,
				lead, tc.want.phone, tc.want.email); n != 1 {
				t.Errorf("lead_contacts does not hold the normalised contacts")
			}
			stage := "resolved"
			if tc.want.eventType == events.TypeUnresolved {
				stage = "unresolved"
			}
			if n := r.count(t, `SELECT count(*) FROM pipeline.lead_stages WHERE lead_id = $1 AND stage = $2`, lead, stage); n != 1 {
				t.Errorf("trace has %d %q steps, want 1", n, stage)
			}
			// The trace holds no personal data: CPFs are masked.
			for _, cpf := range []string{helena, otavio} {
				if n := r.count(t, `SELECT count(*) FROM pipeline.lead_stages WHERE detail::text LIKE '%' || $1 || '%'`, cpf); n != 0 {
					t.Errorf("trace holds a raw CPF")
				}
			}
		})
	}
}

// A run ends in one outcome: a redelivery that would now resolve (Diretrix
// answers the second time) publishes the unresolved decision again instead
// of a second, different outcome; a first delivery is never held to it.
func TestRedeliveryKeepsTheDecidedOutcome(t *testing.T) {
	r := newRig(t, rigOptions{})
	lead := leadID(t.Name())
	env, in := received(t, lead, events.Customer{Phone: helenaPhone55, Email: sim.HelenaEmail})
	r.sims.Diretrix.SetFaults(sim.Faults{ErrorRate: 1, ErrorStatus: 404})
	if err := r.resolver.Handle(context.Background(), env, in); err != nil {
		t.Fatal(err)
	}
	r.sims.Diretrix.SetFaults(sim.Faults{})
	redelivered := messaging.WithDelivery(context.Background(), 2)
	if err := r.resolver.Handle(redelivered, env, in); err != nil {
		t.Fatal(err)
	}
	if got := len(r.published(t, events.SubjectResolved)); got != 0 {
		t.Fatalf("%d lead.resolved published for a run already decided unresolved", got)
	}
	if got := len(r.published(t, events.SubjectUnresolved)); got != 1 {
		t.Fatalf("%d lead.unresolved, want the one decision", got)
	}
	// The same run delivered for the first time (no earlier decision is
	// looked up) resolves with what Diretrix answers now.
	env2, in2 := received(t, leadID(t.Name()+"-2"), events.Customer{Phone: helenaPhone55, Email: sim.HelenaEmail})
	if err := r.resolver.Handle(messaging.WithDelivery(context.Background(), 1), env2, in2); err != nil {
		t.Fatal(err)
	}
	if got := len(r.published(t, events.SubjectResolved)); got != 1 {
		t.Fatalf("%d lead.resolved after a fresh run, want 1", got)
	}
}
