package service_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/leadflow/leadflow/pkg/contracts"
	"github.com/leadflow/leadflow/pkg/domain/brdata"
	"github.com/leadflow/leadflow/pkg/sim"
)

const helenaLead = sim.ContractLeadID

// TestWebhookRejectionsPublishNothing: every refused delivery answers its
// status and leaves the LEADS stream exactly as it was.
func TestWebhookRejectionsPublishNothing(t *testing.T) {
	in := startIngest(t, nil)
	valid := contracts.Read("c2s/webhook_on_create_lead.json")
	huge := append([]byte(`{"id":"`+helenaLead+`","hook_action":"on_create_lead","attributes":{"pad":"`),
		[]byte(strings.Repeat("x", 1<<20))...)
	huge = append(huge, []byte(`"}}`)...)
	cases := []struct {
		name   string
		query  string
		body   []byte
		status int
	}{
		{"missing token", "", valid, http.StatusUnauthorized},
		{"wrong token", "?token=nope", valid, http.StatusUnauthorized},
		{"token differing in case", "?token=" + strings.ToUpper(secret), valid, http.StatusUnauthorized},
		{"empty body", "?token=" + secret, nil, http.StatusBadRequest},
		{"blank body", "?token=" + secret, []byte("  \n"), http.StatusBadRequest},
		{"not JSON", "?token=" + secret, []byte("id=" + helenaLead), http.StatusBadRequest},
		{"truncated JSON", "?token=" + secret, valid[:len(valid)/2], http.StatusBadRequest},
		{"two JSON documents", "?token=" + secret, append(append([]byte{}, valid...), valid...), http.StatusBadRequest},
		{"no lead id", "?token=" + secret, []byte(`{"hook_action":"on_create_lead","attributes":{"customer":{"name":"x"}}}`), http.StatusBadRequest},
		{"unsafe lead id", "?token=" + secret, []byte(`{"id":"../../etc","hook_action":"on_create_lead"}`), http.StatusBadRequest},
		{"empty array", "?token=" + secret, []byte(`[]`), http.StatusBadRequest},
		{"JSON scalar", "?token=" + secret, []byte(`42`), http.StatusBadRequest},
		{"over 1 MiB", "?token=" + secret, huge, http.StatusRequestEntityTooLarge},
		{"over 1 MiB without token", "", huge, http.StatusUnauthorized},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := streamMsgs(t, in.JS)
			r := do(t, http.MethodPost, in.URL+"/api/v1/webhooks/c2s"+tc.query, "", tc.body, "Content-Type", "application/json")
			if r.Status != tc.status {
				t.Fatalf("status = %d, want %d: %s", r.Status, tc.status, r.Body)
			}
			if r.JSON["success"] != false {
				t.Fatalf("a rejection must say success=false: %s", r.Body)
			}
			if after := streamMsgs(t, in.JS); after != before {
				t.Fatalf("stream went from %d to %d messages on a rejected request", before, after)
			}
		})
	}
	var receipts int
	if err := in.Pool.QueryRow(context.Background(), `SELECT count(*) FROM pipeline.webhook_receipts`).Scan(&receipts); err != nil {
		t.Fatal(err)
	}
	if receipts != 0 {
		t.Fatalf("%d receipts stored for rejected requests", receipts)
	}
}

