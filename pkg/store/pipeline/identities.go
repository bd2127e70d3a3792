package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/leadflow/leadflow/pkg/backbone/events"
	"github.com/leadflow/leadflow/pkg/backbone/failure"
	"github.com/leadflow/leadflow/pkg/store"
	"github.com/leadflow/leadflow/pkg/store/coredb"
	"github.com/leadflow/leadflow/pkg/store/runs"
)

// Identities looks identifiers up in the product's own records (core.*
// first, then earlier resolutions) and saves what a resolution learnt.
type Identities struct {
	Pool store.Batcher // a pool, or a transaction (WarmResolution)
	// Group, when set, sends the look-ups and resolutions of leads resolved
	// at the same time together: one round trip, one transaction (group
	// commit). nil sends each on its own.
	Group *store.Group
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

// KnownBoth answers KnownPhone and KnownEmail in one statement (one round
// trip, one implicit read-only transaction; with a Group, shared with the
// statements of the resolutions running at the same time).
func (r Identities) KnownBoth(ctx context.Context, phone, email string) (phoneCPF string, phoneFound bool, emailCPF string, emailFound bool, err error) {
	var p, e *string
	if r.Group != nil {
		b := &pgx.Batch{}
		b.Queue(knownBothSQL, phone, email).QueryRow(func(row pgx.Row) error { return row.Scan(&p, &e) })
		err = r.Group.Send(ctx, "", b)
	} else {
		err = r.Pool.QueryRow(ctx, knownBothSQL, phone, email).Scan(&p, &e)
	}
	if err != nil {
		return "", false, "", false, store.Classify("identities.known", err)
	}
	if p != nil {
		phoneCPF, phoneFound = *p, true
	}
	if e != nil {
		emailCPF, emailFound = *e, true
	}
	return phoneCPF, phoneFound, emailCPF, emailFound, nil
}

// knownBothSQL is both lookups as scalar subqueries: the phone's with $1,
// the email's with $2 (NULL when unknown).
var knownBothSQL = "SELECT (" + knownPhoneSQL + "), (" + strings.ReplaceAll(knownEmailSQL, "$1", "$2") + ")"

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
// and the decided outcome (one statement), then the trace step. With a
// Group the batch shares its round trip and commit with the resolutions
// saved at the same time; it returns once committed either way.
func (r Identities) SaveResolution(ctx context.Context, env events.Envelope, learnt []Learnt, phone, email string, step runs.Outcome) error {
	kinds, values, cpfs, sources := make([]string, 0, len(learnt)), make([]string, 0, len(learnt)), make([]string, 0, len(learnt)), make([]string, 0, len(learnt))
	for _, l := range learnt {
		kinds, values, cpfs, sources = append(kinds, l.Kind), append(values, l.Value), append(cpfs, l.CPF), append(sources, l.Source)
	}
	var decided []byte // NULL when the event cannot be encoded: no outcome is kept
	if payload, err := events.Marshal(env); err == nil {
		decided = payload
	}
	b := &pgx.Batch{}
	b.Queue(saveResolutionSQL, kinds, values, cpfs, sources, env.LeadID, phone, email, env.RunID, decided)
	runs.QueueRecord(ctx, b, env, step)
	if r.Group != nil {
		return store.Classify("identities.save", r.Group.Send(ctx, env.LeadID+"\x00"+env.RunID, b))
	}
	return store.Classify("identities.save", r.Pool.SendBatch(ctx, b).Close())
}

// saveResolutionSQL: the three writes are independent, so they share one
// statement. A lead learns at most one value per kind, so no row is hit
// twice by the upsert.
const saveResolutionSQL = `WITH learnt AS (
	INSERT INTO pipeline.identity_resolutions (kind, value, cpf, source)
	SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
	ON CONFLICT (kind, value) DO UPDATE SET cpf = EXCLUDED.cpf, resolved_at = now()
), contacts AS (
	INSERT INTO pipeline.lead_contacts (lead_id, phone, email) VALUES ($5, NULLIF($6, ''), NULLIF($7, ''))
	ON CONFLICT (lead_id) DO UPDATE SET phone = EXCLUDED.phone, email = EXCLUDED.email, updated_at = now()
)
INSERT INTO pipeline.run_outcomes (run_id, stage, event)
SELECT $8, 'resolution', $9::jsonb WHERE $9::jsonb IS NOT NULL
ON CONFLICT DO NOTHING`

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
