package service_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/shopspring/decimal"

	"github.com/leadflow/leadflow/pkg/backbone/events"
	"github.com/leadflow/leadflow/pkg/backbone/messaging"
	"github.com/leadflow/leadflow/pkg/clients/c2s"
	"github.com/leadflow/leadflow/pkg/clients/diretrix"
	"github.com/leadflow/leadflow/pkg/clients/httpx"
	"github.com/leadflow/leadflow/pkg/clients/httpx/httpxtest"
	"github.com/leadflow/leadflow/pkg/contracts"
	"github.com/leadflow/leadflow/pkg/domain/person"
	"github.com/leadflow/leadflow/pkg/enrichment"
	"github.com/leadflow/leadflow/pkg/sim"
	"github.com/leadflow/leadflow/pkg/store"
	"github.com/leadflow/leadflow/pkg/store/coredb"
	"github.com/leadflow/leadflow/pkg/store/pipeline"
	"github.com/leadflow/leadflow/pkg/testinfra"
	"github.com/leadflow/leadflow/services/resolver/adapters"
	"github.com/leadflow/leadflow/services/resolver/app"
)

// rig is one resolver on real infrastructure: a fresh Postgres database, an
// embedded JetStream server and the simulators (only Helena and Otavio, the
// contract fixtures, live in the population).
type rig struct {
	sims     *sim.Sims
	pool     *pgxpool.Pool
	js       jetstream.JetStream
	resolver *app.Resolver
}

type rigOptions struct {
	diretrixPass  string        // "" = the simulator's
	lookupTimeout time.Duration // 0 = none
}

func newRig(t *testing.T, o rigOptions) *rig {
	t.Helper()
	ctx := context.Background()
	sims := sim.New(sim.Config{People: -1, Leads: -1})
	if _, err := sims.StartLocal(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sims.Close() })

	pool, err := store.Open(ctx, testinfra.NewDatabase(t), 8, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := store.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}

	srv := testinfra.StartNATS(t)
	nc, err := nats.Connect(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := messaging.EnsureStream(ctx, js, messaging.DefaultStreamSettings()); err != nil {
		t.Fatal(err)
	}
	pub, err := messaging.NewPublisher(nc, nil)
	if err != nil {
		t.Fatal(err)
	}

	// Fast policies and a recording sleeper: retries happen, nobody sleeps.
	opts := func() httpx.Options { return httpxtest.Options(&httpxtest.Sleeper{}, nil) }
	pass := o.diretrixPass
	if pass == "" {
		pass = sims.Config.DiretrixPass
	}
	dir, err := diretrix.New(diretrix.Config{BaseURL: sims.DiretrixBaseURL, User: sims.Config.DiretrixUser, Pass: pass,
		Policy: httpxtest.Policy(), Options: opts()})
	if err != nil {
		t.Fatal(err)
	}
	direct, err := c2s.New(c2s.Config{BaseURL: sims.C2SBaseURL, Token: sims.Config.C2SToken, Policy: httpxtest.Policy(), Options: opts()})
	if err != nil {
		t.Fatal(err)
	}
	port, err := c2s.NewRoute(direct, nil, c2s.RouteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ids := pipeline.Identities{Pool: pool, Group: store.NewGroup(pool, 8)} // as NewApplication wires it
	return &rig{sims: sims, pool: pool, js: js, resolver: &app.Resolver{
		Identity: &enrichment.Identity{
			Directory:     enrichment.Diretrix{Client: dir},
			Records:       ids,
			LookupTimeout: o.lookupTimeout,
		},
		Leads:     port,
		Store:     adapters.Store{Identities: ids},
		Publisher: pub,
	}}
}

// received builds a live lead.received event for lead with the customer's
// contacts as given.
func received(t *testing.T, lead string, c events.Customer) (events.Envelope, events.LeadReceived) {
	t.Helper()
	in := events.LeadReceived{Action: "on_create_lead", UpdatedAt: "2025-11-21T13:30:00Z", Customer: c}
	env, err := events.NewReceived(lead, events.SourceWebhook, in.UpdatedAt, in)
	if err != nil {
		t.Fatal(err)
	}
	return env, in
}

// published returns the events on subject, oldest first.
func (r *rig) published(t testing.TB, subject string) []events.Envelope {
	t.Helper()
	var out []events.Envelope
	for _, data := range testinfra.SubjectMessages(t, r.js, events.StreamName, subject) {
		var env events.Envelope
		if err := json.Unmarshal(data, &env); err != nil {
			t.Fatal(err)
		}
		out = append(out, env)
	}
	return out
}

// streamMsgs counts every event in the stream.
func (r *rig) streamMsgs(t *testing.T) uint64 {
	t.Helper()
	st, err := r.js.Stream(context.Background(), events.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// diretrixPaths lists the paths Diretrix was asked, in order.
func (r *rig) diretrixPaths() []string {
	var out []string
	for _, q := range r.sims.Diretrix.Requests() {
		out = append(out, q.Path)
	}
	return out
}

// c2sLeadFetches counts GET /integration/leads/{lead} calls.
func (r *rig) c2sLeadFetches(lead string) int {
	n := 0
	for _, q := range r.sims.C2S.Requests() {
		if q.Method == "GET" && strings.HasSuffix(q.Path, "/integration/leads/"+lead) {
			n++
		}
	}
	return n
}

// writeContractPerson stores a contract payload in core.* the way the
// enricher does, so the resolver finds its contacts there.
func (r *rig) writeContractPerson(t *testing.T, file string) {
	t.Helper()
	p, err := person.Parse(contracts.Read(file))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := coredb.NewWriter(r.pool, decimal.RequireFromString("1.9")).WritePerson(context.Background(), p, ""); err != nil {
		t.Fatal(err)
	}
}

func (r *rig) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	if _, err := r.pool.Exec(context.Background(), sql, args...); err != nil {
		t.Fatal(err)
	}
}

func (r *rig) count(t *testing.T, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := r.pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// leadID derives a valid 32-hex lead id from a test name.
func leadID(name string) string { return events.ID("lead", name) }

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