// TestWebhookShapesAndStatuses walks one lead through every accepted answer:
// queued (single, array, lead and data envelopes), duplicate, ignored and
// recorded, checking the stream grew only when a 202 said so.
func TestWebhookShapesAndStatuses(t *testing.T) {
	in := startIngest(t, nil)
	hook := in.URL + "/api/v1/webhooks/c2s?token=" + secret
	dataEnvelope := []byte(`{"hook_action":"on_create_lead","timestamp":"2025-11-22T10:00:00Z","data":{"type":"lead","id":"b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0",
		"attributes":{"updated_at":"2025-11-22T09:59:59Z","customer":{"name":"Fulano","phone":"5511900000000","email":"f@example.com"}}}}`)
	changedPhone := []byte(`{"id":"` + helenaLead + `","hook_action":"on_update_lead","attributes":{"updated_at":"2025-11-21T16:00:00Z",
		"customer":{"name":"Helena Duarte","email":"helena.duarte@example.com","phone":"5511900001111"}}}`)

	type result struct{ lead, status string }
	steps := []struct {
		name        string
		body        []byte
		contentType string
		status      int
		published   uint64
		single      string   // expected status of a single-event answer
		results     []result // expected per-event report of an array
		before      func(t *testing.T)
	}{
		{
			// RUN.md: C2S does not document its Content-Type, so the body is
			// parsed as JSON whatever the header says; there is no 415.
			name: "single on_create_lead sent as text/plain (no 415 by design)", body: contracts.Read("c2s/webhook_on_create_lead.json"),
			contentType: "text/plain", status: http.StatusAccepted, published: 1, single: "queued",
		},
		{name: "the same delivery again", body: contracts.Read("c2s/webhook_on_create_lead.json"), status: http.StatusOK, single: "duplicate"},
		{
			// 13:30:00.000Z in the lead envelope is 13:30:00Z of the single event.
			name: "lead envelope, same instant spelled differently", body: contracts.Read("c2s/webhook_envelope_on_create_lead.json"),
			status: http.StatusOK, single: "duplicate",
		},
		{
			name: "same instant with an offset and no Content-Type", status: http.StatusOK, single: "duplicate",
			body: []byte(`{"id":"` + helenaLead + `","hook_action":"on_create_lead","attributes":{"updated_at":"2025-11-21 10:30:00.000 -0300"}}`),
		},
		{name: "data envelope", body: dataEnvelope, status: http.StatusAccepted, published: 1, single: "queued"},
		{
			name: "array: per-event report", body: contracts.Read("c2s/webhook_array.json"), status: http.StatusAccepted, published: 2,
			results: []result{{helenaLead, "queued"}, {sim.OtavioLeadID, "queued"}},
		},
		{
			name: "array again: all duplicates", body: contracts.Read("c2s/webhook_array.json"), status: http.StatusOK,
			results: []result{{helenaLead, "duplicate"}, {sim.OtavioLeadID, "duplicate"}},
		},
		{
			name: "on_update_lead with the contacts last resolved", body: contracts.Read("c2s/webhook_on_update_lead.json"),
			status: http.StatusOK, single: "ignored",
			before: func(t *testing.T) {
				// What the resolver writes after resolving the lead.
				_, err := in.Pool.Exec(context.Background(), `INSERT INTO pipeline.lead_contacts (lead_id, phone, email) VALUES ($1, $2, $3)`,
					helenaLead, brdata.NormalizePhone("5511987650123"), brdata.NormalizeEmail("Helena.Duarte@example.com"))
				if err != nil {
					t.Fatal(err)
				}
			},
		},
		{name: "on_update_lead with a new phone", body: changedPhone, status: http.StatusAccepted, published: 1, single: "queued"},
		{name: "on_close_lead is recorded only", body: contracts.Read("c2s/webhook_on_close_lead.json"), status: http.StatusOK, single: "recorded"},
		{name: "on_close_lead repeated", body: contracts.Read("c2s/webhook_on_close_lead.json"), status: http.StatusOK, single: "duplicate"},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if st.before != nil {
				st.before(t)
			}
			before := streamMsgs(t, in.JS)
			var hdr []string
			if st.contentType != "" {
				hdr = []string{"Content-Type", st.contentType}
			}
			r := do(t, http.MethodPost, hook, "", st.body, hdr...)
			if r.Status != st.status {
				t.Fatalf("status = %d, want %d: %s", r.Status, st.status, r.Body)
			}
			if r.JSON["success"] != true {
				t.Fatalf("success = %v: %s", r.JSON["success"], r.Body)
			}
			if st.single != "" {
				if got := r.str("status"); got != st.single {
					t.Fatalf("status field = %q, want %q: %s", got, st.single, r.Body)
				}
				if st.single == "queued" && r.str("event_id") == "" {
					t.Fatalf("a queued event names its event id: %s", r.Body)
				}
			}
			if st.results != nil {
				var out struct {
					Results []struct {
						LeadID string `json:"lead_id"`
						Status string `json:"status"`
					} `json:"results"`
				}
				if err := json.Unmarshal(r.Body, &out); err != nil || len(out.Results) != len(st.results) {
					t.Fatalf("want %d per-event results: %s", len(st.results), r.Body)
				}
				for i, want := range st.results {
					if out.Results[i].LeadID != want.lead || out.Results[i].Status != want.status {
						t.Fatalf("result %d = %+v, want %+v", i, out.Results[i], want)
					}
				}
			}
			if after := streamMsgs(t, in.JS); after-before != st.published {
				t.Fatalf("published %d events, want %d", after-before, st.published)
			}
		})
	}
}

