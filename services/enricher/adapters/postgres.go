// Package adapters connects the enricher to Postgres (its trace step); the
// Work API, payloads and core.* are pkg/enrichment's.
package adapters

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/leadflow/leadflow/pkg/backbone/events"
	"github.com/leadflow/leadflow/pkg/logging"
	"github.com/leadflow/leadflow/pkg/store/runs"
	"github.com/leadflow/leadflow/services/enricher/app"
)

// Store records the enrichment step.
type Store struct {
	Pool *pgxpool.Pool
}

// SaveEnrichment implements app.Store.
func (s Store) SaveEnrichment(ctx context.Context, env events.Envelope, sum app.Summary) error {
	stage, outcome := runs.StageEnriched, "enriched"
	if sum.Unresolved {
		stage, outcome = runs.StageUnresolved, "no_work_api_data"
	}
	skipped := make([]map[string]string, 0, len(sum.Skipped))
	for _, sk := range sum.Skipped {
		skipped = append(skipped, map[string]string{"cpf": logging.CPF(sk.CPF), "role": string(sk.Role), "reason": sk.Reason})
	}
	return runs.Record(ctx, s.Pool, env, runs.Outcome{
		Stage:    stage,
		Outcome:  outcome,
		Detail:   map[string]any{"paid_calls": sum.Paid, "entities": sum.Entities, "skipped": skipped},
		CPFs:     &sum.CPFs,
		Entities: &sum.Entities,
	})
}
