// Package adapters connects the enricher to Postgres: the lead's persons
// (core.*) and its trace step in one transaction; the Work API and payloads
// are pkg/enrichment's.
package adapters

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/leadflow/leadflow/pkg/backbone/events"
	"github.com/leadflow/leadflow/pkg/domain/person"
	"github.com/leadflow/leadflow/pkg/enrichment"
	"github.com/leadflow/leadflow/pkg/logging"
	"github.com/leadflow/leadflow/pkg/store/coredb"
	"github.com/leadflow/leadflow/pkg/store/pipeline"
	"github.com/leadflow/leadflow/pkg/store/runs"
	"github.com/leadflow/leadflow/services/enricher/app"
)

// Store writes the enrichment.
type Store struct {
	Pool *pgxpool.Pool
	// Writer writes the persons (coredb, with the income multiplier).
	Writer enrichment.BatchWriter
}

// SaveEnrichment implements app.Store: every person and the trace step in
// one transaction (one round trip, one commit).
func (s Store) SaveEnrichment(ctx context.Context, env events.Envelope, found []enrichment.Result, leadID string, sum app.Summary) error {
	stage, outcome := runs.StageEnriched, "enriched"
	if sum.Unresolved {
		stage, outcome = runs.StageUnresolved, "no_work_api_data"
	}
	skipped := make([]map[string]string, 0, len(sum.Skipped))
	for _, sk := range sum.Skipped {
		skipped = append(skipped, map[string]string{"cpf": logging.CPF(sk.CPF), "role": string(sk.Role), "reason": sk.Reason})
	}
	step := runs.Outcome{
		Stage:    stage,
		Outcome:  outcome,
		Detail:   map[string]any{"paid_calls": sum.Paid, "entities": sum.Entities, "skipped": skipped},
		CPFs:     &sum.CPFs,
		Entities: &sum.Entities,
	}
	if len(found) == 0 {
		return runs.Record(ctx, s.Pool, env, step)
	}
	if s.Writer == nil {
		return errors.New("enricher: no person writer")
	}
	ps := make([]*person.Person, len(found))
	fresh := make([]bool, len(found))
	var claim *pipeline.Claim
	for i, r := range found {
		// A payload bought just now is, almost always, a person core.*
		// does not hold yet.
		ps[i], fresh[i] = r.Person, r.Paid
		if r.Claim != nil {
			claim = r.Claim
		}
	}
	queue := func(b *pgx.Batch) { runs.QueueRecord(ctx, b, env, step) }
	on, canOn := s.Writer.(enrichment.OnWriter)
	if claim == nil || !canOn {
		if claim != nil {
			// Stored and released on its own first.
			if err := claim.Close(ctx); err != nil {
				return err
			}
		}
		ids, err := s.Writer.WritePersons(ctx, ps, fresh, leadID, queue)
		if err != nil {
			return err
		}
		for i := range found {
			found[i].EntityID = ids[i]
		}
		return nil
	}
	// The payload just paid for is stored with the persons, on its claim's
	// connection, and the claim released after the COMMIT: one round trip.
	ids, err := on.WritePersonsOn(ctx, claim.Conn(), ps, fresh, leadID,
		func(b *pgx.Batch) { claim.QueueStore(b); queue(b) }, claim.QueueRelease)
	switch {
	case err == nil:
		claim.Stored()
		claim.Released()
	case errors.Is(err, coredb.ErrAfterCommit):
		claim.Stored() // committed; Close releases the claim again
	default:
		return err // Close (the enricher's) stores the payload on its own
	}
	for i := range found {
		found[i].EntityID = ids[i]
	}
	return nil
}