// TestMakeTrigger covers the Make.com contract: 400 without id, 401 for a
// bad token, otherwise 200 with success and lead_id; a repeat within the
// window is a duplicate and publishes nothing.
func TestMakeTrigger(t *testing.T) {
	in := startIngest(t, nil)
	base := in.URL + "/api/v1/leads/process"
	rejected := []struct {
		name, query string
		status      int
	}{
		{"no id", "?token=" + secret, http.StatusBadRequest},
		{"blank id", "?id=%20&token=" + secret, http.StatusBadRequest},
		{"no id and no token", "", http.StatusBadRequest},
		{"missing token", "?id=" + helenaLead, http.StatusUnauthorized},
		{"wrong token", "?id=" + helenaLead + "&token=wrong", http.StatusUnauthorized},
	}
	for _, tc := range rejected {
		t.Run(tc.name, func(t *testing.T) {
			before := streamMsgs(t, in.JS)
			r := do(t, http.MethodGet, base+tc.query, "", nil)
			if r.Status != tc.status || r.JSON["success"] != false {
				t.Fatalf("= %d %s, want %d with success=false", r.Status, r.Body, tc.status)
			}
			if after := streamMsgs(t, in.JS); after != before {
				t.Fatalf("stream went from %d to %d messages", before, after)
			}
		})
	}
	t.Run("invalid lead id answers 200 success=false and publishes nothing", func(t *testing.T) {
		before := streamMsgs(t, in.JS)
		r := do(t, http.MethodGet, base+"?id=a.b&token="+secret, "", nil)
		if r.Status != http.StatusOK || r.JSON["success"] != false || r.str("lead_id") != "a.b" {
			t.Fatalf("= %d %s", r.Status, r.Body)
		}
		if after := streamMsgs(t, in.JS); after != before {
			t.Fatal("published for an invalid lead id")
		}
	})
	t.Run("queued then duplicate", func(t *testing.T) {
		before := streamMsgs(t, in.JS)
		r := do(t, http.MethodGet, base+"?id="+helenaLead+"&token="+secret, "", nil)
		if r.Status != http.StatusOK || r.JSON["success"] != true || r.str("lead_id") != helenaLead || r.str("status") != "queued" {
			t.Fatalf("first trigger = %d %s", r.Status, r.Body)
		}
		r = do(t, http.MethodGet, base+"?id="+helenaLead+"&token="+secret, "", nil)
		if r.Status != http.StatusOK || r.JSON["success"] != true || r.str("status") != "duplicate" {
			t.Fatalf("second trigger = %d %s", r.Status, r.Body)
		}
		// The API-key trigger is the same trigger.
		r = do(t, http.MethodPost, in.URL+"/api/v1/c2s/enrich/"+helenaLead, apiKey, nil)
		if r.Status != http.StatusOK || r.str("status") != "duplicate" {
			t.Fatalf("API trigger = %d %s", r.Status, r.Body)
		}
		if after := streamMsgs(t, in.JS); after-before != 1 {
			t.Fatalf("three triggers published %d events, want 1", after-before)
		}
	})
	t.Run("wait on a run that cannot finish answers the still-processing shape", func(t *testing.T) {
		// Nothing consumes lead.received in this test: wait=1 runs out.
		r := do(t, http.MethodGet, base+"?id="+sim.OtavioLeadID+"&wait=1&token="+secret, "", nil)
		if r.Status != http.StatusOK || r.JSON["success"] != false || r.str("lead_id") != sim.OtavioLeadID ||
			!strings.Contains(r.str("message"), "still being processed") {
			t.Fatalf("= %d %s", r.Status, r.Body)
		}
	})
}

