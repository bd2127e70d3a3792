package service_test

import (
	"bytes"
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/shopspring/decimal"

	"github.com/leadflow/leadflow/pkg/backbone/events"
	"github.com/leadflow/leadflow/pkg/backbone/messaging"
	"github.com/leadflow/leadflow/pkg/clients/httpx"
	"github.com/leadflow/leadflow/pkg/clients/httpx/httpxtest"
	"github.com/leadflow/leadflow/pkg/clients/workapi"
	"github.com/leadflow/leadflow/pkg/domain/brdata"
	"github.com/leadflow/leadflow/pkg/enrichment"
	"github.com/leadflow/leadflow/pkg/sim"
	"github.com/leadflow/leadflow/pkg/store"
	"github.com/leadflow/leadflow/pkg/testinfra"
	"github.com/leadflow/leadflow/services/enricher/adapters"
	"github.com/leadflow/leadflow/services/enricher/app"
)

// rig is the enricher's real infrastructure: one fresh Postgres database,
// an embedded JetStream server and the simulators (Helena and Otavio only).
type rig struct {
	sims    *sim.Sims
	dbURL   string
	natsURL string
	pool    *pgxpool.Pool
	nc      *nats.Conn
	js      jetstream.JetStream
	pub     *messaging.Publisher
}

func newRig(t testing.TB, cfg sim.Config) *rig {
	t.Helper()
	ctx := context.Background()
	if cfg.People == 0 {
		cfg.People, cfg.Leads = -1, -1
	}
	sims := sim.New(cfg)
	if _, err := sims.StartLocal(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sims.Close() })
	r := &rig{sims: sims, dbURL: testinfra.NewDatabase(t)}
	r.pool = r.newPool(t)
	if err := store.Migrate(ctx, r.pool); err != nil {
		t.Fatal(err)
	}
	srv := testinfra.StartNATS(t)
	r.natsURL = srv.URL
	var err error
	if r.nc, err = nats.Connect(srv.URL); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.nc.Close)
	if r.js, err = jetstream.New(r.nc); err != nil {
		t.Fatal(err)
	}
	if _, err := messaging.EnsureStream(ctx, r.js, messaging.DefaultStreamSettings()); err != nil {
		t.Fatal(err)
	}
	if r.pub, err = messaging.NewPublisher(r.nc, nil); err != nil {
		t.Fatal(err)
	}
	return r
}

// newPool opens another pool on the rig's database: one per enricher
// instance, as separate processes would have.
func (r *rig) newPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	pool, err := store.Open(context.Background(), r.dbURL, 16, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// instance is one enricher with its own metrics and log.
type instance struct {
	*app.Enricher
	reg        *prometheus.Registry
	log        *syncBuffer
	creditsOut atomic.Int32 // times the credits hook ran
}

type instanceOptions struct {
	ttl    time.Duration
	policy httpx.Policy // zero = httpxtest.Policy()
	pool   *pgxpool.Pool
}

// newInstance builds the enricher exactly as service.NewApplication does,
// on fast client policies that never sleep.
func (r *rig) newInstance(t testing.TB, o instanceOptions) *instance {
	t.Helper()
	if o.policy.IsZero() {
		o.policy = httpxtest.Policy()
	}
	if o.pool == nil {
		o.pool = r.pool
	}
	api, err := workapi.New(workapi.Config{URL: r.sims.WorkAPIURL, Token: r.sims.Config.WorkToken, Policy: o.policy,
		Options: httpxtest.Options(&httpxtest.Sleeper{}, nil)})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	buf := &syncBuffer{}
	cfg := enrichment.Config{IncomeMultiplier: decimal.RequireFromString("1.9"), ReuseTTL: o.ttl, MaxPaidAttempts: 100}
	persons := cfg.Persons(o.pool, api, 0, reg, zerolog.New(buf))
	in := &instance{reg: reg, log: buf, Enricher: &app.Enricher{
		Persons:   persons,
		Store:     adapters.Store{Pool: o.pool, Writer: persons.Writer.(enrichment.BatchWriter)},
		Publisher: r.pub,
		ReuseTTL:  o.ttl,
	}}
	persons.OnCreditsOut = func(context.Context, time.Duration) { in.creditsOut.Add(1) }
	return in
}

func (i *instance) counter(name string) float64 { return httpxtest.CounterValue(i.reg, name, nil) }

// syncBuffer is a log sink safe for concurrent handlers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// resolved builds the lead.resolved event of a run of lead, derived from a
// lead.received as the resolver would. A replay sets refresh as asked.
func resolved(t testing.TB, lead string, replay, refresh bool, persons ...events.ResolvedPerson) (events.Envelope, events.LeadResolved) {
	t.Helper()
	recv, err := events.NewReceived(lead, events.SourceWebhook, "2025-11-21T13:30:00Z", events.LeadReceived{Action: "on_create_lead"})
	if err != nil {
		t.Fatal(err)
	}
	if replay {
		recv.Source, recv.ReplayID, recv.Refresh = events.SourceReplay, events.ID("replay", lead), refresh
		recv.RunID = events.ID("replay-run", lead)
	}
	in := events.LeadResolved{Phone: sim.HelenaPhone, Email: sim.OtavioEmail, Persons: persons}
	env, err := events.New(events.TypeResolved, &recv, in)
	if err != nil {
		t.Fatal(err)
	}
	return env, in
}

var (
	helenaByPhone = events.ResolvedPerson{CPF: sim.HelenaCPF, Role: events.RolePhone, PhoneSource: "diretrix"}
	otavioByEmail = events.ResolvedPerson{CPF: sim.OtavioCPF, Role: events.RoleEmail, EmailSource: "diretrix"}
)

// unknownCPF is a valid CPF the Work API answers with `erro`.
func unknownCPF() string {
	d1, d2 := brdata.CPFCheckDigits("123456789")
	return "123456789" + string([]byte{d1, d2})
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

// enrichedOf decodes the single lead.enriched event of lead.
func (r *rig) enrichedOf(t testing.TB, lead string) events.LeadEnriched {
	t.Helper()
	var found []events.LeadEnriched
	for _, env := range r.published(t, events.SubjectEnriched) {
		if env.LeadID != lead {
			continue
		}
		b, _ := json.Marshal(env)
		var out events.LeadEnriched
		if _, err := events.Decode(b, events.TypeEnriched, &out); err != nil {
			t.Fatal(err)
		}
		found = append(found, out)
	}
	if len(found) != 1 {
		t.Fatalf("%d lead.enriched events for %s, want 1", len(found), lead)
	}
	return found[0]
}

func (r *rig) streamMsgs(t testing.TB) uint64 {
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

func (r *rig) exec(t testing.TB, sql string, args ...any) {
	t.Helper()
	if _, err := r.pool.Exec(context.Background(), sql, args...); err != nil {
		t.Fatal(err)
	}
}

func (r *rig) count(t testing.TB, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := r.pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// jsonEqual compares two JSON documents by value: payloads come back from
// jsonb with keys reordered.
func jsonEqual(t testing.TB, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatal(err)
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}

func leadID(name string) string { return events.ID("lead", name) }

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
