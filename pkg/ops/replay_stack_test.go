package ops_test

import (
	"context"
	"testing"
	"time"

	"github.com/leadflow/leadflow/pkg/backbone/events"
	"github.com/leadflow/leadflow/pkg/ops"
	"github.com/leadflow/leadflow/pkg/sim"
	"github.com/leadflow/leadflow/pkg/store/runs"
)

// TestReplayCostsNothingByDefault: 200 leads go through the whole product;
// two default replays leave core.* identical and cost no Work API call and
// no C2S message; a --refresh --notify replay pays and posts once per lead.
func TestReplayCostsNothingByDefault(t *testing.T) {
	const n = 200
	s, o, pool := startStack(t, sim.Config{Seed: 6, People: 600, Leads: 600})
	ctx := context.Background()
	leads := singlePersonLeads(t, s.Sims.Pop, n)

	postWebhooks(t, s, leads)
	waitRuns(t, pool, 60*time.Second, n, "replay_id IS NULL")
	paid, msgs := s.Sims.WorkAPI.TotalPaidCalls(), s.Sims.C2S.MessageCount()
	if paid != n || msgs != n {
		t.Fatalf("first pass: %d paid calls and %d messages, want %d each (one CPF per lead)", paid, msgs, n)
	}
	digest, rows := coreDigest(t, pool)
	if rows == 0 {
		t.Fatal("first pass wrote no core.* rows")
	}

	for i := range 2 {
		sum, err := o.Replay(ctx, ops.ReplayRequest{}, ops.ReplayHooks{})
		if err != nil {
			t.Fatalf("replay %d: %v", i, err)
		}
		if sum.Selected != n || sum.Published != n || sum.Skipped != 0 || sum.Failed != 0 {
			t.Fatalf("replay %d summary = %+v, want %d selected and published", i, sum, n)
		}
		waitRuns(t, pool, 60*time.Second, n, "replay_id = $1", sum.ReplayID)
		if got, _ := coreDigest(t, pool); got != digest {
			t.Fatalf("replay %d changed core.* rows", i)
		}
		if got := s.Sims.WorkAPI.TotalPaidCalls(); got != paid {
			t.Fatalf("replay %d made %d paid Work API calls, want 0", i, got-paid)
		}
		if got := s.Sims.C2S.MessageCount(); got != msgs {
			t.Fatalf("replay %d posted %d C2S messages, want 0", i, got-msgs)
		}
		var status string
		var published int
		if err := pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE status = 'notified') FROM pipeline.lead_runs WHERE replay_id = $1`,
			sum.ReplayID).Scan(&published); err != nil || published != n {
			t.Fatalf("replay %d: %d runs notified (skipped), want %d (%v)", i, published, n, err)
		}
		if err := pool.QueryRow(ctx, `SELECT selected || '/' || published || '/' || skipped FROM pipeline.replays WHERE replay_id = $1 AND finished_at IS NOT NULL`,
			sum.ReplayID).Scan(&status); err != nil || status != "200/200/0" {
			t.Fatalf("pipeline.replays row = %q (%v), want 200/200/0", status, err)
		}
	}

	// The replay shows in the lead's trace (GET /api/v1/leads/{id} reads the same).
	tr, err := o.Trace(ctx, leads[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	replays := 0
	for _, r := range tr.Runs {
		if r.Source == string(events.SourceReplay) && r.ReplayID != "" && r.Status == runs.StageNotified {
			replays++
		}
	}
	if replays != 2 || len(tr.Runs) != 3 {
		t.Fatalf("trace has %d runs, %d finished replays; want 3 runs, 2 replays", len(tr.Runs), replays)
	}

	sum, err := o.Replay(ctx, ops.ReplayRequest{Refresh: true, Notify: true}, ops.ReplayHooks{})
	if err != nil || sum.Published != n {
		t.Fatalf("refresh replay: %+v, %v", sum, err)
	}
	waitRuns(t, pool, 60*time.Second, n, "replay_id = $1", sum.ReplayID)
	if got := s.Sims.WorkAPI.TotalPaidCalls() - paid; got != n {
		t.Fatalf("--refresh made %d paid calls, want %d", got, n)
	}
	if got := s.Sims.C2S.MessageCount() - msgs; got != n {
		t.Fatalf("--notify posted %d messages, want %d", got, n)
	}
	for _, l := range leads[:5] {
		if got := len(s.Sims.C2S.Messages(l.ID)); got != 2 {
			t.Fatalf("lead %s has %d messages, want 2 (live + --notify replay)", l.ID, got)
		}
	}
}
