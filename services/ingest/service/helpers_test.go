package service_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/leadflow/leadflow/pkg/backbone/embedded"
	"github.com/leadflow/leadflow/pkg/backbone/events"
	"github.com/leadflow/leadflow/pkg/config"
	"github.com/leadflow/leadflow/pkg/platform"
	"github.com/leadflow/leadflow/pkg/sim"
	"github.com/leadflow/leadflow/pkg/testinfra"
	"github.com/leadflow/leadflow/services/ingest/service"
)

const (
	secret = "hook-secret"
	apiKey = "api-key-1"
)

// ingest is one ingest server on real Postgres and an embedded JetStream,
// built the way the service builds itself (LoadConfig, platform.Connect,
// NewServer), with the simulators standing in for the paid upstreams.
type ingest struct {
	URL  string
	JS   jetstream.JetStream
	Pool *pgxpool.Pool
	NATS *embedded.NATS
	Sims *sim.Sims
	Deps *platform.Deps
	// Common is the configuration it was built with.
	Common platform.Common
}

func startIngest(t testing.TB, extra map[string]string) *ingest {
	t.Helper()
	ctx := context.Background()
	n := testinfra.StartNATS(t)
	dbURL := testinfra.NewDatabase(t)
	sims := sim.New(sim.Config{Seed: 11, People: 20})
	urls, err := sims.StartLocal()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sims.Close() })
	c := sims.Config
	env := map[string]string{
		"DATABASE_URL": dbURL, "NATS_URL": n.URL,
		"WEBHOOK_SECRET": secret, "API_KEYS": "other-key," + apiKey,
		"C2S_BASE_URL": urls.C2SBaseURL, "C2S_TOKEN": c.C2SToken,
		"WORK_API_URL": urls.WorkAPIURL, "WORK_API_KEY": c.WorkToken,
		"DIRETRIX_BASE_URL": urls.DiretrixBaseURL, "DIRETRIX_USER": c.DiretrixUser, "DIRETRIX_PASS": c.DiretrixPass,
	}
	for k, v := range extra {
		if v == "" {
			delete(env, k)
		} else {
			env[k] = v
		}
	}
	cfg, err := service.LoadConfig(config.FromMap(env))
	if err != nil {
		t.Fatal(err)
	}
	d, err := platform.Connect(ctx, cfg.Common, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	srv, err := service.NewServer(cfg, d)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Routes())
	t.Cleanup(ts.Close)
	return &ingest{URL: ts.URL, JS: d.JS, Pool: d.Pool, NATS: n, Sims: sims, Deps: d, Common: cfg.Common}
}

// streamMsgs counts every message the LEADS stream holds.
func streamMsgs(t testing.TB, js jetstream.JetStream) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, events.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

type reply struct {
	Status int
	Body   []byte
	JSON   map[string]any
}

func (r reply) str(k string) string { s, _ := r.JSON[k].(string); return s }

func do(t testing.TB, method, url, key string, body []byte, header ...string) reply {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := reply{Status: resp.StatusCode, Body: raw}
	_ = json.Unmarshal(raw, &r.JSON)
	return r
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// webhookFor renders an on_create_lead webhook for a simulated lead.
func webhookFor(l sim.Lead, action, updatedAt string) []byte {
	b, _ := json.Marshal(map[string]any{
		"id": l.ID, "hook_action": action,
		"attributes": map[string]any{
			"updated_at": updatedAt,
			"customer":   map[string]any{"name": l.Name, "phone": l.Phone, "email": l.Email},
		},
	})
	return b
}

// syncBuffer is a log sink the services write to concurrently.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}
