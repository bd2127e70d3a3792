package service_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/shopspring/decimal"

	"github.com/leadflow/leadflow/pkg/backbone/events"
	"github.com/leadflow/leadflow/pkg/backbone/failure"
	"github.com/leadflow/leadflow/pkg/clients/c2s"
	"github.com/leadflow/leadflow/pkg/clients/httpx/httpxtest"
	"github.com/leadflow/leadflow/pkg/contracts"
	"github.com/leadflow/leadflow/pkg/enrichment"
	"github.com/leadflow/leadflow/pkg/store"
	"github.com/leadflow/leadflow/pkg/store/ledger"
	"github.com/leadflow/leadflow/pkg/testinfra"
	"github.com/leadflow/leadflow/services/notifier/adapters"
	"github.com/leadflow/leadflow/services/notifier/app"
	"github.com/leadflow/leadflow/services/notifier/service"
)

const contractLead = "5f2c9a7e41b8d3c6a0e1f4b27d9c8e10"

// fakeCRM is C2S and its gateway over one message store, serving the
// confirmed lead.json. It can lose the reply of a post after storing it (the
// connection is dropped after the request was read), drop a post without
// storing it, omit the messages key (as the confirmed lead.json does) and
// fail reads.
type fakeCRM struct {
	mu            sync.Mutex
	messages      []string
	noMessagesKey bool
	loseReply     int // the next posts are stored, then their connection dropped
	dropPost      int // the next posts are dropped unstored
	failGets      int // the next reads answer 503
	posts, gets   atomic.Int32
	gatewayPosts  atomic.Int32
	directPosts   atomic.Int32
}

func (f *fakeCRM) set(fn func(f *fakeCRM)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func (f *fakeCRM) Messages() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.messages...)
}

func (f *fakeCRM) handler(gateway bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		switch {
		case r.Method == http.MethodGet:
			f.gets.Add(1)
			f.mu.Lock()
			fail := f.failGets > 0
			if fail {
				f.failGets--
			}
			doc := map[string]any{}
			_ = json.Unmarshal(contracts.Read("c2s/lead.json"), &doc)
			if !f.noMessagesKey {
				list := []any{}
				for _, m := range f.messages {
					list = append(list, map[string]any{"message": m})
				}
				doc["data"].(map[string]any)["attributes"].(map[string]any)["messages"] = list
			}
			f.mu.Unlock()
			if fail {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			_ = json.NewEncoder(w).Encode(doc)
		case r.Method == http.MethodPost:
			f.posts.Add(1)
			var body struct{ Body, Message string }
			_ = json.Unmarshal(raw, &body)
			text := body.Body
			if gateway {
				f.gatewayPosts.Add(1)
				text = body.Message
			} else {
				f.directPosts.Add(1)
			}
			f.mu.Lock()
			drop, lose := f.dropPost > 0, f.loseReply > 0
			switch {
			case drop:
				f.dropPost--
			case lose:
				f.loseReply--
				f.messages = append(f.messages, text)
			default:
				f.messages = append(f.messages, text)
			}
			f.mu.Unlock()
			if drop || lose {
				if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
					_ = conn.Close()
				}
				return
			}
			w.WriteHeader(http.StatusCreated)
		}
	})
}

type capturePub struct {
	mu   sync.Mutex
	envs []events.Envelope
}

func (p *capturePub) Publish(_ context.Context, env events.Envelope) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.envs = append(p.envs, env)
	return nil
}

func (p *capturePub) notified(t *testing.T) []events.LeadNotified {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []events.LeadNotified
	for _, e := range p.envs {
		var n events.LeadNotified
		if err := json.Unmarshal(e.Data, &n); err != nil {
			t.Fatal(err)
		}
		out = append(out, n)
	}
	return out
}

type harness struct {
	crm  *fakeCRM
	pool *pgxpool.Pool
	pub  *capturePub
	reg  *prometheus.Registry
	port *c2s.Route
}

