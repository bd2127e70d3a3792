// Package adapters connects the resolver's use case to Postgres, Diretrix
// and C2S.
package adapters

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/leadflow/leadflow/pkg/coredb"
	"github.com/leadflow/leadflow/pkg/events"
	"github.com/leadflow/leadflow/pkg/logging"
	"github.com/leadflow/leadflow/pkg/runs"
	"github.com/leadflow/leadflow/services/resolver/app"
)

// Records looks identifiers up in core.* first, then in the product's
// earlier resolutions.
type Records struct {
	Pool *pgxpool.Pool
	Core *coredb.Reader
}

// KnownPhone implements app.Records.
func (r Records) KnownPhone(ctx context.Context, phone string) (string, bool, error) {
	return r.known(ctx, "phone", phone, r.Core.CPFByPhone)
}

// KnownEmail implements app.Records.
func (r Records) KnownEmail(ctx context.Context, email string) (string, bool, error) {
	return r.known(ctx, "email", email, r.Core.CPFByEmail)
}

func (r Records) known(ctx context.Context, kind, value string, core func(context.Context, string) (string, bool, error)) (string, bool, error) {
	cpf, found, err := core(ctx, value)
	if err != nil || found {
		return cpf, found, classify(err)
	}
	err = r.Pool.QueryRow(ctx, `SELECT cpf FROM pipeline.identity_resolutions WHERE kind = $1 AND value = $2`, kind, value).Scan(&cpf)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, classify(err)
	}
	return cpf, true, nil
}

// Store writes a resolution in one transaction.
type Store struct {
	Pool *pgxpool.Pool
}

// SaveResolution implements app.Store: identities Diretrix taught us, the
// lead's last resolved contacts, and the trace step, in one batch (one round
// trip, one implicit transaction).
func (s Store) SaveResolution(ctx context.Context, env events.Envelope, r app.Resolution) error {
	b := &pgx.Batch{}
	for _, l := range []struct {
		kind string
		app.Lookup
	}{{"phone", r.Phone}, {"email", r.Email}} {
		if l.Source != app.SourceDiretrix {
			continue
		}
		b.Queue(`INSERT INTO pipeline.identity_resolutions (kind, value, cpf, source)
			VALUES ($1, $2, $3, $4) ON CONFLICT (kind, value) DO UPDATE SET cpf = EXCLUDED.cpf, resolved_at = now()`,
			l.kind, l.Value, l.CPF, l.Source)
	}
	b.Queue(`INSERT INTO pipeline.lead_contacts (lead_id, phone, email) VALUES ($1, NULLIF($2, ''), NULLIF($3, ''))
		ON CONFLICT (lead_id) DO UPDATE SET phone = EXCLUDED.phone, email = EXCLUDED.email, updated_at = now()`,
		env.LeadID, r.Phone.Value, r.Email.Value)
	stage := runs.StageResolved
	if len(r.Persons) == 0 {
		stage = runs.StageUnresolved
	}
	runs.QueueRecord(b, env, runs.Outcome{Stage: stage, Outcome: r.Outcome, Error: r.Reason, Detail: detail(r)})
	return classify(s.Pool.SendBatch(ctx, b).Close())
}

// detail is the trace's view: states and sources, CPFs masked.
func detail(r app.Resolution) map[string]any {
	persons := make([]map[string]string, 0, len(r.Persons))
	for _, p := range r.Persons {
		persons = append(persons, map[string]string{"cpf": logging.CPF(p.CPF), "role": string(p.Role),
			"phone_source": p.PhoneSource, "email_source": p.EmailSource})
	}
	return map[string]any{
		"phone":   map[string]string{"state": r.Phone.State, "source": r.Phone.Source},
		"email":   map[string]string{"state": r.Email.State, "source": r.Email.Source},
		"persons": persons,
	}
}

func classify(err error) error {
	if err == nil {
		return nil
	}
	return runs.Classify("resolver.db", err)
}
