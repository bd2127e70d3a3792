package console_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/leadflow/leadflow/cmd/stack/stack"
	"github.com/leadflow/leadflow/pkg/ops"
	"github.com/leadflow/leadflow/pkg/sim"
	"github.com/leadflow/leadflow/pkg/testinfra"
)

// findChromium returns the browser to drive. Without one the browser tests
// fail under CI (CI=... set) and are skipped on a developer's machine.
func findChromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHROMIUM_PATH"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("CHROMIUM_PATH=%s: %v", p, err)
		}
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome-stable", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "no Chromium found (looked for chromium, chromium-browser, google-chrome-stable, google-chrome, headless-shell on PATH, and CHROMIUM_PATH). " +
		"Install Debian's package: apt-get install -y chromium"
	if os.Getenv("CI") != "" {
		t.Fatal("browser tests need Chromium under CI: " + msg)
	}
	t.Skip("skipping the browser tests: " + msg)
	return ""
}

// newBrowser starts a headless Chromium with a fresh profile and returns a
// tab's context; the browser stops with the test.
func newBrowser(t *testing.T, path string) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 900)); err != nil {
		t.Fatalf("start Chromium (%s): %v", path, err)
	}
	return ctx
}

// logBuffer keeps the services' logs and prints the tail when a test fails.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) tail(n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buf.Bytes()
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

const adminKey = "console-admin-key"

// startStack runs the whole product on a fresh database and embedded NATS.
func startStack(t *testing.T, cfg sim.Config) (*stack.Stack, *ops.Ops, *pgxpool.Pool) {
	t.Helper()
	dbURL := testinfra.NewDatabase(t)
	logs := &logBuffer{}
	env := map[string]string{"DATABASE_URL": dbURL, "LOG_LEVEL": "warn", "API_KEYS": adminKey + ":admin"}
	for _, p := range []string{"WORK_API", "C2S", "DIRETRIX"} {
		env[p+"_RATE"] = "0"
		env[p+"_CONCURRENCY"] = "0"
	}
	s, err := stack.Start(context.Background(), stack.Options{Env: env, Sim: cfg, Log: logs})
	if err != nil {
		t.Fatalf("stack: %v", err)
	}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("service logs (tail):\n%s", logs.tail(8000))
		}
	})
	nc, err := nats.Connect(s.Env["NATS_URL"])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	pool := testinfra.NewPool(t, dbURL)
	return s, ops.New(js, pool), pool
}

// postWebhook delivers the on_create_lead webhook of a simulated lead.
func postWebhook(t *testing.T, s *stack.Stack, l sim.Lead) {
	t.Helper()
	customer := map[string]any{}
	if l.Name != "" {
		customer["name"] = l.Name
	}
	if l.Phone != "" {
		customer["phone"] = l.Phone
	}
	if l.Email != "" {
		customer["email"] = l.Email
	}
	body, _ := json.Marshal(map[string]any{
		"id": l.ID, "hook_action": "on_create_lead",
		"attributes": map[string]any{"updated_at": "2025-11-21T13:30:00Z", "customer": customer, "log": []any{}, "messages": []any{}},
	})
	resp, err := http.Post(s.IngestURL+"/api/v1/webhooks/c2s?token="+s.Env["WEBHOOK_SECRET"], "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("webhook for %s: status %d", l.ID, resp.StatusCode)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	last := ""
	for time.Now().Before(deadline) {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s (last: %s)", what, last)
}

// waitRun waits until the lead has a run with the given status.
func waitRun(t *testing.T, pool *pgxpool.Pool, leadID, status string) {
	t.Helper()
	waitFor(t, 30*time.Second, "lead "+leadID+" "+status, func() (bool, string) {
		var n int
		err := pool.QueryRow(context.Background(), `SELECT count(*) FROM pipeline.lead_runs WHERE lead_id = $1 AND status = $2`, leadID, status).Scan(&n)
		return err == nil && n > 0, fmt.Sprint(n, err)
	})
}

// singlePersonLeads picks n leads that each resolve to exactly one CPF the
// Work API knows, no two sharing a CPF.
func singlePersonLeads(t *testing.T, pop *sim.Population, n int) []sim.Lead {
	t.Helper()
	seen := map[string]bool{}
	var out []sim.Lead
	for _, l := range pop.Leads() {
		cpfs := pop.ExpectedPersons(l.ID)
		if len(cpfs) != 1 || seen[cpfs[0]] || l.Kind == sim.LeadContract || l.Phone == "" || l.Email == "" {
			continue
		}
		if _, ok := pop.Person(cpfs[0]); !ok {
			continue
		}
		seen[cpfs[0]] = true
		out = append(out, l)
		if len(out) == n {
			return out
		}
	}
	t.Fatalf("population has only %d single-person leads, want %d", len(out), n)
	return nil
}