// TestAPIKeyEndpoints: every API-key endpoint answers 401 without a key or
// with a wrong one, and publishes nothing.
func TestAPIKeyEndpoints(t *testing.T) {
	in := startIngest(t, nil)
	endpoints := []struct{ method, path, body string }{
		{http.MethodPost, "/api/v1/c2s/enrich/" + helenaLead, ""},
		{http.MethodGet, "/api/v1/leads/" + helenaLead, ""},
		{http.MethodGet, "/api/v1/contributor/customer?cpf=" + sim.HelenaCPF, ""},
		{http.MethodGet, "/api/v1/customers/00000000-0000-0000-0000-000000000000", ""},
		{http.MethodPost, "/api/v1/enrich", `{"cpf":"` + sim.HelenaCPF + `"}`},
		{http.MethodGet, "/api/v1/work/modules/cpf?consulta=" + sim.HelenaCPF, ""},
		{http.MethodGet, "/api/v1/work/modules/all?cpf=" + sim.HelenaCPF, ""},
		{http.MethodPost, "/api/v1/admin/replay", `{}`},
		{http.MethodGet, "/api/v1/admin/dlq", ""},
		{http.MethodPost, "/api/v1/admin/dlq/1/requeue", ""},
		{http.MethodDelete, "/api/v1/admin/dlq", ""},
		{http.MethodGet, "/api/v1/admin/uncertain", ""},
		{http.MethodPost, "/api/v1/admin/uncertain/" + helenaLead + "/r/confirm", ""},
		{http.MethodPost, "/api/v1/admin/uncertain/" + helenaLead + "/r/repost", ""},
	}
	keys := []struct{ name, header string }{
		{"no key", ""},
		{"wrong key", "Bearer nope"},
		{"key without Bearer", apiKey},
		{"webhook secret as key", "Bearer " + secret},
		{"key prefix", "Bearer " + apiKey[:len(apiKey)-1]},
	}
	for _, ep := range endpoints {
		for _, k := range keys {
			t.Run(ep.method+" "+ep.path+" "+k.name, func(t *testing.T) {
				before := streamMsgs(t, in.JS)
				var hdr []string
				if k.header != "" {
					hdr = []string{"Authorization", k.header}
				}
				r := do(t, ep.method, in.URL+ep.path, "", []byte(ep.body), hdr...)
				if r.Status != http.StatusUnauthorized {
					t.Fatalf("= %d %s, want 401", r.Status, r.Body)
				}
				if after := streamMsgs(t, in.JS); after != before {
					t.Fatal("published on an unauthorised request")
				}
			})
		}
	}
	if n := in.Sims.WorkAPI.RequestCount(); n != 0 {
		t.Fatalf("unauthorised requests reached the paid Work API %d times", n)
	}
}

