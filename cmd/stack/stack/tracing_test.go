package stack_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/leadflow/leadflow/cmd/stack/stack"
	"github.com/leadflow/leadflow/pkg/backbone/messaging"
	"github.com/leadflow/leadflow/pkg/contracts"
	"github.com/leadflow/leadflow/pkg/sim"
	"github.com/leadflow/leadflow/pkg/testinfra"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestOneTraceAcrossTheServices: a webhook carrying a W3C traceparent is
// followed through ingest, the stream and the three workers in one trace:
// the HTTP span, a publish and a consumer span per stage, the upstream calls
// and the Postgres statements, all with the caller's trace id, which every
// trace step of the lead's API document and the lead's log lines carry.
// No span attribute holds the lead's personal data.
func TestOneTraceAcrossTheServices(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	t.Cleanup(func() { otel.SetTracerProvider(prev); _ = tp.Shutdown(context.Background()) })

	logs := &lockedBuffer{}
	env := map[string]string{"DATABASE_URL": testinfra.NewDatabase(t), "LOG_LEVEL": "info"}
	for _, p := range []string{"WORK_API", "C2S", "DIRETRIX"} {
		env[p+"_RATE"], env[p+"_CONCURRENCY"] = "0", "0"
	}
	s, err := stack.Start(context.Background(), stack.Options{Env: env, Sim: sim.Config{Seed: 3, People: 5}, Log: logs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)

	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	req, _ := http.NewRequest(http.MethodPost, s.IngestURL+"/api/v1/webhooks/c2s?token="+s.Env["WEBHOOK_SECRET"],
		bytes.NewReader(contracts.Read("c2s/webhook_on_create_lead.json")))
	req.Header.Set("traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("webhook = %d", resp.StatusCode)
	}
	lead := sim.ContractLeadID
	var trace struct {
		Status string `json:"status"`
		Steps  []struct {
			Stage  string          `json:"stage"`
			Detail json.RawMessage `json:"detail"`
		} `json:"steps"`
	}
	deadline := time.Now().Add(60 * time.Second)
	for trace.Status != "notified" {
		if time.Now().After(deadline) {
			t.Fatalf("the lead did not reach notified: %+v", trace)
		}
		time.Sleep(100 * time.Millisecond)
		r, _ := http.NewRequest(http.MethodGet, s.IngestURL+"/api/v1/leads/"+lead, nil)
		r.Header.Set("Authorization", "Bearer "+s.Env["API_KEYS"])
		if resp, err := http.DefaultClient.Do(r); err == nil {
			_ = json.NewDecoder(resp.Body).Decode(&trace)
			resp.Body.Close()
		}
	}

	// The lead trace API: every stage step carries the trace id.
	stages := map[string]bool{}
	for _, st := range trace.Steps {
		var d struct {
			TraceID string `json:"trace_id"`
		}
		_ = json.Unmarshal(st.Detail, &d)
		if d.TraceID != traceID {
			t.Errorf("step %s has trace_id %q, want %s", st.Stage, d.TraceID, traceID)
		}
		stages[st.Stage] = true
	}
	for _, st := range []string{"received", "resolved", "enriched", "notified"} {
		if !stages[st] {
			t.Errorf("no %s step in %+v", st, trace.Steps)
		}
	}

	// The spans: one trace from the HTTP edge to the C2S message.
	time.Sleep(200 * time.Millisecond) // the notifier's span ends after its ack
	names := map[string]int{}
	for _, sp := range exp.GetSpans() {
		if sp.SpanContext.TraceID().String() != traceID {
			continue
		}
		names[sp.Name]++
		for _, a := range sp.Attributes {
			v := strings.ToLower(a.Value.Emit())
			for _, raw := range []string{sim.HelenaCPF, sim.HelenaPhone, sim.HelenaEmail, "helena", "duarte", "local-webhook-secret", "token="} {
				if strings.Contains(v, raw) {
					t.Errorf("span %q attribute %s holds personal data or a secret: %q", sp.Name, a.Key, v)
				}
			}
		}
	}
	for _, want := range []string{
		"POST /api/v1/webhooks/c2s",
		"leads.received publish", "resolver__leads_received process",
		"leads.resolved publish", "enricher__leads_resolved process",
		"leads.enriched publish", "notifier__leads_enriched process",
		"leads.notified publish",
		"postgres batch",
	} {
		if names[want] == 0 {
			t.Errorf("no span %q in the trace; spans: %v", want, names)
		}
	}
	upstreams := map[string]bool{}
	for n := range names {
		if u, _, ok := strings.Cut(n, "."); ok && (u == "diretrix" || u == "workapi" || u == "c2s" || u == "gateway") {
			upstreams[u] = true
		}
	}
	if !upstreams["diretrix"] || !upstreams["workapi"] || !upstreams["c2s"] {
		t.Errorf("upstream spans %v, want diretrix, workapi and c2s; spans: %v", upstreams, names)
	}

	// Log lines of the lead carry the trace id.
	if !strings.Contains(logs.String(), `"trace_id":"`+traceID+`"`) {
		t.Errorf("no log line carries the trace id:\n%.3000s", logs.String())
	}
	if messaging.TraceID(context.Background()) != "" {
		t.Error("TraceID outside a trace must be empty")
	}
}
