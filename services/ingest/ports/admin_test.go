package ports_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/leadflow/leadflow/pkg/backbone/events"
	"github.com/leadflow/leadflow/pkg/ops"
	"github.com/leadflow/leadflow/pkg/store/runs"
	"github.com/leadflow/leadflow/pkg/testinfra/backbone"
	"github.com/leadflow/leadflow/services/ingest/ports"
)

const (
	adminKey = "admin-key"
	readKey  = "read-key"
)

// adminServer serves ingest's routes with the admin API on a real stream
// and database, with a read key and an admin key.
func adminServer(t *testing.T) (*httptest.Server, jetstream.JetStream) {
	ts, js, _ := adminServerDB(t)
	return ts, js
}

func adminServerDB(t *testing.T) (*httptest.Server, jetstream.JetStream, *pgxpool.Pool) {
	t.Helper()
	js, pool := backbone.Start(t)
	keys, err := ports.ParseAPIKeys([]string{readKey, adminKey + ":admin"})
	if err != nil {
		t.Fatal(err)
	}
	srv := &ports.Server{
		APIKeys: keys,
		Log:     zerolog.Nop(),
		Metrics: ports.NewMetrics(prometheus.NewRegistry()),
		Extra:   ports.Admin{Ops: ops.New(js, pool), Log: zerolog.Nop()}.Routes,
	}
	ts := httptest.NewServer(srv.Routes())
	t.Cleanup(ts.Close)
	return ts, js, pool
}

func call(t *testing.T, method, url, key, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s %s: not JSON: %s", method, url, raw)
	}
	return resp.StatusCode, out
}

func TestAdminAPI(t *testing.T) {
	ts, js := adminServer(t)
	ctx := context.Background()
	env, _ := events.NewReceived("L1", events.SourceWebhook, "k", events.LeadReceived{Action: "on_create_lead"})
	b, _ := json.Marshal(env)
	if _, err := js.Publish(ctx, events.SubjectReceived, b, jetstream.WithMsgID(env.MsgID())); err != nil {
		t.Fatal(err)
	}
	dl, _ := json.Marshal(events.DeadLetter{SchemaVersion: 1, OriginalSubject: events.SubjectReceived, OriginalMsgID: "orig",
		Stage: "resolver__leads_received", Reason: "boom", FailedAt: time.Now().UTC(), LeadID: "L1", Event: b})
	ack, err := js.Publish(ctx, events.SubjectDeadLetter, dl)
	if err != nil {
		t.Fatal(err)
	}
	dlqSeq := ack.Sequence

	cases := []struct {
		name, method, path, key, body string
		status                        int
		check                         func(t *testing.T, out map[string]any)
	}{
		{"replay needs a key", "POST", "/api/v1/admin/replay", "", `{"dry_run":true}`, 401, nil},
		{"dlq needs a key", "GET", "/api/v1/admin/dlq", "wrong", "", 401, nil},
		{"requeue needs a key", "POST", "/api/v1/admin/dlq/1/requeue", "", "", 401, nil},
		{"a read key may dry-run", "POST", "/api/v1/admin/replay", readKey, `{"dry_run":true}`, 200, nil},
		{"a read key may not replay with notify", "POST", "/api/v1/admin/replay", readKey, `{"notify":true}`, 403, nil},
		{"a read key may not replay with refresh", "POST", "/api/v1/admin/replay", readKey, `{"refresh":true,"dry_run":true}`, 403, nil},
		{"a read key may list dead letters", "GET", "/api/v1/admin/dlq", readKey, "", 200, nil},
		{"a read key may not requeue", "POST", "/api/v1/admin/dlq/" + itoa(dlqSeq) + "/requeue", readKey, "", 403,
			func(t *testing.T, out map[string]any) {
				if !strings.Contains(out["error"].(string), ":admin") {
					t.Errorf("error = %v, want it to say how to get an admin key", out["error"])
				}
			}},
		{"a read key may not purge", "DELETE", "/api/v1/admin/dlq", readKey, "", 403, nil},
		{"replay body not JSON", "POST", "/api/v1/admin/replay", adminKey, `{`, 400, nil},
		{"replay unknown selector", "POST", "/api/v1/admin/replay", adminKey, `{"lead":"L1"}`, 400, nil},
		{"replay bad subject", "POST", "/api/v1/admin/replay", adminKey, `{"subject":"leads.dlq","dry_run":true}`, 400,
			func(t *testing.T, out map[string]any) {
				if !strings.Contains(out["error"].(string), "subject") {
					t.Errorf("error = %v, want it to name the subject", out["error"])
				}
			}},
		{"replay dry run", "POST", "/api/v1/admin/replay", adminKey, `{"dry_run":true,"since":"1h"}`, 200,
			func(t *testing.T, out map[string]any) {
				sum := out["summary"].(map[string]any)
				if sum["to_publish"] != 1.0 || sum["published"] != 0.0 || sum["leads"].([]any)[0] != "L1" {
					t.Errorf("summary = %v", sum)
				}
			}},
		{"dlq list", "GET", "/api/v1/admin/dlq?stage=resolver", adminKey, "", 200,
			func(t *testing.T, out map[string]any) {
				if out["count"] != 1.0 || out["dead_letters"].([]any)[0].(map[string]any)["reason"] != "boom" {
					t.Errorf("dlq = %v", out)
				}
			}},
		{"requeue bad seq", "POST", "/api/v1/admin/dlq/abc/requeue", adminKey, "", 400, nil},
		{"requeue a live event", "POST", "/api/v1/admin/dlq/1/requeue", adminKey, "", 404, nil},
		{"requeue unknown", "POST", "/api/v1/admin/dlq/999/requeue", adminKey, "", 404, nil},
		{"requeue", "POST", "/api/v1/admin/dlq/" + itoa(dlqSeq) + "/requeue", adminKey, "", 200,
			func(t *testing.T, out map[string]any) {
				r := out["requeued"].(map[string]any)
				if r["msg_id"] != "orig:requeue:"+itoa(dlqSeq) || r["subject"] != events.SubjectReceived {
					t.Errorf("requeued = %v", r)
				}
			}},
		{"requeued entry is gone", "POST", "/api/v1/admin/dlq/" + itoa(dlqSeq) + "/requeue", adminKey, "", 404, nil},
		{"purge", "DELETE", "/api/v1/admin/dlq?stage=enricher", adminKey, "", 200,
			func(t *testing.T, out map[string]any) {
				if out["purged"] != 0.0 {
					t.Errorf("purge = %v", out)
				}
			}},
		{"dlq empty", "GET", "/api/v1/admin/dlq", adminKey, "", 200,
			func(t *testing.T, out map[string]any) {
				if out["count"] != 0.0 {
					t.Errorf("dlq = %v", out)
				}
			}},
		{"real replay", "POST", "/api/v1/admin/replay", adminKey, `{"leads":["L1"]}`, 200,
			func(t *testing.T, out map[string]any) {
				// The original and its requeue are one lead: one event.
				sum := out["summary"].(map[string]any)
				if sum["published"] != 1.0 || sum["selected"] != 2.0 || sum["replay_id"] == "" {
					t.Errorf("summary = %v", sum)
				}
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, out := call(t, c.method, ts.URL+c.path, c.key, c.body)
			if status != c.status {
				t.Fatalf("status %d, want %d: %v", status, c.status, out)
			}
			if c.check != nil {
				c.check(t, out)
			}
		})
	}
	// The requeue stored the original event again under its new id.
	st, _ := js.Stream(ctx, events.StreamName)
	m, err := st.GetMsg(ctx, dlqSeq+1)
	if err != nil || m.Subject != events.SubjectReceived || m.Header.Get(nats.MsgIdHdr) != "orig:requeue:"+itoa(dlqSeq) || string(m.Data) != string(b) {
		t.Fatalf("requeued message = %+v, %v", m, err)
	}
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }

func TestParseAPIKeys(t *testing.T) {
	keys, err := ports.ParseAPIKeys([]string{"key1", "key2:admin", " key3 :admin"})
	if err != nil || len(keys) != 3 || keys[0] != (ports.APIKey{Key: "key1"}) ||
		keys[1] != (ports.APIKey{Key: "key2", Admin: true}) || keys[2] != (ports.APIKey{Key: "key3", Admin: true}) {
		t.Fatalf("keys = %+v, %v", keys, err)
	}
	if _, err := ports.ParseAPIKeys([]string{":admin", "a", "a:admin"}); err == nil ||
		!strings.Contains(err.Error(), "entry 1") || !strings.Contains(err.Error(), "entry 3") || strings.Contains(err.Error(), `"a"`) {
		t.Fatalf("err = %v, want both problems named and no key echoed", err)
	}
}

// uncertainDelivery stores what the notifier leaves behind for an uncertain
// delivery: the run (uncertain), the ledger entry and the dead letter
// carrying the lead.enriched event.
func uncertainDelivery(t *testing.T, js jetstream.JetStream, pool *pgxpool.Pool, leadID string) events.Envelope {
	t.Helper()
	ctx := context.Background()
	rec, _ := events.NewReceived(leadID, events.SourceWebhook, "k", events.LeadReceived{Action: "on_create_lead"})
	env, _ := events.New(events.TypeEnriched, &rec, events.LeadEnriched{Persons: []events.EnrichedPerson{{CPF: "31860457207", Role: events.RoleBoth}}})
	if err := runs.StartRun(ctx, pool, rec); err != nil {
		t.Fatal(err)
	}
	step := env
	step.EventID = events.ID("notify.uncertain", env.RunID)
	if err := runs.Record(ctx, pool, step, runs.Outcome{Stage: runs.StageUncertain, Outcome: "uncertain"}); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO pipeline.notifications (lead_id, run_key, stage, run_id, status, route, message_hash, attempts, reason)
		VALUES ($1, $2, 'enriched', $2, 'uncertain', 'gateway', 'h', 1, 'uncertain delivery')`, leadID, env.RunID); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(env)
	dl, _ := json.Marshal(events.DeadLetter{SchemaVersion: 1, OriginalSubject: events.SubjectEnriched, OriginalMsgID: env.MsgID(),
		Stage: "notifier__leads_enriched", Reason: "notifier.deliver: permanent: uncertain delivery", FailedAt: time.Now().UTC(), LeadID: leadID, Event: b})
	if _, err := js.Publish(ctx, events.SubjectDeadLetter, dl); err != nil {
		t.Fatal(err)
	}
	return env
}

func subjectCount(t *testing.T, js jetstream.JetStream, subject string) uint64 {
	t.Helper()
	st, err := js.Stream(context.Background(), events.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(context.Background(), jetstream.WithSubjectFilter(subject))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Subjects[subject]
}

// TestAdminUncertain: every key lists uncertain deliveries; only admin keys
// confirm or repost them (403 otherwise). Confirm marks the delivery sent,
// ends the run notified and publishes lead.notified; repost publishes the
// event again for the notifier, once however often it is asked.
func TestAdminUncertain(t *testing.T) {
	ts, js, pool := adminServerDB(t)
	ctx := context.Background()
	a := uncertainDelivery(t, js, pool, "LA")
	b := uncertainDelivery(t, js, pool, "LB")
	base := ts.URL + "/api/v1/admin/uncertain"

	status, out := call(t, "GET", base, readKey, "")
	if status != 200 || out["count"] != 2.0 {
		t.Fatalf("list = %d %v", status, out)
	}
	for _, action := range []string{"confirm", "repost"} {
		if status, _ := call(t, "POST", base+"/LA/"+a.RunID+"/"+action, readKey, ""); status != 403 {
			t.Fatalf("%s with a read key = %d, want 403", action, status)
		}
	}
	if status, _ := call(t, "POST", base+"/LA/nope/confirm", adminKey, ""); status != 404 {
		t.Fatalf("unknown run = %d", status)
	}

	status, out = call(t, "POST", base+"/LA/"+a.RunID+"/confirm", adminKey, "")
	if d, _ := out["delivery"].(map[string]any); status != 200 || d["status"] != "confirmed" || d["dead_letters_removed"] != 1.0 {
		t.Fatalf("confirm = %d %v", status, out)
	}
	var ledgerStatus, runStatus string
	_ = pool.QueryRow(ctx, `SELECT status FROM pipeline.notifications WHERE lead_id = 'LA'`).Scan(&ledgerStatus)
	_ = pool.QueryRow(ctx, `SELECT status FROM pipeline.lead_runs WHERE run_id = $1`, a.RunID).Scan(&runStatus)
	if ledgerStatus != "sent" || runStatus != "notified" || subjectCount(t, js, events.SubjectNotified) != 1 {
		t.Fatalf("after confirm: ledger %q, run %q, %d lead.notified", ledgerStatus, runStatus, subjectCount(t, js, events.SubjectNotified))
	}
	status, out = call(t, "POST", base+"/LA/"+a.RunID+"/confirm", adminKey, "")
	if d, _ := out["delivery"].(map[string]any); status != 200 || d["status"] != "already_sent" || subjectCount(t, js, events.SubjectNotified) != 1 {
		t.Fatalf("second confirm = %d %v", status, out)
	}

	before := subjectCount(t, js, events.SubjectEnriched)
	for i := 0; i < 2; i++ {
		status, out = call(t, "POST", base+"/LB/"+b.RunID+"/repost", adminKey, "")
		if d, _ := out["delivery"].(map[string]any); status != 202 || d["status"] != "queued" || d["msg_id"] == "" {
			t.Fatalf("repost %d = %d %v", i, status, out)
		}
	}
	if n := subjectCount(t, js, events.SubjectEnriched) - before; n != 1 {
		t.Fatalf("two reposts published %d events, want 1", n)
	}
	_ = pool.QueryRow(ctx, `SELECT status FROM pipeline.notifications WHERE lead_id = 'LB'`).Scan(&ledgerStatus)
	if ledgerStatus != "repost" || subjectCount(t, js, events.SubjectDeadLetter) != 0 {
		t.Fatalf("after repost: ledger %q, %d dead letters", ledgerStatus, subjectCount(t, js, events.SubjectDeadLetter))
	}
	// Once the notifier has posted it, a repost does nothing.
	if _, err := pool.Exec(ctx, `UPDATE pipeline.notifications SET status = 'sent' WHERE lead_id = 'LB'`); err != nil {
		t.Fatal(err)
	}
	status, out = call(t, "POST", base+"/LB/"+b.RunID+"/repost", adminKey, "")
	if d, _ := out["delivery"].(map[string]any); status != 200 || d["status"] != "already_sent" {
		t.Fatalf("repost after sent = %d %v", status, out)
	}
	if status, out = call(t, "GET", base, readKey, ""); out["count"] != 0.0 {
		t.Fatalf("list after = %d %v", status, out)
	}
}