// TestQueryEndpointsWithoutData: customer and trace lookups on an empty
// database answer 400 without a parameter and 404 for an unknown person or
// lead.
func TestQueryEndpointsWithoutData(t *testing.T) {
	in := startIngest(t, nil)
	cases := []struct {
		name, method, path, body string
		status                   int
	}{
		{"customer without parameter", http.MethodGet, "/api/v1/contributor/customer", "", http.StatusBadRequest},
		{"customer with blank name", http.MethodGet, "/api/v1/contributor/customer?name=%20", "", http.StatusBadRequest},
		{"unknown cpf", http.MethodGet, "/api/v1/contributor/customer?cpf=" + sim.HelenaCPF, "", http.StatusNotFound},
		{"unknown email", http.MethodGet, "/api/v1/contributor/customer?email=nobody@example.com", "", http.StatusNotFound},
		{"unknown phone", http.MethodGet, "/api/v1/contributor/customer?phone=11999990000", "", http.StatusNotFound},
		{"unknown name", http.MethodGet, "/api/v1/contributor/customer?name=helena", "", http.StatusNotFound},
		{"unknown customer id", http.MethodGet, "/api/v1/customers/5b1e6c2a-4b7f-4f43-9a55-2f7a0d6a1c11", "", http.StatusNotFound},
		{"unknown lead trace", http.MethodGet, "/api/v1/leads/" + helenaLead, "", http.StatusNotFound},
		{"invalid lead id trace", http.MethodGet, "/api/v1/leads/a.b", "", http.StatusBadRequest},
		{"enrich: empty body", http.MethodPost, "/api/v1/enrich", "", http.StatusBadRequest},
		{"enrich: not JSON", http.MethodPost, "/api/v1/enrich", "cpf=1", http.StatusBadRequest},
		{"enrich: no field", http.MethodPost, "/api/v1/enrich", `{}`, http.StatusBadRequest},
		{"enrich: two fields", http.MethodPost, "/api/v1/enrich", `{"cpf":"` + sim.HelenaCPF + `","email":"a@b.co"}`, http.StatusBadRequest},
		{"enrich: invalid CPF", http.MethodPost, "/api/v1/enrich", `{"cpf":"12345678900"}`, http.StatusBadRequest},
		{"enrich: invalid phone", http.MethodPost, "/api/v1/enrich", `{"phone":"123"}`, http.StatusBadRequest},
		{"enrich: unknown name", http.MethodPost, "/api/v1/enrich", `{"name":"Ninguém"}`, http.StatusNotFound},
		{"work module without consulta", http.MethodGet, "/api/v1/work/modules/cpf", "", http.StatusBadRequest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := streamMsgs(t, in.JS)
			r := do(t, tc.method, in.URL+tc.path, apiKey, []byte(tc.body))
			if r.Status != tc.status {
				t.Fatalf("= %d %s, want %d", r.Status, r.Body, tc.status)
			}
			if after := streamMsgs(t, in.JS); after != before {
				t.Fatal("a query published an event")
			}
		})
	}
	if n := in.Sims.WorkAPI.RequestCount(); n != 0 {
		t.Fatalf("rejected queries reached the paid Work API %d times", n)
	}
}

// TestWorkPassThroughHidesToken: the pass-through answers what the Work API
// answered and never echoes the token.
func TestWorkPassThroughHidesToken(t *testing.T) {
	in := startIngest(t, nil)
	r := do(t, http.MethodGet, in.URL+"/api/v1/work/modules/all?cpf="+sim.HelenaCPF, apiKey, nil)
	if r.Status != http.StatusOK || !strings.Contains(string(r.Body), sim.HelenaCPF) {
		t.Fatalf("= %d %.300s", r.Status, r.Body)
	}
	if strings.Contains(string(r.Body), in.Sims.Config.WorkToken) {
		t.Fatal("the Work API token was echoed")
	}
}

