// Package adapters connects the enricher to Postgres and the Work API.
package adapters

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/leadflow/leadflow/pkg/events"
	"github.com/leadflow/leadflow/pkg/logging"
	"github.com/leadflow/leadflow/pkg/runs"
	"github.com/leadflow/leadflow/services/enricher/app"
)

// Payloads keeps raw Work API payloads in pipeline.workapi_payloads.
type Payloads struct {
	Pool *pgxpool.Pool
}

// Fetch implements app.Payloads. The claim is a transaction-scoped advisory
// lock on the CPF held while paying, so enricher replicas serialise per CPF
// and the second one finds the payload the first stored.
func (p Payloads) Fetch(ctx context.Context, cpf string, reuse app.Reuse, pay func(context.Context) (json.RawMessage, error)) (json.RawMessage, bool, error) {
	if raw, ok, err := p.stored(ctx, p.Pool, cpf, reuse); err != nil || ok {
		return raw, false, err // fast path: no lock when a usable payload exists
	}
	var raw json.RawMessage
	paid := false
	err := pgx.BeginFunc(ctx, p.Pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('workapi:' || $1, 0))`, cpf); err != nil {
			return err
		}
		stored, ok, err := p.stored(ctx, tx, cpf, reuse)
		if err != nil {
			return err
		}
		if ok {
			raw = stored
			return nil
		}
		fresh, err := pay(ctx)
		if err != nil {
			return err
		}
		// Stored before the commit releases the claim; if the commit fails the
		// credits are spent but the next attempt pays again, never silently.
		if _, err := tx.Exec(ctx, `INSERT INTO pipeline.workapi_payloads (cpf, payload, fetched_at) VALUES ($1, $2, now())
			ON CONFLICT (cpf) DO UPDATE SET payload = EXCLUDED.payload, fetched_at = now(),
			fetch_count = pipeline.workapi_payloads.fetch_count + 1`, cpf, []byte(fresh)); err != nil {
			return err
		}
		raw, paid = fresh, true
		return nil
	})
	if err != nil {
		var pgErr interface{ SQLState() string }
		if errors.As(err, &pgErr) {
			return nil, false, runs.Classify("enricher.payloads", err)
		}
		return nil, false, err
	}
	return raw, paid, nil
}

func (p Payloads) stored(ctx context.Context, db runs.DB, cpf string, reuse app.Reuse) (json.RawMessage, bool, error) {
	if !reuse.Always && reuse.MaxAge <= 0 {
		return nil, false, nil
	}
	var raw []byte
	var fetchedAt time.Time
	err := db.QueryRow(ctx, `SELECT payload, fetched_at FROM pipeline.workapi_payloads WHERE cpf = $1`, cpf).Scan(&raw, &fetchedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, runs.Classify("enricher.payloads", err)
	}
	if !reuse.Always && time.Since(fetchedAt) >= reuse.MaxAge {
		return nil, false, nil
	}
	return raw, true, nil
}

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