// newHarness wires the real notifier use case, ledger and trace (on a fresh
// database) and the real C2S route onto the fake; withGateway puts the
// gateway first.
func newHarness(t *testing.T, withGateway bool) *harness {
	t.Helper()
	h := &harness{crm: &fakeCRM{}, pub: &capturePub{}, reg: prometheus.NewRegistry()}
	h.pool = testinfra.NewPool(t, testinfra.NewDatabase(t))
	if err := store.Migrate(context.Background(), h.pool); err != nil {
		t.Fatal(err)
	}
	direct := httptest.NewServer(h.crm.handler(false))
	t.Cleanup(direct.Close)
	pol := httpxtest.Policy()
	pol.Timeout = time.Second
	pol.MaxRetries = 0        // one call per read, so failGets counts reads
	pol.BreakerFailures = 100 // these tests are about outcomes, not the breaker
	opts := httpxtest.Options(&httpxtest.Sleeper{}, nil)
	dc, err := c2s.New(c2s.Config{BaseURL: direct.URL, Token: "tok", Policy: pol, Options: opts})
	if err != nil {
		t.Fatal(err)
	}
	var gw *c2s.Gateway
	if withGateway {
		gs := httptest.NewServer(h.crm.handler(true))
		t.Cleanup(gs.Close)
		if gw, err = c2s.NewGateway(c2s.GatewayConfig{BaseURL: gs.URL, Policy: pol, Options: opts}); err != nil {
			t.Fatal(err)
		}
	}
	if h.port, err = c2s.NewRoute(dc, gw, c2s.RouteOptions{}); err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *harness) notifier(multiplier string) *app.Notifier {
	m := service.NewMetrics(h.reg, h.pool)
	return &app.Notifier{CRM: h.port, Ledger: adapters.Ledger{Pool: h.pool}, Store: adapters.Store{Pool: h.pool},
		Publisher: h.pub, Multiplier: decimal.RequireFromString(multiplier), OnUncertain: m.Uncertain}
}

// enriched is the contract lead's lead.enriched (Helena, found by both).
func enriched(t *testing.T, runKey string) (events.Envelope, events.LeadEnriched) {
	t.Helper()
	rec, err := events.NewReceived(contractLead, events.SourceWebhook, runKey, events.LeadReceived{Action: "on_create_lead"})
	if err != nil {
		t.Fatal(err)
	}
	in := events.LeadEnriched{Phone: "5511987650123", Email: "helena.duarte@example.com", Persons: []events.EnrichedPerson{
		{CPF: "31860457207", Role: events.RoleBoth, Payload: contracts.Read("workapi/cpf.json")}}}
	env, err := events.New(events.TypeEnriched, &rec, in)
	if err != nil {
		t.Fatal(err)
	}
	return env, in
}

func (h *harness) entry(t *testing.T, env events.Envelope) ledger.Entry {
	t.Helper()
	e, err := ledger.Get(context.Background(), h.pool, env.LeadID, env.RunID)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func (h *harness) runStatus(t *testing.T, runID string) string {
	t.Helper()
	var st string
	_ = h.pool.QueryRow(context.Background(), `SELECT status FROM pipeline.lead_runs WHERE run_id = $1`, runID).Scan(&st)
	return st
}

// TestLostReplyMessageOnLead: the post reached C2S and its reply was lost
// (by either route). The notifier reads the lead, finds the message, and
// records it as sent: exactly one message, lead.notified already_sent, and
// no second post by either route.
func TestLostReplyMessageOnLead(t *testing.T) {
	for _, withGateway := range []bool{false, true} {
		name := "direct"
		if withGateway {
			name = "gateway"
		}
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, withGateway)
			h.crm.set(func(f *fakeCRM) { f.loseReply = 1 })
			env, in := enriched(t, "k1")
			if err := h.notifier("1.9").Enriched(context.Background(), env, in); err != nil {
				t.Fatal(err)
			}
			if msgs := h.crm.Messages(); len(msgs) != 1 || h.crm.posts.Load() != 1 {
				t.Fatalf("%d messages after %d posts, want exactly one of each", len(msgs), h.crm.posts.Load())
			}
			if withGateway && h.crm.directPosts.Load() != 0 {
				t.Fatal("an uncertain gateway post fell back to direct C2S")
			}
			if n := h.pub.notified(t); len(n) != 1 || n[0].Status != app.StatusAlreadySent || n[0].Route != name {
				t.Fatalf("lead.notified = %+v, want one already_sent via %s", n, name)
			}
			if e := h.entry(t, env); e.Status != ledger.StatusSent || e.Attempts != 1 || e.Route != name {
				t.Fatalf("ledger = %+v", e)
			}
			if st := h.runStatus(t, env.RunID); st != "notified" {
				t.Fatalf("run = %q", st)
			}
			// A redelivery posts nothing.
			if err := h.notifier("1.9").Enriched(context.Background(), env, in); err != nil || h.crm.posts.Load() != 1 {
				t.Fatalf("redelivery: %v, %d posts", err, h.crm.posts.Load())
			}
		})
	}
}