// TestHealthReadyMetricsOpenAPI: the operational endpoints, and /ready
// turning 503 once NATS is really gone.
func TestHealthReadyMetricsOpenAPI(t *testing.T) {
	in := startIngest(t, nil)
	if r := do(t, http.MethodGet, in.URL+"/health", "", nil); r.Status != http.StatusOK || r.str("status") != "ok" {
		t.Fatalf("/health = %d %s", r.Status, r.Body)
	}
	if r := do(t, http.MethodGet, in.URL+"/ready", "", nil); r.Status != http.StatusOK {
		t.Fatalf("/ready = %d %s", r.Status, r.Body)
	}
	// One publish and one duplicate so the counters have samples.
	hook := in.URL + "/api/v1/webhooks/c2s?token=" + secret
	do(t, http.MethodPost, hook, "", contracts.Read("c2s/webhook_on_create_lead.json"))
	do(t, http.MethodPost, hook, "", contracts.Read("c2s/webhook_on_create_lead.json"))
	m := do(t, http.MethodGet, in.URL+"/metrics", "", nil)
	for _, want := range []string{
		`leadflow_http_requests_total{code="202",route="/api/v1/webhooks/c2s"} 1`,
		`leadflow_http_requests_total{code="200",route="/api/v1/webhooks/c2s"} 1`,
		`leadflow_leads_published_total{source="c2s_webhook"} 1`,
		`leadflow_leads_duplicate_total{source="c2s_webhook"} 1`,
		`leadflow_http_request_seconds_bucket`,
	} {
		if !strings.Contains(string(m.Body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	api := do(t, http.MethodGet, in.URL+"/openapi.json", "", nil)
	var doc struct {
		OpenAPI    string                    `json:"openapi"`
		Paths      map[string]map[string]any `json:"paths"`
		Components struct {
			SecuritySchemes map[string]map[string]any `json:"securitySchemes"`
		} `json:"components"`
	}
	if err := json.Unmarshal(api.Body, &doc); err != nil || !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("/openapi.json is not an OpenAPI 3 document: %v %.200s", err, api.Body)
	}
	for path, method := range map[string]string{
		"/api/v1/webhooks/c2s": "post", "/api/v1/leads/process": "get", "/api/v1/c2s/enrich/{lead_id}": "post",
		"/api/v1/leads/{lead_id}": "get", "/api/v1/contributor/customer": "get", "/api/v1/customers/{id}": "get",
		"/api/v1/enrich": "post", "/api/v1/work/modules/{module}": "get", "/api/v1/work/modules/all": "get",
		"/api/v1/admin/replay": "post", "/api/v1/admin/dlq": "get", "/api/v1/admin/dlq/{seq}/requeue": "post",
		"/api/v1/admin/uncertain": "get", "/api/v1/admin/uncertain/{lead_id}/{run_id}/confirm": "post",
		"/api/v1/admin/uncertain/{lead_id}/{run_id}/repost": "post",
		"/health": "get", "/ready": "get", "/metrics": "get", "/openapi.json": "get",
	} {
		if _, ok := doc.Paths[path][method]; !ok {
			t.Errorf("openapi.json lacks %s %s", strings.ToUpper(method), path)
		}
	}
	if doc.Components.SecuritySchemes["bearer"]["scheme"] != "bearer" {
		t.Errorf("openapi.json lacks the bearer security scheme")
	}

	// NATS really gone: /ready says so, /health (liveness) does not.
	in.NATS.Shutdown()
	waitFor(t, "/ready to answer 503", 15*time.Second, func() bool {
		return do(t, http.MethodGet, in.URL+"/ready", "", nil).Status == http.StatusServiceUnavailable
	})
	if r := do(t, http.MethodGet, in.URL+"/health", "", nil); r.Status != http.StatusOK {
		t.Fatalf("/health = %d while NATS is down; liveness must not depend on it", r.Status)
	}

	// A webhook that cannot be published is refused with a retryable 5xx and
	// leaves no receipt behind, so the C2S retry is not taken for a duplicate.
	const unseen = "0123456789abcdef0123456789abcdef"
	body := bytes.ReplaceAll(contracts.Read("c2s/webhook_on_create_lead.json"), []byte(helenaLead), []byte(unseen))
	r := do(t, http.MethodPost, in.URL+"/api/v1/webhooks/c2s?token="+secret, "", body)
	if r.Status != http.StatusServiceUnavailable {
		t.Fatalf("webhook with NATS down = %d %s, want 503", r.Status, r.Body)
	}
	var receipts int
	if err := in.Pool.QueryRow(context.Background(), `SELECT count(*) FROM pipeline.webhook_receipts WHERE lead_id = $1`, unseen).Scan(&receipts); err != nil {
		t.Fatal(err)
	}
	if receipts != 0 {
		t.Fatalf("%d receipts stored for a webhook that was never published", receipts)
	}
}

// Ingest's main pool keeps Postgres's custom plans (the console's filters
// plan well only with their values); its budgets pool plans generically.
// And the edge runs on the runtime's GOMAXPROCS, not one P.
func TestIngestPoolKeepsCustomPlans(t *testing.T) {
	in := startIngest(t, nil)
	if !in.Common.RuntimeMaxProcs || !in.Common.CustomPlans {
		t.Errorf("ingest's configuration: RuntimeMaxProcs %v, CustomPlans %v; want both", in.Common.RuntimeMaxProcs, in.Common.CustomPlans)
	}
	for pool, want := range map[interface {
		QueryRow(context.Context, string, ...any) pgx.Row
	}]string{in.Pool: "auto", in.Deps.Budgets: "force_generic_plan"} {
		var mode string
		if err := pool.QueryRow(context.Background(), `SHOW plan_cache_mode`).Scan(&mode); err != nil {
			t.Fatal(err)
		}
		if mode != want {
			t.Errorf("plan_cache_mode %s, want %s", mode, want)
		}
	}
}
