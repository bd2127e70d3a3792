package service_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/leadflow/leadflow/cmd/stack/stack"
	"github.com/leadflow/leadflow/pkg/contracts"
	"github.com/leadflow/leadflow/pkg/sim"
	"github.com/leadflow/leadflow/pkg/testinfra"
)

// TestTwoPeopleLeadThroughTheStack runs the whole product (ingest, resolver,
// enricher, notifier over JetStream and Postgres, upstreams simulated) on
// two-people leads, and checks the posted message against the contract
// golden and the core.* rows against DB.md.
func TestTwoPeopleLeadThroughTheStack(t *testing.T) {
	dbURL := testinfra.NewDatabase(t)
	env := map[string]string{"DATABASE_URL": dbURL, "LOG_LEVEL": "warn"}
	for _, p := range []string{"WORK_API", "C2S", "DIRETRIX"} {
		env[p+"_RATE"], env[p+"_CONCURRENCY"] = "0", "0" // the simulators need no pacing
	}
	logs := &syncBuffer{}
	s, err := stack.Start(context.Background(), stack.Options{Env: env, Sim: sim.Config{People: -1, Leads: -1}, Log: logs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			out := logs.String()
			t.Logf("service logs (tail):\n%s", out[max(0, len(out)-6000):])
		}
	})
	pool := testinfra.NewPool(t, dbURL)
	ctx := context.Background()
	golden := string(contracts.Read("message/different_people.txt"))

	// 1. MESSAGE.md's different_people case exactly: lead phone 5511987650123
	// (Helena by Diretrix) and lead email Helena.Duarte@Example.com, which an
	// earlier resolution ties to Otavio (database first, Diretrix skipped).
	exact := leadID("golden")
	if _, err := pool.Exec(ctx, `INSERT INTO pipeline.identity_resolutions (kind, value, cpf, source) VALUES ('email', $1, $2, 'diretrix')`,
		sim.HelenaEmail, sim.OtavioCPF); err != nil {
		t.Fatal(err)
	}
	addLeadAndPost(t, s, sim.Lead{ID: exact, Name: "Helena Duarte", Phone: "5511987650123", Email: "Helena.Duarte@Example.com"})
	if got := waitMessage(t, s, exact); got != golden {
		t.Fatalf("message differs from different_people.txt:\n%s", got)
	}

	// 2. Helena's phone and Otavio's email, both through the product's own
	// records or Diretrix. Same people: the stored payloads are reused.
	split := leadID("split")
	addLeadAndPost(t, s, sim.Lead{ID: split, Name: "Helena Duarte", Phone: "5511987650123", Email: sim.OtavioEmail})
	want := strings.Replace(golden, "(E-mail: helena.duarte@example.com)", "(E-mail: "+sim.OtavioEmail+")", 1)
	if got := waitMessage(t, s, split); got != want {
		t.Fatalf("message for the split lead:\n%s\nwant:\n%s", got, want)
	}
	if h, o := s.Sims.WorkAPI.PaidCalls(sim.HelenaCPF), s.Sims.WorkAPI.PaidCalls(sim.OtavioCPF); h != 1 || o != 1 {
		t.Fatalf("paid calls Helena %d, Otavio %d; want 1 each (the second lead reuses)", h, o)
	}

	// core.* holds the two persons as DB.md maps the contract payloads.
	type row struct {
		cpf, name, income, risk         string
		score, phones, emails, addrs, n int
		leadMeta                        string
	}
	q := `SELECT e.national_id, e.name, coalesce(f.reported_income::text, ''), coalesce(f.risk_score::text, ''),
		coalesce(f.credit_score, 0),
		(SELECT count(*) FROM core.entity_phones p WHERE p.entity_id = e.entity_id),
		(SELECT count(*) FROM core.entity_emails m WHERE m.entity_id = e.entity_id),
		(SELECT count(*) FROM core.entity_addresses a WHERE a.entity_id = e.entity_id),
		(SELECT count(*) FROM core.entities x WHERE x.national_id = e.national_id),
		e.metadata->>'c2s_lead_id'
		FROM core.entities e LEFT JOIN core.entity_financials f ON f.entity_id = e.entity_id
		WHERE e.is_enriched AND e.data_source = 'api' AND e.canonical_name = upper(e.name)
		ORDER BY e.national_id`
	rows, err := pool.Query(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	var got []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.cpf, &r.name, &r.income, &r.risk, &r.score, &r.phones, &r.emails, &r.addrs, &r.n, &r.leadMeta); err != nil {
			t.Fatal(err)
		}
		got = append(got, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	wantRows := []row{
		{cpf: sim.HelenaCPF, name: "HELENA MARQUES DUARTE", income: "16150.95", risk: "0.30", score: 845, phones: 4, emails: 4, addrs: 3, n: 1, leadMeta: split},
		{cpf: sim.OtavioCPF, name: "OTAVIO PRADO LINS", income: "2345.66", risk: "", score: 0, phones: 1, emails: 0, addrs: 1, n: 1, leadMeta: split},
	}
	if !reflect.DeepEqual(got, wantRows) {
		t.Fatalf("core.* rows:\n got %+v\nwant %+v", got, wantRows)
	}
	// The notifier records the run after posting: wait for it.
	waitFor(t, 30*time.Second, "both runs to be notified", func() bool {
		var notified int
		err := pool.QueryRow(ctx, `SELECT count(*) FROM pipeline.lead_runs WHERE lead_id IN ($1, $2) AND status = 'notified'`, exact, split).Scan(&notified)
		return err == nil && notified == 2
	})
}

// addLeadAndPost makes C2S and Diretrix know the lead and delivers its
// on_create_lead webhook.
func addLeadAndPost(t *testing.T, s *stack.Stack, l sim.Lead) {
	t.Helper()
	if err := s.Sims.Pop.AddLead(l); err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]any{
		"id": l.ID, "hook_action": "on_create_lead",
		"attributes": map[string]any{
			"updated_at": "2025-11-21T13:30:00Z",
			"customer":   map[string]any{"name": l.Name, "phone": l.Phone, "email": l.Email},
		},
	})
	resp, err := http.Post(s.IngestURL+"/api/v1/webhooks/c2s?token="+s.Env["WEBHOOK_SECRET"], "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("webhook answered %d", resp.StatusCode)
	}
}

// waitMessage waits for the one message posted on the lead.
func waitMessage(t *testing.T, s *stack.Stack, lead string) string {
	t.Helper()
	waitFor(t, 60*time.Second, "the message on lead "+lead, func() bool { return len(s.Sims.C2S.Messages(lead)) > 0 })
	msgs := s.Sims.C2S.Messages(lead)
	if len(msgs) != 1 {
		t.Fatalf("%d messages on the lead, want 1", len(msgs))
	}
	return msgs[0].Body
}