// TestLostReplyNoMessagesKey: the lead document has no messages key (the
// confirmed lead.json), so nobody can tell whether the lost post landed.
// Nothing is posted again: the delivery is uncertain in the ledger, the run
// ends uncertain in the trace, the error is permanent (dead letter) with a
// reason that says so, and the metrics count it.
func TestLostReplyNoMessagesKey(t *testing.T) {
	for _, withGateway := range []bool{false, true} {
		route := map[bool]string{false: "direct", true: "gateway"}[withGateway]
		t.Run(route, func(t *testing.T) {
			h := newHarness(t, withGateway)
			h.crm.set(func(f *fakeCRM) { f.loseReply, f.noMessagesKey = 1, true })
			env, in := enriched(t, "k1")
			n := h.notifier("1.9")
			for i := 0; i < 2; i++ { // a requeue checks again and still posts nothing
				err := n.Enriched(context.Background(), env, in)
				if err == nil || failure.ShouldNack(err) || !strings.Contains(err.Error(), "uncertain delivery") {
					t.Fatalf("attempt %d: err = %v, want a permanent error saying uncertain delivery", i, err)
				}
			}
			if h.crm.posts.Load() != 1 || len(h.crm.Messages()) != 1 || h.crm.directPosts.Load() != map[bool]int32{false: 1, true: 0}[withGateway] {
				t.Fatalf("%d posts (%d direct), want exactly the first one", h.crm.posts.Load(), h.crm.directPosts.Load())
			}
			if e := h.entry(t, env); e.Status != ledger.StatusUncertain || e.Route != route || !strings.Contains(e.Reason, "uncertain delivery") {
				t.Fatalf("ledger = %+v", e)
			}
			if st := h.runStatus(t, env.RunID); st != "uncertain" {
				t.Fatalf("run = %q, want uncertain", st)
			}
			if got := h.pub.notified(t); len(got) != 0 {
				t.Fatalf("published %+v for an uncertain delivery", got)
			}
			if v := httpxtest.CounterValue(h.reg, "leadflow_uncertain_deliveries_total", map[string]string{"route": route}); v != 1 {
				t.Fatalf("leadflow_uncertain_deliveries_total = %v, want 1 (counted once)", v)
			}
			if v := gauge(t, h.reg, "leadflow_uncertain_deliveries_open"); v != 1 {
				t.Fatalf("leadflow_uncertain_deliveries_open = %v, want 1", v)
			}
		})
	}
}

func gauge(t *testing.T, g prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	return -1
}

