package pipeline

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/leadflow/leadflow/pkg/backbone/events"
	"github.com/leadflow/leadflow/pkg/backbone/failure"
	"github.com/leadflow/leadflow/pkg/store"
	"github.com/leadflow/leadflow/pkg/store/coredb"
	"github.com/leadflow/leadflow/pkg/store/runs"
)

// Identities looks identifiers up in the product's own records (core.*
// first, then earlier resolutions) and saves what a resolution learnt.
type Identities struct {
	Pool *pgxpool.Pool
}

var (
	knownPhoneSQL = knownSQL(coredb.SQLCPFByPhone, "phone")
	knownEmailSQL = knownSQL(coredb.SQLCPFByEmail, "email")
)

// knownSQL answers in one statement; core.* wins when both know the value.
func knownSQL(coreSQL, kind string) string {
	return "SELECT cpf FROM (SELECT cpf, 0 AS rank FROM (" + coreSQL + ") AS c(cpf)" +
		" UNION ALL SELECT cpf, 1 FROM pipeline.identity_resolutions WHERE kind = '" + kind + "' AND value = $1) AS known" +
		" ORDER BY rank LIMIT 1"
}

// KnownPhone returns the CPF the records hold for a normalised phone.
func (r Identities) KnownPhone(ctx context.Context, phone string) (string, bool, error) {
	return r.known(ctx, knownPhoneSQL, phone)
}

// KnownEmail returns the CPF the records hold for a normalised email.
func (r Identities) KnownEmail(ctx context.Context, email string) (string, bool, error) {
	return r.known(ctx, knownEmailSQL, email)
}

func (r Identities) known(ctx context.Context, sql, value string) (string, bool, error) {
	var cpf string
	err := r.Pool.QueryRow(ctx, sql, value).Scan(&cpf)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, store.Classify("identities.known", err)
	}
	return cpf, true, nil
}

// Learnt is an identifier an upstream directory answered.
type Learnt struct {
	Kind, Value, CPF, Source string
}

// SaveResolution writes, in one batch (one round trip, one implicit
// transaction), the identities learnt, the lead's last resolved contacts
// and the trace step.
func (r Identities) SaveResolution(ctx context.Context, env events.Envelope, learnt []Learnt, phone, email string, step runs.Outcome) error {
	b := &pgx.Batch{}
	for _, l := range learnt {
		b.Queue(`INSERT INTO pipeline.identity_resolutions (kind, value, cpf, source)
			VALUES ($1, $2, $3, $4) ON CONFLICT (kind, value) DO UPDATE SET cpf = EXCLUDED.cpf, resolved_at = now()`,
			l.Kind, l.Value, l.CPF, l.Source)
	}
	b.Queue(`INSERT INTO pipeline.lead_contacts (lead_id, phone, email) VALUES ($1, NULLIF($2, ''), NULLIF($3, ''))
		ON CONFLICT (lead_id) DO UPDATE SET phone = EXCLUDED.phone, email = EXCLUDED.email, updated_at = now()`,
		env.LeadID, phone, email)
	runs.QueueRecord(ctx, b, env, step)
	if payload, err := json.Marshal(env); err == nil {
		b.Queue(`INSERT INTO pipeline.run_outcomes (run_id, stage, event) VALUES ($1, 'resolution', $2) ON CONFLICT DO NOTHING`, env.RunID, payload)
	}
	return store.Classify("identities.save", r.Pool.SendBatch(ctx, b).Close())
}

// DecidedResolution returns the resolution event already decided for a
// run, if any.
func (r Identities) DecidedResolution(ctx context.Context, runID string) (events.Envelope, bool, error) {
	var raw []byte
	err := r.Pool.QueryRow(ctx, `SELECT event FROM pipeline.run_outcomes WHERE run_id = $1 AND stage = 'resolution'`, runID).Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return events.Envelope{}, false, nil
	}
	if err != nil {
		return events.Envelope{}, false, store.Classify("identities.decided", err)
	}
	var env events.Envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		return events.Envelope{}, false, failure.Permanent("identities.decided", err)
	}
	return env, true, nil
}
