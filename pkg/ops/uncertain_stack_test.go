package ops_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/leadflow/leadflow/cmd/stack/stack"
	"github.com/leadflow/leadflow/pkg/sim"
	"github.com/leadflow/leadflow/pkg/store/ledger"
	"github.com/leadflow/leadflow/pkg/testinfra"
)

// blindC2S fronts the C2S simulator the way the real C2S behaves for these
// tests: the lead document never lists messages (the confirmed lead.json
// has no messages key). While losing, a create_message reaches C2S (it is
// stored) and its reply is lost; while dropping, the connection drops after
// the request was sent and C2S never stores it.
type blindC2S struct {
	target atomic.Pointer[http.Handler]
	mode   atomic.Int32
}

const (
	passPosts = iota
	losePosts
	dropPosts
)

func (b *blindC2S) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	target := *b.target.Load()
	switch {
	case r.Method == http.MethodGet:
		rec := httptest.NewRecorder()
		target.ServeHTTP(rec, r)
		body := rec.Body.Bytes()
		var doc map[string]any
		if json.Unmarshal(body, &doc) == nil {
			delete(doc, "messages")
			if data, ok := doc["data"].(map[string]any); ok {
				if attrs, ok := data["attributes"].(map[string]any); ok {
					delete(attrs, "messages")
				}
			}
			body, _ = json.Marshal(doc)
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(body)
	case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/create_message") && b.mode.Load() != passPosts:
		if b.mode.Load() == losePosts {
			target.ServeHTTP(httptest.NewRecorder(), r)
		} else {
			_, _ = io.ReadAll(r.Body)
		}
		if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
			_ = conn.Close()
		}
	default:
		target.ServeHTTP(w, r)
	}
}

func runStatusOf(t *testing.T, pool *pgxpool.Pool, leadID string) string {
	t.Helper()
	var st string
	_ = pool.QueryRow(context.Background(), `SELECT status FROM pipeline.lead_runs WHERE lead_id = $1 ORDER BY started_at DESC LIMIT 1`, leadID).Scan(&st)
	return st
}