// TestUncertainLeadUnreadable: after a lost reply, a lead that cannot be read
// now is retried later (nak), never posted blind. Once readable: found, or,
// when the lead lists messages without it, posted again.
func TestUncertainLeadUnreadable(t *testing.T) {
	t.Run("found once readable", func(t *testing.T) {
		h := newHarness(t, false)
		h.crm.set(func(f *fakeCRM) { f.loseReply, f.failGets = 1, 3 })
		env, in := enriched(t, "k1")
		err := h.notifier("1.9").Enriched(context.Background(), env, in)
		if err == nil || !failure.ShouldNack(err) {
			t.Fatalf("err = %v, want a nak", err)
		}
		if e := h.entry(t, env); e.Status != ledger.StatusPosting || h.crm.posts.Load() != 1 {
			t.Fatalf("ledger %+v after %d posts", e, h.crm.posts.Load())
		}
		h.crm.set(func(f *fakeCRM) { f.failGets = 0 })
		if err := h.notifier("1.9").Enriched(context.Background(), env, in); err != nil {
			t.Fatal(err)
		}
		if h.crm.posts.Load() != 1 || len(h.crm.Messages()) != 1 {
			t.Fatalf("%d posts, %d messages", h.crm.posts.Load(), len(h.crm.Messages()))
		}
		if n := h.pub.notified(t); len(n) != 1 || n[0].Status != app.StatusAlreadySent {
			t.Fatalf("lead.notified = %+v", n)
		}
	})
	t.Run("listed without it: posted again", func(t *testing.T) {
		h := newHarness(t, false)
		h.crm.set(func(f *fakeCRM) { f.dropPost = 1 }) // the connection dropped, the post never landed
		env, in := enriched(t, "k1")
		err := h.notifier("1.9").Enriched(context.Background(), env, in)
		if !failure.Is(err, failure.KindUncertain) || failure.RetryAfterOf(err) <= 2*time.Second || h.crm.posts.Load() != 1 {
			t.Fatalf("err = %v after %d posts: want an uncertain nak, re-checked on the redelivery (no in-process retry)", err, h.crm.posts.Load())
		}
		if err := h.notifier("1.9").Enriched(context.Background(), env, in); err != nil {
			t.Fatal(err)
		}
		if h.crm.posts.Load() != 2 || len(h.crm.Messages()) != 1 || h.crm.gets.Load() != 2 {
			t.Fatalf("%d posts, %d reads, %d messages; want a read before the second post and one message",
				h.crm.posts.Load(), h.crm.gets.Load(), len(h.crm.Messages()))
		}
		if n := h.pub.notified(t); len(n) != 1 || n[0].Status != app.StatusSent {
			t.Fatalf("lead.notified = %+v", n)
		}
	})
}

// TestLedgerKeyedByEvent: the delivery is the event's, not the text's. A
// multiplier change (a different text) between attempts never makes a
// second message: neither after a recorded post nor after a post whose
// reply was lost. A new run is a new delivery.
func TestLedgerKeyedByEvent(t *testing.T) {
	t.Run("after a recorded post", func(t *testing.T) {
		h := newHarness(t, false)
		env, in := enriched(t, "k1")
		if err := h.notifier("1.9").Enriched(context.Background(), env, in); err != nil {
			t.Fatal(err)
		}
		if err := h.notifier("2.5").Enriched(context.Background(), env, in); err != nil {
			t.Fatal(err)
		}
		if h.crm.posts.Load() != 1 || h.crm.gets.Load() != 0 {
			t.Fatalf("%d posts, %d reads", h.crm.posts.Load(), h.crm.gets.Load())
		}
		if n := h.pub.notified(t); len(n) != 2 || n[1].Status != app.StatusAlreadySent || n[1].MessageHash != n[0].MessageHash {
			t.Fatalf("lead.notified = %+v", n)
		}
	})
	t.Run("after a lost reply", func(t *testing.T) {
		h := newHarness(t, false)
		h.crm.set(func(f *fakeCRM) { f.loseReply, f.failGets = 1, 1 })
		env, in := enriched(t, "k1")
		if err := h.notifier("1.9").Enriched(context.Background(), env, in); err == nil {
			t.Fatal("want a nak while the lead cannot be read")
		}
		first := h.crm.Messages()[0]
		if err := h.notifier("2.5").Enriched(context.Background(), env, in); err != nil {
			t.Fatal(err)
		}
		if msgs := h.crm.Messages(); len(msgs) != 1 || msgs[0] != first || h.crm.posts.Load() != 1 {
			t.Fatalf("%d messages after %d posts, want the first text only", len(msgs), h.crm.posts.Load())
		}
		if body, _ := enrichment.Compose(in, decimal.RequireFromString("2.5")); body == first {
			t.Fatal("the multiplier did not change the text: the test proves nothing")
		}
	})
	t.Run("a new run is a new delivery", func(t *testing.T) {
		h := newHarness(t, false)
		for _, k := range []string{"k1", "k2"} {
			env, in := enriched(t, k)
			if err := h.notifier("1.9").Enriched(context.Background(), env, in); err != nil {
				t.Fatal(err)
			}
		}
		if h.crm.posts.Load() != 2 {
			t.Fatalf("%d posts, want one per run", h.crm.posts.Load())
		}
	})
}

