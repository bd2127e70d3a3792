package runs

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/leadflow/leadflow/pkg/backbone/events"
	"github.com/leadflow/leadflow/pkg/backbone/failure"
	"github.com/leadflow/leadflow/pkg/store"
	"github.com/leadflow/leadflow/pkg/testinfra"
)

func TestRecordIsIdempotentAndBuildsTheTrace(t *testing.T) {
	ctx := context.Background()
	pool := testinfra.NewPool(t, testinfra.NewDatabase(t))
	if err := store.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	s := New(pool)
	if _, err := s.Trace(ctx, "lead1"); !failure.Is(err, failure.KindNotFound) {
		t.Fatalf("unknown lead: %v", err)
	}
	rec, _ := events.NewReceived("lead1", events.SourceWebhook, "k", events.LeadReceived{Action: "on_create_lead"})
	if err := StartRun(ctx, pool, rec); err != nil {
		t.Fatal(err)
	}
	res, _ := events.New(events.TypeResolved, &rec, events.LeadResolved{})
	two, one := 2, 1
	for i := 0; i < 2; i++ { // redelivery
		if err := Record(ctx, pool, res, Outcome{Stage: StageResolved, Outcome: "same_person",
			Detail: map[string]any{"persons": []map[string]string{{"cpf": "*********07", "role": "both"}}}}); err != nil {
			t.Fatal(err)
		}
	}
	enr, _ := events.New(events.TypeEnriched, &rec, events.LeadEnriched{})
	if err := Record(ctx, pool, enr, Outcome{Stage: StageEnriched, Outcome: "ok", CPFs: &two, Entities: &one}); err != nil {
		t.Fatal(err)
	}
	not, _ := events.New(events.TypeNotified, &rec, events.LeadNotified{})
	if err := Record(ctx, pool, not, Outcome{Stage: StageNotified, Outcome: "sent", Detail: map[string]any{"route": "gateway"}}); err != nil {
		t.Fatal(err)
	}
	// A late redelivery of an earlier stage must not move the run back.
	if err := Record(ctx, pool, enr, Outcome{Stage: StageEnriched, Outcome: "ok", CPFs: &two, Entities: &one}); err != nil {
		t.Fatal(err)
	}
	tr, err := s.Trace(ctx, "lead1")
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.Runs) != 1 || len(tr.Steps) != 4 {
		t.Fatalf("trace = %+v", tr)
	}
	if tr.Status != StageNotified || tr.Message == nil || tr.Message.Status != "sent" || tr.Message.Route != "gateway" ||
		!strings.Contains(string(tr.Persons), `"*********07"`) {
		t.Fatalf("summary = %s %+v %s", tr.Status, tr.Message, tr.Persons)
	}
	run := tr.Runs[0]
	if run.Status != StageNotified || run.CPFsProcessed != 2 || run.EntitiesStored != 1 || run.FinishedAt == nil {
		t.Fatalf("run = %+v", run)
	}
	latest, err := LatestLiveRun(ctx, pool, "lead1", time.Now().Add(-time.Minute))
	if err != nil || latest == nil || latest.RunID != rec.RunID {
		t.Fatalf("latest = %+v, %v", latest, err)
	}
	if old, _ := LatestLiveRun(ctx, pool, "lead1", time.Now().Add(time.Minute)); old != nil {
		t.Fatal("a finished run outside the window must not count")
	}
}

// TestARunEndsOnce: once notified, a run records no other end (a late dead
// letter of a redelivery, say); once uncertain, only notified (an operator's
// confirm or repost); a failed run may still finish (a requeue).
func TestARunEndsOnce(t *testing.T) {
	ctx := context.Background()
	pool := testinfra.NewPool(t, testinfra.NewDatabase(t))
	if err := store.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	s := New(pool)
	step := func(rec events.Envelope, stage, outcome string) {
		t.Helper()
		env := rec
		env.EventID = events.ID(stage, outcome, rec.RunID)
		if err := Record(ctx, pool, env, Outcome{Stage: stage, Outcome: outcome}); err != nil {
			t.Fatal(err)
		}
	}
	ends := func(lead string) (status string, stages []string) {
		t.Helper()
		tr, err := s.Trace(ctx, lead)
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range tr.Steps {
			if Final(st.Stage) {
				stages = append(stages, st.Stage)
			}
		}
		return tr.Status, stages
	}
	for _, tc := range []struct {
		lead   string
		steps  []string // stage:outcome
		status string
		ends   string
	}{
		{"notified-then-dead-letter", []string{"notified:sent", "failed:dead_letter", "unresolved:nobody"}, StageNotified, "notified"},
		{"uncertain-then-dead-letter", []string{"uncertain:uncertain", "failed:dead_letter"}, StageUncertain, "uncertain"},
		{"uncertain-then-confirmed", []string{"uncertain:uncertain", "notified:already_sent", "failed:dead_letter"}, StageNotified, "uncertain,notified"},
		{"failed-then-requeued", []string{"failed:dead_letter", "notified:sent"}, StageNotified, "failed,notified"},
		{"unresolved-then-notice", []string{"unresolved:nobody", "notified:sent"}, StageNotified, "unresolved,notified"},
	} {
		t.Run(tc.lead, func(t *testing.T) {
			rec, _ := events.NewReceived(tc.lead, events.SourceWebhook, "k", events.LeadReceived{Action: "on_create_lead"})
			if err := StartRun(ctx, pool, rec); err != nil {
				t.Fatal(err)
			}
			for _, so := range tc.steps {
				stage, outcome, _ := strings.Cut(so, ":")
				step(rec, stage, outcome)
			}
			status, stages := ends(tc.lead)
			if status != tc.status || strings.Join(stages, ",") != tc.ends {
				t.Fatalf("status %q, ends %v; want %q, %s", status, stages, tc.status, tc.ends)
			}
		})
	}
}
