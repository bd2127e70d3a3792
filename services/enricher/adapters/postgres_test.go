package adapters

import (
	"context"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/leadflow/leadflow/pkg/backbone/events"
	"github.com/leadflow/leadflow/pkg/domain/person"
	"github.com/leadflow/leadflow/pkg/enrichment"
	"github.com/leadflow/leadflow/services/enricher/app"
)

type recordingWriter struct {
	fresh  []bool
	queued int
}

func (w *recordingWriter) WritePersons(_ context.Context, ps []*person.Person, fresh []bool, _ string, queue func(*pgx.Batch)) ([]string, error) {
	w.fresh = slices.Clone(fresh)
	b := &pgx.Batch{}
	queue(b)
	w.queued = b.Len()
	ids := make([]string, len(ps))
	for i := range ids {
		ids[i] = "entity"
	}
	return ids, nil
}

// A person whose payload was paid for just now is written as fresh (the
// writer's insert-only path); a reused payload's person is merged. The
// trace step goes into the same transaction.
func TestSaveEnrichmentMarksPaidPersonsFresh(t *testing.T) {
	w := &recordingWriter{}
	s := Store{Writer: w}
	received, err := events.NewReceived("lead-1", events.SourceWebhook, "run", events.LeadReceived{})
	if err != nil {
		t.Fatal(err)
	}
	env, err := events.New(events.TypeEnriched, &received, nil)
	if err != nil {
		t.Fatal(err)
	}
	found := []enrichment.Result{{Person: &person.Person{}, Paid: true}, {Person: &person.Person{}, Paid: false}}
	if err := s.SaveEnrichment(context.Background(), env, found, "lead-1", app.Summary{CPFs: 2, Entities: 2, Paid: 1}); err != nil {
		t.Fatal(err)
	}
	if want := []bool{true, false}; !slices.Equal(w.fresh, want) {
		t.Errorf("fresh = %v, want %v", w.fresh, want)
	}
	if w.queued != 1 {
		t.Errorf("%d statements queued with the persons, want the trace step", w.queued)
	}
	if found[0].EntityID != "entity" || found[1].EntityID != "entity" {
		t.Errorf("entity ids not set: %+v", found)
	}
}
