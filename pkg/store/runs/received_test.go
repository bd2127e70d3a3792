package runs

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/leadflow/leadflow/pkg/backbone/events"
	"github.com/leadflow/leadflow/pkg/store"
	"github.com/leadflow/leadflow/pkg/testinfra"
)

// TestReceivedStepComesFromTheRun: the run start writes no trace row, yet
// every trace shows the run's received step once, with its trace id and
// replay id; a stage recorded before the start (ingest publishes first) does
// not hide it or move the run back; runs started before the migration keep
// their own received row, shown and counted once.
func TestReceivedStepComesFromTheRun(t *testing.T) {
	ctx := context.Background()
	pool := testinfra.NewPool(t, testinfra.NewDatabase(t))
	if err := store.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	s := New(pool)
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	traced := trace.ContextWithSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid}))

	received := func(lead string) []Step {
		t.Helper()
		tr, err := s.Trace(ctx, lead)
		if err != nil {
			t.Fatal(err)
		}
		var out []Step
		for _, st := range tr.Steps {
			if st.Stage == StageReceived {
				out = append(out, st)
			}
		}
		return out
	}

	// A webhook's run, started twice (a redelivered start).
	rec, _ := events.NewReceived("lead-w", events.SourceWebhook, "k1", events.LeadReceived{Action: "on_create_lead"})
	rec.OccurredAt = time.Now().Add(-time.Minute).Truncate(time.Microsecond)
	for range 2 {
		if err := StartRun(traced, pool, rec); err != nil {
			t.Fatal(err)
		}
	}
	steps := received("lead-w")
	if len(steps) != 1 || steps[0].RunID != rec.RunID || steps[0].Outcome != string(events.SourceWebhook) || !steps[0].At.Equal(rec.OccurredAt) {
		t.Fatalf("received steps = %+v", steps)
	}
	var detail map[string]any
	if err := json.Unmarshal(steps[0].Detail, &detail); err != nil || detail["trace_id"] != tid.String() || detail["replay_id"] != nil {
		t.Fatalf("detail = %s (%v)", steps[0].Detail, err)
	}
	var rows int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM pipeline.lead_stages`).Scan(&rows); err != nil || rows != 0 {
		t.Fatalf("the run start wrote %d trace rows (%v); want none", rows, err)
	}

	// A replay's run, whose resolver recorded before ingest's start landed.
	rp, _ := events.NewReceived("lead-r", events.SourceReplay, "k2", events.LeadReceived{})
	rp.ReplayID = "rp-1"
	res, _ := events.New(events.TypeResolved, &rp, events.LeadResolved{})
	if err := Record(ctx, pool, res, Outcome{Stage: StageResolved, Outcome: "same_person"}); err != nil {
		t.Fatal(err)
	}
	if got := received("lead-r"); len(got) != 0 {
		t.Fatalf("a run nobody started shows a received step: %+v", got)
	}
	if err := StartRun(ctx, pool, rp); err != nil {
		t.Fatal(err)
	}
	tr, err := s.Trace(ctx, "lead-r")
	if err != nil {
		t.Fatal(err)
	}
	if tr.Status != StageResolved || len(tr.Steps) != 2 || tr.Steps[0].Stage != StageReceived || tr.Steps[1].Stage != StageResolved {
		t.Fatalf("late start: status %s, steps %+v", tr.Status, tr.Steps)
	}
	detail = nil
	if err := json.Unmarshal(tr.Steps[0].Detail, &detail); err != nil || detail["replay_id"] != "rp-1" || detail["trace_id"] != nil {
		t.Fatalf("replay detail = %s (%v)", tr.Steps[0].Detail, err)
	}

	// A run started before the migration: its own received row, no received_at.
	old, _ := events.NewReceived("lead-o", events.SourceMake, "k3", events.LeadReceived{})
	if _, err := pool.Exec(ctx, `INSERT INTO pipeline.lead_runs (run_id, lead_id, source, started_at) VALUES ($1, $2, 'make', now())`,
		old.RunID, old.LeadID); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO pipeline.lead_stages (event_id, run_id, lead_id, stage, outcome, detail, at)
		VALUES ($1, $2, $3, 'received', 'make', '{"replay_id": null}', now())`, old.EventID, old.RunID, old.LeadID); err != nil {
		t.Fatal(err)
	}
	if got := received("lead-o"); len(got) != 1 || got[0].Outcome != "make" {
		t.Fatalf("old run's received steps = %+v", got)
	}
	// ...and started again after it (a retry across the deploy): still one.
	if err := StartRun(ctx, pool, old); err != nil {
		t.Fatal(err)
	}
	if got := received("lead-o"); len(got) != 1 || got[0].Outcome != "make" {
		t.Fatalf("old run started again: received steps = %+v", got)
	}
	counts, err := s.CountStages(ctx, time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if c := counts[0]; c.Received != 3 || c.Resolved != 1 {
		t.Fatalf("counts = %+v; want 3 runs received (each once), 1 resolved", c)
	}
}
