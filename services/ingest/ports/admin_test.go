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

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/leadflow/leadflow/pkg/backbone/events"
	"github.com/leadflow/leadflow/pkg/ops"
	"github.com/leadflow/leadflow/pkg/testinfra/backbone"
	"github.com/leadflow/leadflow/services/ingest/ports"
)

const adminKey = "admin-key"

// adminServer serves ingest's routes with the admin API on a real stream
// and database.
func adminServer(t *testing.T) (*httptest.Server, jetstream.JetStream) {
	t.Helper()
	js, pool := backbone.Start(t)
	srv := &ports.Server{
		APIKeys: []string{adminKey},
		Log:     zerolog.Nop(),
		Metrics: ports.NewMetrics(prometheus.NewRegistry()),
		Extra:   ports.Admin{Ops: ops.New(js, pool), Log: zerolog.Nop()}.Routes,
	}
	ts := httptest.NewServer(srv.Routes())
	t.Cleanup(ts.Close)
	return ts, js
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
