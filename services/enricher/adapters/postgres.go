// Package adapters connects the enricher to Postgres and the Work API.
package adapters

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/leadflow/leadflow/pkg/backbone/events"
	"github.com/leadflow/leadflow/pkg/logging"
	"github.com/leadflow/leadflow/pkg/store"
	"github.com/leadflow/leadflow/pkg/store/runs"
	"github.com/leadflow/leadflow/services/enricher/app"
)

// Payloads keeps raw Work API payloads in pipeline.workapi_payloads.
type Payloads struct {
	Pool *pgxpool.Pool
	// paying bounds how many claims (each holding a connection for the
	// length of a paid call) exist at once, so callers waiting for the Work
	// API's pace cannot starve the pool; nil = unbounded.
	paying chan struct{}
}

// NewPayloads bounds concurrent paid calls to slots (the Work API's own
// concurrency cap; 0 = unbounded).
func NewPayloads(pool *pgxpool.Pool, slots int) Payloads {
	p := Payloads{Pool: pool}
	if slots > 0 {
		p.paying = make(chan struct{}, slots)
	}
	return p
}

// Fetch implements app.Payloads. The claim is a transaction-scoped advisory
// lock on the CPF held while paying, so enricher replicas serialise per CPF
// and the second one finds the payload the first stored.
func (p Payloads) Fetch(ctx context.Context, cpf string, reuse app.Reuse, pay func(context.Context) (json.RawMessage, error)) (json.RawMessage, bool, error) {
	if raw, ok, err := p.stored(ctx, p.Pool, cpf, reuse); err != nil || ok {
		return raw, false, err // fast path: no lock when a usable payload exists
	}
	if p.paying != nil {
		select {
		case p.paying <- struct{}{}:
			defer func() { <-p.paying }()
		case <-ctx.Done():
			return nil, false, ctx.Err()
		}
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
		// jsonb refuses NUL characters; a payload already paid for must
		// still be storable.
		fresh = bytes.ReplaceAll(fresh, []byte(`\u0000`), nil)
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
			return nil, false, store.Classify("enricher.payloads", err)
		}
		return nil, false, err
	}
	return raw, paid, nil
}

func (p Payloads) stored(ctx context.Context, db runs.DB, cpf string, reuse app.Reuse) (json.RawMessage, bool, error) {
	if !reuse.Always && reuse.MaxAge <= 0 {
		return nil, false, nil
	}
	// The age is measured by the database clock that wrote fetched_at, so a
	// skewed application clock cannot make a payload look fresh or stale.
	var raw []byte
	var fresh bool
	err := db.QueryRow(ctx, `SELECT payload, $2 OR fetched_at > now() - $3::bigint * interval '1 microsecond'
		FROM pipeline.workapi_payloads WHERE cpf = $1`, cpf, reuse.Always, reuse.MaxAge.Microseconds()).Scan(&raw, &fresh)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, store.Classify("enricher.payloads", err)
	}
	if !fresh {
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
