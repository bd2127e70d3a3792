package service_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/leadflow/leadflow/cmd/stack/stack"
	"github.com/leadflow/leadflow/pkg/contracts"
	"github.com/leadflow/leadflow/pkg/sim"
	"github.com/leadflow/leadflow/pkg/testinfra"
)

// startStack runs the whole product in process on a fresh database.
func startStack(t *testing.T, log io.Writer, env map[string]string, cfg sim.Config) *stack.Stack {
	t.Helper()
	e := map[string]string{"DATABASE_URL": testinfra.NewDatabase(t)}
	for k, v := range env {
		e[k] = v
	}
	if log == nil {
		log = io.Discard
	}
	s, err := stack.Start(context.Background(), stack.Options{Env: e, Sim: cfg, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

var storedRE = regexp.MustCompile(`^Successfully processed and enriched lead\. Stored (\d+) entities in database\.$`)

// TestMakeWaitAndQueries: the Make trigger with wait answers the previous
// service's shape once the lead is enriched and notified; then the query
// endpoints and POST /api/v1/enrich read and extend what the run wrote.
func TestMakeWaitAndQueries(t *testing.T) {
	s := startStack(t, nil, nil, sim.Config{Seed: 5, People: 20})
	key, tok := s.Env["API_KEYS"], url.QueryEscape(s.Env["WEBHOOK_SECRET"])

	r := do(t, http.MethodGet, s.IngestURL+"/api/v1/leads/process?id="+helenaLead+"&wait=60&token="+tok, "", nil)
	if r.Status != http.StatusOK || r.JSON["success"] != true || r.str("lead_id") != helenaLead || r.str("status") != "queued" {
		t.Fatalf("wait trigger = %d %s", r.Status, r.Body)
	}
	if !storedRE.MatchString(r.str("message")) || r.JSON["cpfs_processed"] != float64(1) || r.JSON["entities_stored"] != float64(1) {
		t.Fatalf("wait answer is not the previous service's shape: %s", r.Body)
	}
	if n := len(s.Sims.C2S.Messages(helenaLead)); n != 1 {
		t.Fatalf("%d messages on the lead, want 1", n)
	}
	// A second wait trigger within the window: duplicate, answered at once
	// from the finished run, and no second message.
	r = do(t, http.MethodGet, s.IngestURL+"/api/v1/leads/process?id="+helenaLead+"&wait=5&token="+tok, "", nil)
	if r.str("status") != "duplicate" || r.JSON["success"] != true || !storedRE.MatchString(r.str("message")) {
		t.Fatalf("repeat wait trigger = %s", r.Body)
	}

	t.Run("customer lookups", func(t *testing.T) {
		byCPF := do(t, http.MethodGet, s.IngestURL+"/api/v1/contributor/customer?cpf="+sim.HelenaCPF, key, nil)
		if byCPF.Status != http.StatusOK || byCPF.str("cpf") != sim.HelenaCPF || byCPF.str("entity_id") == "" {
			t.Fatalf("by cpf = %d %.300s", byCPF.Status, byCPF.Body)
		}
		for _, q := range []string{
			"email=" + url.QueryEscape("HELENA.Duarte@Example.com"),
			"phone=" + url.QueryEscape("+55 (11) 98765-0123"),
			"phone=11987650123",
		} {
			r := do(t, http.MethodGet, s.IngestURL+"/api/v1/contributor/customer?"+q, key, nil)
			if r.Status != http.StatusOK || r.str("cpf") != sim.HelenaCPF {
				t.Errorf("%s = %d %.200s", q, r.Status, r.Body)
			}
		}
		r := do(t, http.MethodGet, s.IngestURL+"/api/v1/customers/"+byCPF.str("entity_id"), key, nil)
		if r.Status != http.StatusOK || r.str("cpf") != sim.HelenaCPF {
			t.Fatalf("by id = %d %.200s", r.Status, r.Body)
		}
		// Accents and case do not matter; every word must match.
		for _, name := range []string{"helena duarte", "HÉLÊNA dúarte", "Marques"} {
			r := do(t, http.MethodGet, s.IngestURL+"/api/v1/contributor/customer?name="+url.QueryEscape(name), key, nil)
			if r.Status != http.StatusOK || !strings.Contains(string(r.Body), sim.HelenaCPF) {
				t.Errorf("name %q = %d %.200s", name, r.Status, r.Body)
			}
		}
		if r := do(t, http.MethodGet, s.IngestURL+"/api/v1/contributor/customer?name=helena+zzz", key, nil); r.Status != http.StatusNotFound {
			t.Errorf("a name with a non-matching word = %d", r.Status)
		}
		if r := do(t, http.MethodGet, s.IngestURL+"/api/v1/contributor/customer?cpf="+sim.OtavioCPF, key, nil); r.Status != http.StatusNotFound {
			t.Errorf("a person never enriched = %d", r.Status)
		}
	})

	t.Run("trace", func(t *testing.T) {
		r := do(t, http.MethodGet, s.IngestURL+"/api/v1/leads/"+helenaLead, key, nil)
		var tr struct {
			Runs []struct {
				Status string `json:"status"`
			} `json:"runs"`
			Steps []struct {
				Stage string `json:"stage"`
			} `json:"steps"`
		}
		if r.Status != http.StatusOK || json.Unmarshal(r.Body, &tr) != nil || len(tr.Runs) != 1 || tr.Runs[0].Status != "notified" {
			t.Fatalf("trace = %d %s", r.Status, r.Body)
		}
		var stages []string
		for _, st := range tr.Steps {
			stages = append(stages, st.Stage)
		}
		if got := strings.Join(stages, ","); got != "received,resolved,enriched,notified" {
			t.Fatalf("stages = %s", got)
		}
		if strings.Contains(string(r.Body), sim.HelenaCPF) {
			t.Fatal("the trace shows a CPF unmasked")
		}
		if r := do(t, http.MethodGet, s.IngestURL+"/api/v1/leads/"+sim.OtavioLeadID, key, nil); r.Status != http.StatusNotFound {
			t.Fatalf("trace of an unseen lead = %d", r.Status)
		}
	})

	t.Run("POST /api/v1/enrich", func(t *testing.T) {
		paidBefore := s.Sims.WorkAPI.PaidCalls(sim.OtavioCPF)
		r := do(t, http.MethodPost, s.IngestURL+"/api/v1/enrich", key, []byte(`{"email":"Otavio.Prado@example.com"}`))
		if r.Status != http.StatusOK || r.str("cpf") != sim.OtavioCPF || r.JSON["is_enriched"] != true {
			t.Fatalf("enrich by email = %d %.300s", r.Status, r.Body)
		}
		if got := s.Sims.WorkAPI.PaidCalls(sim.OtavioCPF) - paidBefore; got != 1 {
			t.Fatalf("enrich by email paid %d calls, want 1", got)
		}
		// Reuse first: the same person again, by CPF (formatted) and by
		// phone, costs nothing more.
		for _, body := range []string{`{"cpf":"742.915.063-25"}`, `{"phone":"5511912340987"}`} {
			r := do(t, http.MethodPost, s.IngestURL+"/api/v1/enrich", key, []byte(body))
			if r.Status != http.StatusOK || r.str("cpf") != sim.OtavioCPF {
				t.Fatalf("enrich %s = %d %.300s", body, r.Status, r.Body)
			}
		}
		if got := s.Sims.WorkAPI.PaidCalls(sim.OtavioCPF) - paidBefore; got != 1 {
			t.Fatalf("repeat enrichments paid again: %d calls", got)
		}
		// The person is now in core.*, found by the query API too.
		if r := do(t, http.MethodGet, s.IngestURL+"/api/v1/contributor/customer?cpf="+sim.OtavioCPF, key, nil); r.Status != http.StatusOK {
			t.Fatalf("enriched person not readable: %d", r.Status)
		}
		r = do(t, http.MethodPost, s.IngestURL+"/api/v1/enrich", key, []byte(`{"name":"otávio PRADO"}`))
		if r.Status != http.StatusOK || !strings.Contains(string(r.Body), sim.OtavioCPF) {
			t.Fatalf("enrich by name = %d %.300s", r.Status, r.Body)
		}
		if r := do(t, http.MethodPost, s.IngestURL+"/api/v1/enrich", key, []byte(`{"email":"nobody-at-all@example.org"}`)); r.Status != http.StatusNotFound {
			t.Fatalf("enrich of nobody = %d %s", r.Status, r.Body)
		}
	})
}

// TestMakeRetriesGiveOneMessage: Make retries a trigger; five identical
// triggers within 2 s (MAKE_DEDUPE_WINDOW at its 5-minute default) start one
// run and post one message.
func TestMakeRetriesGiveOneMessage(t *testing.T) {
	s := startStack(t, nil, nil, sim.Config{Seed: 6, People: 20})
	trigger := s.IngestURL + "/api/v1/leads/process?id=" + sim.OtavioLeadID + "&token=" + url.QueryEscape(s.Env["WEBHOOK_SECRET"])
	var mu sync.Mutex
	statuses := map[string]int{}
	var wg sync.WaitGroup
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := do(t, http.MethodGet, trigger, "", nil)
			mu.Lock()
			defer mu.Unlock()
			if r.Status != http.StatusOK || r.JSON["success"] != true {
				t.Errorf("trigger = %d %s", r.Status, r.Body)
			}
			statuses[r.str("status")]++
		}()
	}
	wg.Wait()
	if statuses["queued"] != 1 || statuses["duplicate"] != 4 {
		t.Fatalf("statuses = %v, want 1 queued and 4 duplicates", statuses)
	}
	waitFor(t, "the run to finish", 60*time.Second, func() bool {
		r := do(t, http.MethodGet, s.IngestURL+"/api/v1/leads/"+sim.OtavioLeadID, s.Env["API_KEYS"], nil)
		return strings.Contains(string(r.Body), `"status":"notified"`)
	})
	// A retry arriving after the run finished is still within the window.
	if r := do(t, http.MethodGet, trigger, "", nil); r.str("status") != "duplicate" {
		t.Fatalf("late retry = %s", r.Body)
	}
	if n := len(s.Sims.C2S.Messages(sim.OtavioLeadID)); n != 1 {
		t.Fatalf("%d messages on the lead, want exactly 1", n)
	}
}

// TestLogsCarryNoPersonalData runs the contract webhooks, simulated leads
// and the query API with debug logs captured, then greps the logs for every
// fixture's CPF, phone, email and name.
func TestLogsCarryNoPersonalData(t *testing.T) {
	var logs syncBuffer
	s := startStack(t, &logs, map[string]string{"LOG_LEVEL": "debug", "NOTIFY_UNRESOLVED": "true"}, sim.Config{Seed: 8, People: 40})
	hook := s.IngestURL + "/api/v1/webhooks/c2s?token=" + url.QueryEscape(s.Env["WEBHOOK_SECRET"])
	key := s.Env["API_KEYS"]
	for _, f := range []string{"c2s/webhook_on_create_lead.json", "c2s/webhook_array.json", "c2s/webhook_on_close_lead.json"} {
		if r := do(t, http.MethodPost, hook, "", contracts.Read(f)); r.Status >= 300 {
			t.Fatalf("%s = %d %s", f, r.Status, r.Body)
		}
	}
	leads := []sim.Lead{}
	for _, l := range s.Sims.Pop.Leads() {
		if l.Kind != sim.LeadContract && l.Phone != "" && l.Email != "" && l.Name != "" && len(leads) < 6 {
			leads = append(leads, l)
		}
	}
	for _, l := range leads {
		if r := do(t, http.MethodPost, hook, "", webhookFor(l, "on_create_lead", "2025-11-22T10:00:00Z")); r.Status != http.StatusAccepted {
			t.Fatalf("webhook = %d %s", r.Status, r.Body)
		}
	}
	all := append([]string{helenaLead, sim.OtavioLeadID}, ids(leads)...)
	waitFor(t, "every run to finish", 90*time.Second, func() bool {
		for _, id := range all {
			r := do(t, http.MethodGet, s.IngestURL+"/api/v1/leads/"+id, key, nil)
			var tr struct {
				Runs []struct {
					FinishedAt *time.Time `json:"finished_at"`
				} `json:"runs"`
			}
			if json.Unmarshal(r.Body, &tr) != nil || len(tr.Runs) == 0 || tr.Runs[0].FinishedAt == nil {
				return false
			}
		}
		return true
	})
	// The query and enrichment API see personal data in requests too.
	for _, q := range []string{"cpf=" + sim.HelenaCPF, "email=" + sim.HelenaEmail, "phone=" + sim.HelenaPhone, "name=Helena+Duarte"} {
		do(t, http.MethodGet, s.IngestURL+"/api/v1/contributor/customer?"+q, key, nil)
	}
	do(t, http.MethodPost, s.IngestURL+"/api/v1/enrich", key, []byte(`{"email":"`+sim.OtavioEmail+`"}`))
	do(t, http.MethodGet, s.IngestURL+"/api/v1/work/modules/all?cpf="+sim.HelenaCPF, key, nil)
	s.Stop()

	out := logs.String()
	if !strings.Contains(out, `"service":"notifier"`) || !strings.Contains(out, `"level":"debug"`) {
		t.Fatalf("expected the services' debug JSON logs, got %d bytes", len(out))
	}
	raw := []string{
		sim.HelenaCPF, "318.604.572-07", sim.HelenaPhone, "55" + sim.HelenaPhone, "98765-0123", sim.HelenaEmail,
		"Helena", "HELENA", "Duarte", "DUARTE", "MARQUES",
		sim.OtavioCPF, "742.915.063-25", sim.OtavioPhone, "55" + sim.OtavioPhone, sim.OtavioEmail, "Otavio", "OTAVIO", "Prado", "PRADO",
	}
	for _, l := range leads {
		raw = append(raw, l.Phone, l.Email)
		raw = append(raw, s.Sims.Pop.ExpectedPersons(l.ID)...)
		for _, w := range strings.Fields(l.Name) {
			if len(w) >= 4 { // short particles ("da", "dos") are not identifying
				raw = append(raw, w)
			}
		}
	}
	for _, v := range raw {
		if v != "" && strings.Contains(out, v) {
			i := strings.Index(out, v)
			t.Errorf("logs contain raw personal data %q: ...%s...", v, out[max(0, i-200):min(len(out), i+100)])
		}
	}
}

func ids(ls []sim.Lead) []string {
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = l.ID
	}
	return out
}