// TestUncertainDeliveriesConfirmAndRepost: two posts lose their replies on
// leads that list no messages. Neither is posted again: both end uncertain,
// dead-lettered with the reason. The operator confirms the one that landed
// (nothing posted) and reposts the one that did not (posted exactly once,
// although asked twice), with leadflowctl.
func TestUncertainDeliveriesConfirmAndRepost(t *testing.T) {
	front := &blindC2S{}
	var none http.Handler = http.NotFoundHandler()
	front.target.Store(&none)
	srv := httptest.NewServer(front)
	t.Cleanup(srv.Close)
	dbURL := testinfra.NewDatabase(t)
	env := fastEnv(dbURL)
	env["C2S_BASE_URL"], env["C2S_TOKEN"] = srv.URL, "c2s-token"
	logs := &logBuffer{}
	s, err := stack.Start(context.Background(), stack.Options{Env: env, Sim: sim.Config{Seed: 31, People: 30, Leads: 30}, Log: logs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("service logs (tail):\n%s", logs.tail(8000))
		}
	})
	var c2s http.Handler = s.Sims.C2S
	front.target.Store(&c2s)
	pool := testinfra.NewPool(t, dbURL)
	ctlEnv := map[string]string{"NATS_URL": s.Env["NATS_URL"], "DATABASE_URL": dbURL}
	leads := singlePersonLeads(t, s.Sims.Pop, 2)
	landed, lost := leads[0], leads[1]

	front.mode.Store(losePosts)
	postWebhooks(t, s, []sim.Lead{landed})
	waitFor(t, 60*time.Second, "the landed post to end uncertain", func() (bool, string) {
		st := runStatusOf(t, pool, landed.ID)
		return st == "uncertain", st
	})
	front.mode.Store(dropPosts)
	postWebhooks(t, s, []sim.Lead{lost})
	waitFor(t, 60*time.Second, "the lost post to end uncertain", func() (bool, string) {
		st := runStatusOf(t, pool, lost.ID)
		return st == "uncertain", st
	})
	front.mode.Store(passPosts)
	if a, b := len(s.Sims.C2S.Messages(landed.ID)), len(s.Sims.C2S.Messages(lost.ID)); a != 1 || b != 0 {
		t.Fatalf("messages: %d on the landed lead, %d on the lost one; want 1 and 0 (never posted blind)", a, b)
	}
	dls := deadLetters(t, ctlEnv, "notifier")
	if len(dls) != 2 || !strings.Contains(dls[0].Reason, "uncertain delivery") || !strings.Contains(dls[1].Reason, "uncertain delivery") {
		t.Fatalf("dead letters = %+v, want two saying uncertain delivery", dls)
	}

	if out, code := ctl(t, ctlEnv, "status", "--db", dbURL); code != 0 || !strings.Contains(out, "uncertain deliveries: 2") {
		t.Fatalf("status exit %d:\n%s", code, out)
	}
	out, code := ctl(t, ctlEnv, "uncertain", "list", "--json")
	var open []ledger.Entry
	jsonOf(t, out, &open)
	if code != 0 || len(open) != 2 || open[0].Status != ledger.StatusUncertain || open[0].RunID == "" {
		t.Fatalf("uncertain list exit %d: %+v", code, open)
	}
	runOf := map[string]string{}
	for _, e := range open {
		runOf[e.LeadID] = e.RunID
	}

	// The operator sees the first message on the lead: confirm.
	out, code = ctl(t, ctlEnv, "uncertain", "confirm", landed.ID, runOf[landed.ID])
	if code != 0 || !strings.Contains(out, "confirmed") {
		t.Fatalf("confirm exit %d: %s", code, out)
	}
	if st := runStatusOf(t, pool, landed.ID); st != "notified" {
		t.Fatalf("confirmed run = %q", st)
	}

	// The second is not there: repost, asked twice while the notifier is
	// down, so both requests are queued before it runs either.
	s.StopService("notifier")
	for i := 0; i < 2; i++ {
		if out, code = ctl(t, ctlEnv, "uncertain", "repost", lost.ID, runOf[lost.ID], "--wait", "0"); code != 0 || !strings.Contains(out, "queued") {
			t.Fatalf("repost %d exit %d: %s", i, code, out)
		}
	}
	if err := s.StartService("notifier"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "the repost", func() (bool, string) {
		st := runStatusOf(t, pool, lost.ID)
		return st == "notified", st
	})
	time.Sleep(time.Second) // room for a second post, were there one
	if a, b := len(s.Sims.C2S.Messages(landed.ID)), len(s.Sims.C2S.Messages(lost.ID)); a != 1 || b != 1 {
		t.Fatalf("messages: %d on the confirmed lead, %d on the reposted one; want exactly 1 each", a, b)
	}
	if out, code = ctl(t, ctlEnv, "uncertain", "repost", lost.ID, runOf[lost.ID]); code != 0 || !strings.Contains(out, "already sent") {
		t.Fatalf("repost after it was sent: exit %d: %s", code, out)
	}
	if n := len(s.Sims.C2S.Messages(lost.ID)); n != 1 {
		t.Fatalf("%d messages after a third repost, want 1", n)
	}
	if out, code = ctl(t, ctlEnv, "uncertain", "list"); code != 0 || !strings.Contains(out, "0 delivery(ies) waiting") {
		t.Fatalf("uncertain list exit %d: %s", code, out)
	}
	if dls := deadLetters(t, ctlEnv, "notifier"); len(dls) != 0 {
		t.Fatalf("resolved deliveries still dead-lettered: %+v", dls)
	}
	if out, code = ctl(t, ctlEnv, "trace", lost.ID); code != 0 || !strings.Contains(out, "uncertain") || !bytes.Contains([]byte(out), []byte("notified")) {
		t.Fatalf("trace exit %d:\n%s", code, out)
	}
}
