// Package e2e runs the four service binaries as separate processes,
// configured only by their environment, against a real Postgres database, an
// embedded NATS JetStream server and the upstream simulators.
package e2e

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
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

var services = []string{"ingest", "resolver", "enricher", "notifier"}

// build compiles the service binaries once for the package.
var build = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "leadflow-e2e-bin-")
	if err != nil {
		return "", err
	}
	for _, s := range services {
		if _, err := testinfra.BuildService(dir, "services/"+s); err != nil {
			return "", err
		}
	}
	return dir, nil
})

func binaries(t *testing.T) string {
	t.Helper()
	dir, err := build()
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// syncBuffer collects a process's stderr.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type proc struct {
	name string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan error
}

func start(t *testing.T, bin, name string, env map[string]string) *proc {
	t.Helper()
	cmd := exec.Command(filepath.Join(bin, name))
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	p := &proc{name: name, cmd: cmd, out: &syncBuffer{}, done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
		}
	})
	return p
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestEmptyEnvironmentFailsFast: RUN.md — each binary exits non-zero within
// 5 s, naming every missing variable.
func TestEmptyEnvironmentFailsFast(t *testing.T) {
	bin := binaries(t)
	want := map[string][]string{
		"ingest":   {"DATABASE_URL", "NATS_URL", "C2S_TOKEN", "WORK_API_KEY", "WEBHOOK_SECRET", "API_KEYS"},
		"resolver": {"DATABASE_URL", "NATS_URL", "C2S_TOKEN", "DIRETRIX_BASE_URL", "DIRETRIX_USER", "DIRETRIX_PASS"},
		"enricher": {"DATABASE_URL", "NATS_URL", "WORK_API_KEY"},
		"notifier": {"DATABASE_URL", "NATS_URL", "C2S_TOKEN"},
	}
	for _, name := range services {
		t.Run(name, func(t *testing.T) {
			p := start(t, bin, name, map[string]string{"PORT": "not-a-port"})
			select {
			case err := <-p.done:
				var exit *exec.ExitError
				if err == nil || !asExit(err, &exit) || exit.ExitCode() == 0 {
					t.Fatalf("exit = %v, want non-zero", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("did not exit within 5 s")
			}
			out := p.out.String()
			for _, v := range want[name] {
				if !strings.Contains(out, v) {
					t.Errorf("stderr does not name %s:\n%s", v, out)
				}
			}
			if name == "ingest" && !strings.Contains(out, "PORT") {
				t.Errorf("an invalid PORT must be named too:\n%s", out)
			}
		})
	}
}

func asExit(err error, target **exec.ExitError) bool {
	e, ok := err.(*exec.ExitError)
	if ok {
		*target = e
	}
	return ok
}

// TestLeadTravelsThroughFourProcesses is the foundation's end-to-end test.
func TestLeadTravelsThroughFourProcesses(t *testing.T) {
	bin := binaries(t)
	ctx := context.Background()
	dbURL := testinfra.NewDatabase(t)
	broker := testinfra.StartNATS(t)
	sims := sim.New(sim.Config{Seed: 7, People: 50})
	urls, err := sims.StartLocal()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sims.Close() })
	port, err := stack.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	c := sims.Config
	env := map[string]string{
		"DATABASE_URL":      dbURL,
		"NATS_URL":          broker.URL,
		"PORT":              strconv.Itoa(port),
		"C2S_BASE_URL":      urls.C2SBaseURL,
		"C2S_TOKEN":         c.C2SToken,
		"DIRETRIX_BASE_URL": urls.DiretrixBaseURL,
		"DIRETRIX_USER":     c.DiretrixUser,
		"DIRETRIX_PASS":     c.DiretrixPass,
		"WORK_API_URL":      urls.WorkAPIURL,
		"WORK_API_KEY":      c.WorkToken,
		"WEBHOOK_SECRET":    "e2e-secret",
		"API_KEYS":          "e2e-key",
		"LOG_LEVEL":         "debug",
	}
	// HEALTH_PORT defaults to 8081 and METRICS_PORT (ingest) to 9090: four
	// processes on one machine get free ports instead.
	procs := map[string]*proc{}
	metricsURL := map[string]string{}
	for _, name := range services {
		e := map[string]string{}
		for k, v := range env {
			e[k] = v
		}
		port, err := stack.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		key := "HEALTH_PORT"
		if name == "ingest" {
			key = "METRICS_PORT"
		}
		e[key] = strconv.Itoa(port)
		metricsURL[name] = "http://127.0.0.1:" + e[key] + "/metrics"
		procs[name] = start(t, bin, name, e)
	}
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	waitFor(t, "ingest /ready", 30*time.Second, func() bool {
		resp, err := http.Get(base + "/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	const lead = "5f2c9a7e41b8d3c6a0e1f4b27d9c8e10"
	webhook := contracts.Read("c2s/webhook_on_create_lead.json")
	status, body := post(t, base+"/api/v1/webhooks/c2s?token=e2e-secret", webhook)
	if status != http.StatusAccepted || !strings.Contains(body, `"queued"`) {
		t.Fatalf("webhook = %d %s", status, body)
	}
	waitFor(t, "the C2S message", 60*time.Second, func() bool { return len(sims.C2S.Messages(lead)) > 0 })
	msgs := sims.C2S.Messages(lead)
	if len(msgs) != 1 {
		t.Fatalf("C2S received %d messages, want 1", len(msgs))
	}
	if want := string(contracts.Read("message/same_person.txt")); msgs[0].Body != want {
		t.Fatalf("message differs from same_person.txt:\n--- got\n%s\n--- want\n%s", msgs[0].Body, want)
	}

	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	assertCoreRows(t, ctx, pool, lead)

	// The same webhook again: a duplicate, nothing published, no message.
	status, body = post(t, base+"/api/v1/webhooks/c2s?token=e2e-secret", webhook)
	if status != http.StatusOK || !strings.Contains(body, `"duplicate"`) {
		t.Fatalf("second webhook = %d %s", status, body)
	}
	nc, err := nats.Connect(broker.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	st, err := js.Stream(ctx, events.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(events.SubjectReceived))
	if err != nil {
		t.Fatal(err)
	}
	if n := info.State.Subjects[events.SubjectReceived]; n != 1 {
		t.Fatalf("%d lead.received events, want 1", n)
	}
	// A later lead finishing proves the pipeline drained past the repeat.
	array := contracts.Read("c2s/webhook_array.json")
	if status, body = post(t, base+"/api/v1/webhooks/c2s?token=e2e-secret", array); status != http.StatusAccepted {
		t.Fatalf("array webhook = %d %s", status, body)
	}
	waitFor(t, "the second lead's message", 60*time.Second, func() bool {
		return len(sims.C2S.Messages("a1b2c3d4e5f60718293a4b5c6d7e8f90")) == 1
	})
	if n := len(sims.C2S.Messages(lead)); n != 1 {
		t.Fatalf("the repeated webhook produced %d messages on the lead, want 1", n)
	}

	// Every process serves its metrics on its private port.
	for _, name := range services {
		resp, err := http.Get(metricsURL[name])
		if err != nil {
			t.Fatalf("%s metrics: %v", name, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "leadflow_pgxpool_total_conns") {
			t.Errorf("%s %s = %d without leadflow metrics", name, metricsURL[name], resp.StatusCode)
		}
	}

	// SIGTERM: each service stops and exits 0 within 10 s (RUN.md).
	for _, name := range services {
		p := procs[name]
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-p.done:
			if err != nil {
				t.Errorf("%s exited with %v after SIGTERM:\n%s", name, err, tail(p.out.String()))
			}
		case <-time.After(10 * time.Second):
			t.Errorf("%s did not stop within 10 s of SIGTERM", name)
		}
	}

	// LGPD: the logs of the whole run carry no raw personal data.
	var logs strings.Builder
	for _, name := range services {
		logs.WriteString(procs[name].out.String())
	}
	for _, raw := range []string{"31860457207", "318.604.572-07", "74291506325", "5511987650123", "11987650123",
		"helena.duarte@example.com", "Helena", "HELENA", "Duarte", "otavio.prado@example.com", "Otavio", "5511912340987"} {
		if strings.Contains(logs.String(), raw) {
			t.Errorf("logs contain raw personal data %q", raw)
		}
	}
	if !strings.Contains(logs.String(), `"service":"notifier"`) {
		t.Fatal("expected JSON logs from the services")
	}
}

func assertCoreRows(t *testing.T, ctx context.Context, pool *pgxpool.Pool, lead string) {
	t.Helper()
	var entities, emails, phones, addresses, financials int
	var name, canonical, metaLead string
	err := pool.QueryRow(ctx, `SELECT count(*), min(name), min(canonical_name), min(metadata->>'c2s_lead_id')
		FROM core.entities WHERE national_id = '31860457207' AND entity_type = 'person' AND is_enriched AND data_source = 'api'`).
		Scan(&entities, &name, &canonical, &metaLead)
	if err != nil {
		t.Fatal(err)
	}
	if entities != 1 || name != "HELENA MARQUES DUARTE" || canonical != "HELENA MARQUES DUARTE" || metaLead != lead {
		t.Fatalf("core.entities: n=%d name=%q canonical=%q lead=%q", entities, name, canonical, metaLead)
	}
	_ = pool.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM core.entity_emails e JOIN core.entities x USING (entity_id) WHERE x.national_id='31860457207'),
		(SELECT count(*) FROM core.entity_phones e JOIN core.entities x USING (entity_id) WHERE x.national_id='31860457207'),
		(SELECT count(*) FROM core.entity_addresses e JOIN core.entities x USING (entity_id) WHERE x.national_id='31860457207'),
		(SELECT count(*) FROM core.entity_financials e JOIN core.entities x USING (entity_id) WHERE x.national_id='31860457207')`).
		Scan(&emails, &phones, &addresses, &financials)
	if emails != 4 || phones != 4 || addresses != 3 || financials != 1 {
		t.Fatalf("child rows: emails=%d phones=%d addresses=%d financials=%d, want 4 4 3 1", emails, phones, addresses, financials)
	}
	var income, risk string
	var score int
	var sex, birth string
	err = pool.QueryRow(ctx, `SELECT f.reported_income::text, f.credit_score, f.risk_score::text, p.sex, p.birth_date::text
		FROM core.entities x JOIN core.entity_financials f USING (entity_id) JOIN core.entity_profiles p USING (entity_id)
		WHERE x.national_id = '31860457207'`).Scan(&income, &score, &risk, &sex, &birth)
	if err != nil {
		t.Fatal(err)
	}
	if income != "16150.95" || score != 845 || risk != "0.30" || sex != "F" || birth != "1986-03-14" {
		t.Fatalf("financials/profile: income=%s score=%d risk=%s sex=%s birth=%s", income, score, risk, sex, birth)
	}
	var primaryEmail string
	if err := pool.QueryRow(ctx, `SELECT e.email FROM core.entity_emails e JOIN core.entities x USING (entity_id)
		WHERE x.national_id='31860457207' AND e.is_primary`).Scan(&primaryEmail); err != nil || primaryEmail != "helena.duarte@example.com" {
		t.Fatalf("primary email = %q (%v)", primaryEmail, err)
	}
}

func post(t *testing.T, url string, body []byte) (int, string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func tail(s string) string {
	if len(s) > 2000 {
		return s[len(s)-2000:]
	}
	return s
}

// TestVersionFlag: every service binary answers --version and exits 0
// without reading its configuration.
func TestVersionFlag(t *testing.T) {
	bin := binaries(t)
	for _, name := range services {
		out, err := exec.Command(filepath.Join(bin, name), "--version").CombinedOutput()
		if err != nil || !strings.HasPrefix(string(out), name+" ") || !strings.Contains(string(out), "commit ") {
			t.Errorf("%s --version = %q, %v", name, out, err)
		}
	}
}
