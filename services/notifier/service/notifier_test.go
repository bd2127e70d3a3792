package service_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/leadflow/leadflow/cmd/stack/stack"
	"github.com/leadflow/leadflow/pkg/backbone/events"
	"github.com/leadflow/leadflow/pkg/contracts"
	"github.com/leadflow/leadflow/pkg/sim"
	"github.com/leadflow/leadflow/pkg/testinfra"
)

func startStack(t *testing.T, env map[string]string, cfg sim.Config) (*stack.Stack, *pgxpool.Pool) {
	t.Helper()
	e := map[string]string{"DATABASE_URL": testinfra.NewDatabase(t)}
	for k, v := range env {
		e[k] = v
	}
	s, err := stack.Start(context.Background(), stack.Options{Env: e, Sim: cfg, Log: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s, testinfra.NewPool(t, e["DATABASE_URL"])
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func postWebhook(t *testing.T, s *stack.Stack, body []byte) {
	t.Helper()
	resp, err := http.Post(s.IngestURL+"/api/v1/webhooks/c2s?token="+url.QueryEscape(s.Env["WEBHOOK_SECRET"]), "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		raw, _ := io.ReadAll(resp.Body)
		t.Fatalf("webhook = %d %s", resp.StatusCode, raw)
	}
}

func webhookFor(l sim.Lead) []byte {
	b, _ := json.Marshal(map[string]any{"id": l.ID, "hook_action": "on_create_lead", "attributes": map[string]any{
		"updated_at": "2025-11-22T10:00:00Z", "customer": map[string]any{"name": l.Name, "phone": l.Phone, "email": l.Email}}})
	return b
}

// runStatus is the lead's newest run status ("" when none).
func runStatus(t *testing.T, pool *pgxpool.Pool, lead string) string {
	t.Helper()
	var st string
	_ = pool.QueryRow(context.Background(), `SELECT status FROM pipeline.lead_runs WHERE lead_id = $1 ORDER BY started_at DESC LIMIT 1`, lead).Scan(&st)
	return st
}

func ledgerRow(t *testing.T, pool *pgxpool.Pool, lead string) (status string, attempts int) {
	t.Helper()
	_ = pool.QueryRow(context.Background(), `SELECT status, attempts FROM pipeline.notifications WHERE lead_id = $1`, lead).Scan(&status, &attempts)
	return status, attempts
}

func notifiedOutcome(t *testing.T, pool *pgxpool.Pool, lead string) string {
	t.Helper()
	var o string
	_ = pool.QueryRow(context.Background(), `SELECT outcome FROM pipeline.lead_stages WHERE lead_id = $1 AND stage = 'notified'`, lead).Scan(&o)
	return o
}

// sameLeads are simulated leads whose phone and email lead to one person.
func sameLeads(s *stack.Stack, n int) []sim.Lead {
	var out []sim.Lead
	for _, l := range s.Sims.Pop.Leads() {
		if l.Kind == sim.LeadSame && l.Phone != "" && l.Email != "" && len(s.Sims.Pop.ExpectedPersons(l.ID)) == 1 && len(out) < n {
			out = append(out, l)
		}
	}
	return out
}

// holdingC2S stands in front of the C2S simulator. While holding, a
// create_message is recorded by the simulator and then its answer is held
// back: the post has happened, the notifier has not heard of it.
type holdingC2S struct {
	target  atomic.Pointer[http.Handler]
	holding atomic.Bool
	release chan struct{}
	once    sync.Once
}

func (h *holdingC2S) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	target := *h.target.Load()
	if !h.holding.Load() || r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/create_message") {
		target.ServeHTTP(w, r)
		return
	}
	rec := httptest.NewRecorder()
	target.ServeHTTP(rec, r)
	select {
	case <-h.release:
	case <-r.Context().Done():
		return
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

func (h *holdingC2S) Release() { h.once.Do(func() { close(h.release) }) }

// buildNotifier compiles the notifier binary, so the crash is a real
// SIGKILL of a real process.
func buildNotifier(t *testing.T) string {
	t.Helper()
	bin, err := testinfra.BuildService(t.TempDir(), "services/notifier")
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// TestCrashAfterPostBeforeAck kills the notifier (SIGKILL) after C2S stored
// the message and before the notifier recorded it or acked the event. The
// restarted notifier finds the delivery uncertain, sees the message already
// on the lead, and does not post it again: one message in C2S.
func TestCrashAfterPostBeforeAck(t *testing.T) {
	bin := buildNotifier(t)
	hold := &holdingC2S{release: make(chan struct{})}
	front := httptest.NewServer(hold)
	t.Cleanup(front.Close)
	t.Cleanup(hold.Release)
	var none http.Handler = http.NotFoundHandler()
	hold.target.Store(&none)
	s, pool := startStack(t, map[string]string{"C2S_BASE_URL": front.URL, "C2S_TOKEN": "c2s-token"}, sim.Config{Seed: 21, People: 10})
	var c2s http.Handler = s.Sims.C2S
	hold.target.Store(&c2s)

	// The in-process notifier makes way for a real process.
	s.StopService("notifier")
	var env []string
	for k, v := range s.Env {
		env = append(env, k+"="+v)
	}
	var out bytes.Buffer
	proc := exec.Command(bin)
	proc.Env, proc.Stdout, proc.Stderr = env, &out, &out
	if err := proc.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- proc.Wait() }()
	t.Cleanup(func() { _ = proc.Process.Kill() })

	hold.holding.Store(true)
	postWebhook(t, s, contracts.Read("c2s/webhook_on_create_lead.json"))
	waitFor(t, "C2S to store the message", 60*time.Second, func() bool { return len(s.Sims.C2S.Messages(sim.ContractLeadID)) == 1 })

	if err := proc.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-exited
	if st, _ := ledgerRow(t, pool, sim.ContractLeadID); st != "posting" {
		t.Fatalf("ledger = %q after the crash, want posting (the post began, its end was never recorded)", st)
	}
	if st := runStatus(t, pool, sim.ContractLeadID); st == "notified" {
		t.Fatal("the run is notified although the notifier died before recording it")
	}
	hold.holding.Store(false)
	hold.Release()

	if err := s.StartService("notifier"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the redelivered event to finish the run", 90*time.Second, func() bool {
		return runStatus(t, pool, sim.ContractLeadID) == "notified"
	})
	if n := len(s.Sims.C2S.Messages(sim.ContractLeadID)); n != 1 {
		t.Fatalf("C2S holds %d messages on the lead, want exactly 1", n)
	}
	if st, attempts := ledgerRow(t, pool, sim.ContractLeadID); st != "sent" || attempts != 1 {
		t.Fatalf("ledger = %q after %d posts, want sent after exactly one post", st, attempts)
	}
	if o := notifiedOutcome(t, pool, sim.ContractLeadID); o != "already_sent" {
		t.Fatalf("notified outcome = %q, want already_sent (found on the lead, not posted again)", o)
	}
	if want := string(contracts.Read("message/same_person.txt")); s.Sims.C2S.Messages(sim.ContractLeadID)[0].Body != want {
		t.Fatal("the message differs from message/same_person.txt")
	}
}

// createMessages returns the simulator's log of create_message calls on lead.
func createMessages(s *stack.Stack, lead string) []sim.Request {
	var out []sim.Request
	for _, r := range s.Sims.C2S.Requests() {
		if r.Method == http.MethodPost && strings.Contains(r.Path, "/leads/"+lead+"/create_message") {
			out = append(out, r)
		}
	}
	return out
}

// TestNotifierUpstreamFailures: 429 waits as told, other 4xx dead-letter
// with the reason, 5xx and timeouts back off and then succeed, and in every
// case the seller sees at most one message.
func TestNotifierUpstreamFailures(t *testing.T) {
	s, pool := startStack(t, map[string]string{"C2S_TIMEOUT": "1s", "C2S_RATE": "100", "C2S_MAX_RETRIES": "1"},
		sim.Config{Seed: 22, People: 40})
	leads := sameLeads(s, 4)
	if len(leads) < 4 {
		t.Fatalf("the population has %d same-person leads", len(leads))
	}

	t.Run("429 waits Retry-After, then one message", func(t *testing.T) {
		l := leads[0]
		s.Sims.C2S.SetFaults(sim.Faults{Burst429: 1, RetryAfter: "2"})
		defer s.Sims.C2S.ClearFaults()
		postWebhook(t, s, webhookFor(l))
		waitFor(t, "the run to finish", 60*time.Second, func() bool { return runStatus(t, pool, l.ID) == "notified" })
		reqs := createMessages(s, l.ID)
		if len(reqs) != 2 || reqs[0].Status != http.StatusTooManyRequests || reqs[1].Status != http.StatusCreated {
			t.Fatalf("create_message calls = %+v, want a 429 then a 201", reqs)
		}
		// Honouring Retry-After is behaviour, not speed: the retry may not
		// start before the two seconds C2S asked for.
		if gap := reqs[1].Time.Sub(reqs[0].Time); gap < 2*time.Second {
			t.Fatalf("retried after %s, C2S asked for 2s", gap)
		}
		if n := len(s.Sims.C2S.Messages(l.ID)); n != 1 {
			t.Fatalf("%d messages, want 1", n)
		}
	})

	t.Run("4xx dead-letters with the reason", func(t *testing.T) {
		l := leads[1]
		s.Sims.C2S.SetFaults(sim.Faults{ErrorRate: 1, ErrorStatus: http.StatusUnprocessableEntity})
		defer s.Sims.C2S.ClearFaults()
		nc, err := nats.Connect(s.Env["NATS_URL"])
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		js, _ := jetstream.New(nc)
		postWebhook(t, s, webhookFor(l))
		waitFor(t, "the run to be marked failed", 60*time.Second, func() bool { return runStatus(t, pool, l.ID) == "failed" })
		ctx := context.Background()
		st, err := js.Stream(ctx, events.StreamName)
		if err != nil {
			t.Fatal(err)
		}
		msg, err := st.GetLastMsgForSubject(ctx, events.SubjectDeadLetter)
		if err != nil {
			t.Fatal(err)
		}
		var dl events.DeadLetter
		if err := json.Unmarshal(msg.Data, &dl); err != nil {
			t.Fatal(err)
		}
		if dl.LeadID != l.ID || !strings.Contains(dl.Stage, "notifier") || !strings.Contains(dl.Reason, "422") {
			t.Fatalf("dead letter = stage %q lead %q reason %q", dl.Stage, dl.LeadID, dl.Reason)
		}
		if n := len(createMessages(s, l.ID)); n != 1 {
			t.Fatalf("a permanent 4xx was retried: %d calls", n)
		}
		if n := len(s.Sims.C2S.Messages(l.ID)); n != 0 {
			t.Fatalf("%d messages, want none", n)
		}
	})

	// A 5xx or a timeout after create_message was sent leaves the delivery
	// uncertain (c2s/API.md). The simulator's lead lists no messages until
	// one is posted, like the confirmed lead.json, so the notifier cannot
	// check: it posts nothing more, marks the delivery uncertain and
	// dead-letters it with the reason.
	for i, tc := range []struct {
		name   string
		faults sim.Faults
		seen   func(sim.Request) bool
	}{
		{"5xx after send is uncertain: no second post, dead letter", sim.Faults{ErrorRate: 1, ErrorStatus: http.StatusInternalServerError},
			func(r sim.Request) bool { return r.Status == http.StatusInternalServerError }},
		// A hung POST is never answered (the simulator notices a client
		// leaving only once the body was read), so the sign is the GET of
		// the uncertain re-check timing out after it.
		{"timeout after send is uncertain: no second post, dead letter", sim.Faults{HangRate: 1},
			func(r sim.Request) bool { return r.Fault == "hang" && r.Method == http.MethodGet }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := leads[2+i]
			s.Sims.C2S.SetFaults(tc.faults)
			defer s.Sims.C2S.ClearFaults()
			postWebhook(t, s, webhookFor(l))
			defer func() {
				if t.Failed() {
					t.Logf("run %q; C2S calls: %+v", runStatus(t, pool, l.ID), s.Sims.C2S.Requests())
				}
			}()
			waitFor(t, "a failed create_message", 60*time.Second, func() bool {
				for _, r := range s.Sims.C2S.Requests() {
					if strings.Contains(r.Path, "/leads/"+l.ID) && tc.seen(r) {
						return true
					}
				}
				return false
			})
			s.Sims.C2S.ClearFaults()
			waitFor(t, "the run to end uncertain", 90*time.Second, func() bool { return runStatus(t, pool, l.ID) == "uncertain" })
			if st, _ := ledgerRow(t, pool, l.ID); st != "uncertain" {
				t.Fatalf("ledger = %q", st)
			}
			// The simulator logs a hung request only once its body was read,
			// so at most the failed first post shows; a second post would
			// show, answered.
			if reqs := createMessages(s, l.ID); len(reqs) > 1 || (len(reqs) == 1 && reqs[0].Fault == "") {
				t.Fatalf("create_message calls = %+v, want only the first, failed one: never post blind", reqs)
			}
			if n := len(s.Sims.C2S.Messages(l.ID)); n != 0 {
				t.Fatalf("%d messages on the lead, want none", n)
			}
			waitFor(t, "the dead letter", 30*time.Second, func() bool {
				dl := lastDeadLetter(t, s)
				return dl.LeadID == l.ID && strings.Contains(dl.Reason, "uncertain delivery") && strings.Contains(dl.Stage, "notifier")
			})
			if st := runStatus(t, pool, l.ID); st != "uncertain" {
				t.Fatalf("the dead letter moved the run to %q; an uncertain run waits for an operator", st)
			}
		})
	}
}

// lastDeadLetter is the newest entry of leads.dlq (zero when none).
func lastDeadLetter(t *testing.T, s *stack.Stack) events.DeadLetter {
	t.Helper()
	nc, err := nats.Connect(s.Env["NATS_URL"])
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	st, err := js.Stream(ctx, events.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	var dl events.DeadLetter
	msg, err := st.GetLastMsgForSubject(ctx, events.SubjectDeadLetter)
	if err == nil {
		_ = json.Unmarshal(msg.Data, &dl)
	}
	return dl
}

// TestGatewayFallbackPostsOnce: with the gateway configured, a post that
// provably never reached it (a 503 answered before forwarding, a refused
// connection) goes direct at once, once.
func TestGatewayFallbackPostsOnce(t *testing.T) {
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + closed.Addr().String()
	_ = closed.Close()
	for _, tc := range []struct {
		name string
		env  map[string]string
		sim  sim.FaultSet
	}{
		{"503 before forwarding", map[string]string{"LEADFLOW_USE_GATEWAY": "true"},
			sim.FaultSet{Gateway: sim.Faults{Down: true, DownStatus: http.StatusServiceUnavailable}}},
		{"connection refused", map[string]string{"C2S_GATEWAY_URL": refused}, sim.FaultSet{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, pool := startStack(t, tc.env, sim.Config{Seed: 23, People: 10, Faults: tc.sim})
			if s.Env["C2S_GATEWAY_URL"] == "" {
				t.Fatal("the stack did not configure the gateway")
			}
			postWebhook(t, s, contracts.Read("c2s/webhook_on_create_lead.json"))
			waitFor(t, "the run to finish", 60*time.Second, func() bool { return runStatus(t, pool, sim.ContractLeadID) == "notified" })
			msgs := s.Sims.C2S.Messages(sim.ContractLeadID)
			if len(msgs) != 1 || msgs[0].Route != "direct" {
				t.Fatalf("messages = %+v, want one, posted direct", msgs)
			}
			if tc.sim.Gateway.Down && s.Sims.Gateway.RequestCount() == 0 {
				t.Fatal("the gateway was never tried first")
			}
			var route string
			_ = pool.QueryRow(context.Background(), `SELECT route FROM pipeline.notifications WHERE lead_id = $1`, sim.ContractLeadID).Scan(&route)
			if route != "direct" {
				t.Fatalf("ledger route = %q", route)
			}
		})
	}
}

// droppingC2S stands in front of the C2S simulator and, while dropping,
// lets a create_message reach the simulator (it is stored) and then drops
// the connection: the reply is lost after the request was sent.
type droppingC2S struct {
	target   atomic.Pointer[http.Handler]
	dropping atomic.Bool
}

func (d *droppingC2S) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	target := *d.target.Load()
	if !d.dropping.Load() || r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/create_message") {
		target.ServeHTTP(w, r)
		return
	}
	target.ServeHTTP(httptest.NewRecorder(), r)
	if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
		_ = conn.Close()
	}
}

