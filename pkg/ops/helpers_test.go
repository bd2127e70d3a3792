package ops_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/leadflow/leadflow/cmd/stack/stack"
	"github.com/leadflow/leadflow/pkg/backbone/events"
	"github.com/leadflow/leadflow/pkg/ops"
	"github.com/leadflow/leadflow/pkg/sim"
	"github.com/leadflow/leadflow/pkg/testinfra"
)

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

// fastEnv lifts the production pacing of the upstreams: the simulators
// answer instantly and these tests measure behaviour, not politeness.
func fastEnv(dbURL string) map[string]string {
	env := map[string]string{"DATABASE_URL": dbURL, "LOG_LEVEL": "warn"}
	for _, p := range []string{"WORK_API", "C2S", "DIRETRIX"} {
		env[p+"_RATE"] = "0"
		env[p+"_CONCURRENCY"] = "0"
	}
	return env
}

// startStack runs the whole product on a fresh database and embedded NATS.
func startStack(t *testing.T, cfg sim.Config) (*stack.Stack, *ops.Ops, *pgxpool.Pool) {
	t.Helper()
	dbURL := testinfra.NewDatabase(t)
	logs := &logBuffer{}
	s, err := stack.Start(context.Background(), stack.Options{Env: fastEnv(dbURL), Sim: cfg, Log: logs})
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

// webhookBody is the single-event shape of contracts
// c2s/webhook_on_create_lead.json for a simulated lead.
func webhookBody(l sim.Lead) []byte {
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
	b, _ := json.Marshal(map[string]any{
		"id":          l.ID,
		"hook_action": "on_create_lead",
		"attributes": map[string]any{
			"updated_at": "2025-11-21T13:30:00Z",
			"customer":   customer,
			"log":        []any{},
			"messages":   []any{},
		},
	})
	return b
}

// postWebhooks delivers one webhook per lead, a few at a time.
func postWebhooks(t *testing.T, s *stack.Stack, leads []sim.Lead) {
	t.Helper()
	url := s.IngestURL + "/api/v1/webhooks/c2s?token=" + s.Env["WEBHOOK_SECRET"]
	sem := make(chan struct{}, 16)
	errs := make(chan error, len(leads))
	var wg sync.WaitGroup
	for _, l := range leads {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			resp, err := http.Post(url, "application/json", bytes.NewReader(webhookBody(l)))
			if err != nil {
				errs <- err
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted {
				errs <- fmt.Errorf("webhook for %s: status %d", l.ID, resp.StatusCode)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
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

// waitRuns waits until want runs matching where are final.
func waitRuns(t *testing.T, pool *pgxpool.Pool, within time.Duration, want int, where string, args ...any) {
	t.Helper()
	waitFor(t, within, fmt.Sprintf("%d final runs (%s)", want, where), func() (bool, string) {
		var final, all int
		err := pool.QueryRow(context.Background(), `SELECT count(*) FILTER (WHERE finished_at IS NOT NULL), count(*)
			FROM pipeline.lead_runs WHERE `+where, args...).Scan(&final, &all)
		if err != nil {
			return false, err.Error()
		}
		return final >= want, fmt.Sprintf("%d final of %d", final, all)
	})
}

// coreDigest hashes every row of every core.* table, leaving out the
// timestamp columns (enriched_at, created_at, updated_at...) that a rewrite
// legitimately moves.
func coreDigest(t *testing.T, pool *pgxpool.Pool) (string, int) {
	t.Helper()
	ctx := context.Background()
	rows, err := pool.Query(ctx, `SELECT table_name, array_agg(column_name::text ORDER BY column_name)
		FROM information_schema.columns
		WHERE table_schema = 'core' AND data_type LIKE 'timestamp%'
		GROUP BY table_name`)
	if err != nil {
		t.Fatal(err)
	}
	skip := map[string][]string{}
	for rows.Next() {
		var table string
		var cols []string
		if err := rows.Scan(&table, &cols); err != nil {
			t.Fatal(err)
		}
		skip[table] = cols
	}
	rows.Close()
	var tables []string
	rows, err = pool.Query(ctx, `SELECT table_name FROM information_schema.tables WHERE table_schema = 'core' AND table_type = 'BASE TABLE' ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var name string
		_ = rows.Scan(&name)
		tables = append(tables, name)
	}
	rows.Close()
	h := sha256.New()
	total := 0
	for _, table := range tables {
		var digest string
		var n int
		err := pool.QueryRow(ctx, fmt.Sprintf(`SELECT count(*), COALESCE(md5(string_agg(r, E'\n' ORDER BY r)), '')
			FROM (SELECT (to_jsonb(t) - $1::text[])::text AS r FROM core.%q t) x`, table), skip[table]).Scan(&n, &digest)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(h, "%s:%d:%s\n", table, n, digest)
		total += n
	}
	return hex.EncodeToString(h.Sum(nil)), total
}

// singlePersonLeads picks n leads that each resolve to exactly one CPF the
// Work API knows, no two sharing a CPF: each costs exactly one paid call and
// gets exactly one message.
func singlePersonLeads(t *testing.T, pop *sim.Population, n int) []sim.Lead {
	t.Helper()
	seen := map[string]bool{}
	var out []sim.Lead
	for _, l := range pop.Leads() {
		cpfs := pop.ExpectedPersons(l.ID)
		if len(cpfs) != 1 || seen[cpfs[0]] || l.Kind == sim.LeadContract {
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
	t.Fatalf("population has only %d single-person leads with distinct CPFs, want %d", len(out), n)
	return nil
}

// streamMessages counts the messages stored on a subject.
func streamMessages(t *testing.T, o *ops.Ops, subject string) uint64 {
	t.Helper()
	st, err := o.JS.Stream(context.Background(), events.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(context.Background(), jetstream.WithSubjectFilter(subject))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Subjects[subject]
}

func jsonOf(t *testing.T, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("not JSON (%v): %s", err, strings.TrimSpace(s))
	}
}
