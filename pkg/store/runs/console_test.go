package runs

import (
	"context"
	"testing"
	"time"

	"github.com/leadflow/leadflow/pkg/backbone/events"
	"github.com/leadflow/leadflow/pkg/store"
	"github.com/leadflow/leadflow/pkg/testinfra"
)

func TestConsoleCountsAndRecentRuns(t *testing.T) {
	ctx := context.Background()
	pool := testinfra.NewPool(t, testinfra.NewDatabase(t))
	if err := store.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	s := New(pool)
	now := time.Now()
	// lead_a: a finished run now; lead_b: a replay two hours ago; lead_c: dead-lettered.
	a, _ := events.NewReceived("lead_a", events.SourceWebhook, "k1", events.LeadReceived{})
	b, _ := events.NewReceived("lead_b", events.SourceReplay, "k2", events.LeadReceived{})
	b.ReplayID = "rp-1"
	b.OccurredAt = now.Add(-2 * time.Hour)
	c, _ := events.NewReceived("leadXc", events.SourceMake, "k3", events.LeadReceived{})
	for _, env := range []events.Envelope{a, b, c} {
		if err := StartRun(ctx, pool, env); err != nil {
			t.Fatal(err)
		}
	}
	res, _ := events.New(events.TypeResolved, &a, events.LeadResolved{})
	not, _ := events.New(events.TypeNotified, &a, events.LeadNotified{})
	failed := c
	failed.EventID = events.ID("dead_letter", "resolver__leads_received", c.EventID)
	for _, r := range []struct {
		env events.Envelope
		o   Outcome
	}{
		{res, Outcome{Stage: StageResolved, Outcome: "same_person"}},
		{not, Outcome{Stage: StageNotified, Outcome: "sent"}},
		{failed, Outcome{Stage: StageFailed, Outcome: "dead_letter", Error: "boom"}},
	} {
		if err := Record(ctx, pool, r.env, r.o); err != nil {
			t.Fatal(err)
		}
	}
	counts, err := s.CountStages(ctx, now.Add(-time.Hour), now.Add(-24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	hour, day := counts[0], counts[1]
	if hour.Received != 2 || hour.Resolved != 1 || hour.Notified != 1 || hour.Sent != 1 || hour.Failed != 1 || hour.Enriched != 0 {
		t.Fatalf("last hour = %+v", hour)
	}
	if day.Received != 3 {
		t.Fatalf("last day = %+v", day)
	}

	all, err := s.RecentRuns(ctx, RunFilter{})
	if err != nil || len(all) != 3 || all[2].LeadID != "lead_b" {
		t.Fatalf("all runs = %+v, %v", all, err)
	}
	for _, tc := range []struct {
		f    RunFilter
		want []string
	}{
		{RunFilter{Status: StageNotified}, []string{"lead_a"}},
		{RunFilter{Source: "replay"}, []string{"lead_b"}},
		{RunFilter{Since: now.Add(-time.Hour)}, []string{"lead_a", "leadXc"}},
		{RunFilter{Until: now.Add(-time.Hour)}, []string{"lead_b"}},
		{RunFilter{LeadPrefix: "lead_"}, []string{"lead_a", "lead_b"}}, // '_' is literal, not a wildcard
		{RunFilter{LeadPrefix: "leadX"}, []string{"leadXc"}},
		{RunFilter{Status: StageFailed, Source: "make"}, []string{"leadXc"}},
	} {
		got, err := s.RecentRuns(ctx, tc.f)
		if err != nil {
			t.Fatal(err)
		}
		ids := map[string]bool{}
		for _, r := range got {
			ids[r.LeadID] = true
		}
		if len(got) != len(tc.want) {
			t.Fatalf("%+v: got %+v, want %v", tc.f, got, tc.want)
		}
		for _, id := range tc.want {
			if !ids[id] {
				t.Fatalf("%+v: got %+v, want %v", tc.f, got, tc.want)
			}
		}
	}
	if got, _ := s.RecentRuns(ctx, RunFilter{Source: "replay"}); got[0].ReplayID != "rp-1" {
		t.Fatalf("replay id = %q", got[0].ReplayID)
	}
}