// TestRepostPostsOnce: an operator's repost request posts once, without
// reading the lead first, and a second delivery posts nothing.
func TestRepostPostsOnce(t *testing.T) {
	h := newHarness(t, false)
	h.crm.set(func(f *fakeCRM) { f.dropPost, f.noMessagesKey = 1, true })
	env, in := enriched(t, "k1")
	if err := h.notifier("1.9").Enriched(context.Background(), env, in); err == nil {
		t.Fatal("want an uncertain delivery")
	}
	if _, err := h.pool.Exec(context.Background(), `UPDATE pipeline.notifications SET status = 'repost'`); err != nil {
		t.Fatal(err)
	}
	gets := h.crm.gets.Load()
	for i := 0; i < 2; i++ {
		if err := h.notifier("1.9").Enriched(context.Background(), env, in); err != nil {
			t.Fatal(err)
		}
	}
	if h.crm.posts.Load() != 2 || len(h.crm.Messages()) != 1 || h.crm.gets.Load() != gets {
		t.Fatalf("%d posts, %d messages, %d reads", h.crm.posts.Load(), len(h.crm.Messages()), h.crm.gets.Load()-gets)
	}
	if st := h.runStatus(t, env.RunID); st != "notified" {
		t.Fatalf("run = %q", st)
	}
	if e := h.entry(t, env); e.Status != ledger.StatusSent || e.Attempts != 2 {
		t.Fatalf("ledger = %+v", e)
	}
}

// TestWaitingForTheBudgetHoldsNoConnection: the post's slot of the shared
// C2S budget is taken before the lead's exclusive section opens, so a
// delivery waiting for its turn holds no pooled connection (a pool smaller
// than the handlers would otherwise starve), and a refusal (the slot is
// after the try's deadline) opens nothing and is a wait, not a failure.
func TestWaitingForTheBudgetHoldsNoConnection(t *testing.T) {
	h := newHarness(t, false)
	n := h.notifier("1.9")
	var held []int32
	n.Slot = func(ctx context.Context) (context.Context, error) {
		held = append(held, h.pool.Stat().AcquiredConns())
		return ctx, nil
	}
	env, in := enriched(t, "k1")
	if err := n.Enriched(context.Background(), env, in); err != nil {
		t.Fatal(err)
	}
	if len(held) != 1 || held[0] != 0 {
		t.Fatalf("connections held while waiting for the slot: %v, want one wait holding 0", held)
	}
	if msgs := h.crm.Messages(); len(msgs) != 1 {
		t.Fatalf("%d messages, want 1", len(msgs))
	}

	refused := failure.RateLimited("rate budget c2s", time.Minute, errors.New("next slot after the deadline"))
	n.Slot = func(ctx context.Context) (context.Context, error) { return ctx, refused }
	env2, in2 := enriched(t, "k2")
	err := n.Enriched(context.Background(), env2, in2)
	if !failure.ShouldWait(err) || failure.RetryAfterOf(err) != time.Minute {
		t.Fatalf("err = %v, want the budget's wait (the router waits, no delivery spent)", err)
	}
	var entries int
	if err := h.pool.QueryRow(context.Background(), `SELECT count(*) FROM pipeline.notifications WHERE run_key = 'k2'`).Scan(&entries); err != nil {
		t.Fatal(err)
	}
	if entries != 0 || len(h.crm.Messages()) != 1 {
		t.Fatalf("a refused slot opened %d deliveries and left %d messages; want 0 and 1", entries, len(h.crm.Messages()))
	}
}