// TestLostReplyThroughTheStack: the whole product, a create_message whose
// reply is lost after C2S stored it. The notifier reads the lead, finds the
// message and ends the run notified (already_sent): one message.
func TestLostReplyThroughTheStack(t *testing.T) {
	front := &droppingC2S{}
	var none http.Handler = http.NotFoundHandler()
	front.target.Store(&none)
	srv := httptest.NewServer(front)
	t.Cleanup(srv.Close)
	s, pool := startStack(t, map[string]string{"C2S_BASE_URL": srv.URL, "C2S_TOKEN": "c2s-token"}, sim.Config{Seed: 24, People: 10})
	var c2s http.Handler = s.Sims.C2S
	front.target.Store(&c2s)
	front.dropping.Store(true)
	postWebhook(t, s, contracts.Read("c2s/webhook_on_create_lead.json"))
	waitFor(t, "the run to finish", 60*time.Second, func() bool { return runStatus(t, pool, sim.ContractLeadID) == "notified" })
	if n := len(s.Sims.C2S.Messages(sim.ContractLeadID)); n != 1 {
		t.Fatalf("%d messages, want exactly 1", n)
	}
	if n := len(createMessages(s, sim.ContractLeadID)); n != 1 {
		t.Fatalf("%d create_message calls, want 1", n)
	}
	if o := notifiedOutcome(t, pool, sim.ContractLeadID); o != "already_sent" {
		t.Fatalf("notified outcome = %q, want already_sent", o)
	}
}
