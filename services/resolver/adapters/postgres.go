// Package adapters connects the resolver's use case to Postgres, Diretrix
// and C2S.
package adapters

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/leadflow/leadflow/pkg/backbone/events"
	"github.com/leadflow/leadflow/pkg/logging"
	"github.com/leadflow/leadflow/pkg/store"
	"github.com/leadflow/leadflow/pkg/store/coredb"
	"github.com/leadflow/leadflow/pkg/store/runs"
	"github.com/leadflow/leadflow/services/resolver/app"
)

// Records looks identifiers up in core.* first, then in the product's
// earlier resolutions, in one statement (core.* wins when both know it).
type Records struct {
	Pool *pgxpool.Pool
}

var (
	knownPhoneSQL = knownSQL(coredb.SQLCPFByPhone, "phone")
	knownEmailSQL = knownSQL(coredb.SQLCPFByEmail, "email")
)

func knownSQL(core, kind string) string {
	return "SELECT cpf FROM (SELECT cpf, 0 AS rank FROM (" + core + ") AS c(cpf)" +
		" UNION ALL SELECT cpf, 1 FROM pipeline.identity_resolutions WHERE kind = '" + kind + "' AND value = $1) AS known" +
		" ORDER BY rank LIMIT 1"
}

// KnownPhone implements app.Records.
func (r Records) KnownPhone(ctx context.Context, phone string) (string, bool, error) {
	return r.known(ctx, knownPhoneSQL, phone)
}

// KnownEmail implements app.Records.
func (r Records) KnownEmail(ctx context.Context, email string) (string, bool, error) {
	return r.known(ctx, knownEmailSQL, email)
}

func (r Records) known(ctx context.Context, sql, value string) (string, bool, error) {
	var cpf string
	err := r.Pool.QueryRow(ctx, sql, value).Scan(&cpf)
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
	return store.Classify("resolver.db", err)
}
