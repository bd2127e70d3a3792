// Package runs keeps the pipeline's own record of each lead: runs (one pass
// through the stages), stage outcomes (the trace) and replays. Every write is
// keyed by an event id, so redeliveries and replays never add rows twice.
// Nothing personal is stored here: CPFs in details are masked.
package runs

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/leadflow/leadflow/pkg/backbone/events"
	"github.com/leadflow/leadflow/pkg/backbone/failure"
	"github.com/leadflow/leadflow/pkg/backbone/messaging"
	"github.com/leadflow/leadflow/pkg/jsonx"
	"github.com/leadflow/leadflow/pkg/store"
)

// Stages and run statuses.
const (
	StageReceived   = "received"
	StageResolved   = "resolved"
	StageUnresolved = "unresolved"
	StageEnriched   = "enriched"
	StageNotified   = "notified"
	StageFailed     = "failed"
	// StageUncertain: the message may be on the lead and nobody can check;
	// the run waits for an operator, whose confirm or repost ends it as
	// notified.
	StageUncertain = "uncertain"
)

// Final reports whether a run status ends the run.
func Final(status string) bool {
	switch status {
	case StageNotified, StageUnresolved, StageFailed, StageUncertain:
		return true
	}
	return false
}

// DB is what the store needs: a pool or a transaction.
type DB = store.DB

// Store reads and writes pipeline.lead_runs and pipeline.lead_stages.
type Store struct {
	pool *pgxpool.Pool
}

// New returns a store on pool.
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// StartRun records the start of env's run; a repeat is a no-op. The run
// row is also the run's first trace step ("received", read through
// pipeline.lead_steps): it keeps when the lead was received and ctx's trace
// id, so ingest writes no trace row of its own.
func StartRun(ctx context.Context, db DB, env events.Envelope) error {
	_, err := db.Exec(ctx, startRunSQL, startRunArgs(env, messaging.TraceID(ctx))...)
	return dbErr("runs.start", err)
}

// QueueStartRun adds StartRun to a batch, for callers that save a round trip
// by sending it with their own statements.
func QueueStartRun(ctx context.Context, b *pgx.Batch, env events.Envelope) {
	b.Queue(startRunSQL, startRunArgs(env, messaging.TraceID(ctx))...)
}

// A stage may record its outcome before ingest has written the run start (ingest
// publishes first): the run then exists without received_at, and the start
// adds it without touching the run's status. A repeat changes nothing.
const startRunSQL = `INSERT INTO pipeline.lead_runs AS r (run_id, lead_id, source, replay_id, started_at, received_at, trace_id)
	VALUES ($1, $2, $3, NULLIF($4, ''), $5, $5, NULLIF($6, ''))
	ON CONFLICT (run_id) DO UPDATE SET received_at = EXCLUDED.received_at, trace_id = EXCLUDED.trace_id
	WHERE r.received_at IS NULL`

func startRunArgs(env events.Envelope, traceID string) []any {
	return []any{env.RunID, env.LeadID, string(env.Source), env.ReplayID, env.OccurredAt, traceID}
}

// Outcome is one stage's result for the trace.
type Outcome struct {
	Stage   string
	Outcome string
	Detail  map[string]any // no personal data: mask before putting it here
	Error   string
	// Counts, when set, update the run's totals (enricher).
	CPFs, Entities *int
	// TraceID is the W3C trace id of the stage (default: the context's).
	TraceID string
}

// Record writes the stage outcome of env and moves the run's status. The
// event id keys the row, so recording twice changes nothing. The step keeps
// ctx's trace id unless o has one.
func Record(ctx context.Context, db DB, env events.Envelope, o Outcome) error {
	_, err := db.Exec(ctx, recordSQL, recordArgs(env, o.traced(ctx))...)
	return dbErr("runs.record", err)
}

// QueueRecord adds Record to a batch, so a stage can write its own rows and
// its trace step in one round trip (and one transaction).
func QueueRecord(ctx context.Context, b *pgx.Batch, env events.Envelope, o Outcome) {
	b.Queue(recordSQL, recordArgs(env, o.traced(ctx))...)
}

// traced puts the trace id (o's, else ctx's) into the step's detail, where
// GET /api/v1/leads/{id} shows it per stage.
func (o Outcome) traced(ctx context.Context) Outcome {
	id := o.TraceID
	if id == "" {
		id = messaging.TraceID(ctx)
	}
	if id == "" {
		return o
	}
	d := make(map[string]any, len(o.Detail)+1)
	for k, v := range o.Detail {
		d[k] = v
	}
	d["trace_id"] = id
	o.Detail = d
	return o
}

// The run moves only when the stage row is new: a redelivered earlier stage
// must not move a finished run back. A run ends in exactly one outcome: once
// notified, no other end (a late dead letter, an unresolved) is recorded for
// it; once uncertain, only notified (an operator's confirm or repost) is.
// Failed and unresolved runs may still end otherwise (a requeue, the
// unresolved notice).
const recordSQL = `WITH cur AS (
		SELECT status FROM pipeline.lead_runs WHERE run_id = $2
	), stage AS (
		INSERT INTO pipeline.lead_stages (event_id, run_id, lead_id, stage, outcome, detail, error)
		SELECT $1, $2, $3, $4, $5, $6, NULLIF($7, '')
		WHERE NOT ($12 AND EXISTS (SELECT 1 FROM cur WHERE cur.status = 'notified'
			OR (cur.status = 'uncertain' AND $4 <> 'notified')))
		ON CONFLICT (event_id) DO NOTHING
		RETURNING 1
	)
	INSERT INTO pipeline.lead_runs AS r (run_id, lead_id, source, replay_id, status, error, cpfs_processed, entities_stored, finished_at)
	SELECT $2, $3, $8, NULLIF($9, ''), $4, NULLIF($7, ''), COALESCE($10, 0), COALESCE($11, 0), CASE WHEN $12 THEN now() END
	WHERE EXISTS (SELECT 1 FROM stage)
	ON CONFLICT (run_id) DO UPDATE SET
		status = EXCLUDED.status,
		error = COALESCE(EXCLUDED.error, r.error),
		cpfs_processed = COALESCE($10, r.cpfs_processed),
		entities_stored = COALESCE($11, r.entities_stored),
		updated_at = now(),
		finished_at = EXCLUDED.finished_at`

func recordArgs(env events.Envelope, o Outcome) []any {
	detail, err := jsonx.Marshal(o.Detail)
	if err != nil || o.Detail == nil {
		detail = []byte("{}")
	}
	return []any{env.EventID, env.RunID, env.LeadID, o.Stage, o.Outcome, detail, o.Error,
		string(env.Source), env.ReplayID, o.CPFs, o.Entities, Final(o.Stage)}
}

// Run is one pass of a lead.
type Run struct {
	RunID          string     `json:"run_id"`
	Source         string     `json:"source"`
	ReplayID       string     `json:"replay_id,omitempty"`
	Status         string     `json:"status"`
	CPFsProcessed  int        `json:"cpfs_processed"`
	EntitiesStored int        `json:"entities_stored"`
	Error          string     `json:"error,omitempty"`
	StartedAt      time.Time  `json:"started_at"`
	FinishedAt     *time.Time `json:"finished_at,omitempty"`
}

// GetRun returns one run, or failure.NotFound.
func (s *Store) GetRun(ctx context.Context, runID string) (*Run, error) {
	var r Run
	var replay, errText *string
	err := s.pool.QueryRow(ctx, `SELECT run_id, source, replay_id, status, cpfs_processed, entities_stored, error, started_at, finished_at
		FROM pipeline.lead_runs WHERE run_id = $1`, runID).
		Scan(&r.RunID, &r.Source, &replay, &r.Status, &r.CPFsProcessed, &r.EntitiesStored, &errText, &r.StartedAt, &r.FinishedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, failure.NotFound("runs.get")
	}
	if err != nil {
		return nil, dbErr("runs.get", err)
	}
	r.ReplayID, r.Error = deref(replay), deref(errText)
	return &r, nil
}

// LatestLiveRun returns the newest non-replay run of a lead that is in flight
// (unfinished and started within the last hour, so a run lost to the
// dead-letter subject does not block the lead forever) or that started or
// finished after since; nil when there is none.
func LatestLiveRun(ctx context.Context, db DB, leadID string, since time.Time) (*Run, error) {
	var r Run
	err := db.QueryRow(ctx, `SELECT run_id, source, status, started_at, finished_at FROM pipeline.lead_runs
		WHERE lead_id = $1 AND replay_id IS NULL
		  AND (started_at >= $2 OR finished_at >= $2 OR (finished_at IS NULL AND started_at >= now() - interval '1 hour'))
		ORDER BY started_at DESC LIMIT 1`, leadID, since).Scan(&r.RunID, &r.Source, &r.Status, &r.StartedAt, &r.FinishedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, dbErr("runs.latest", err)
	}
	return &r, nil
}

// Step is one row of the trace.
type Step struct {
	RunID   string          `json:"run_id"`
	Stage   string          `json:"stage"`
	Outcome string          `json:"outcome"`
	Detail  json.RawMessage `json:"detail,omitempty"`
	Error   string          `json:"error,omitempty"`
	At      time.Time       `json:"at"`
}

// Trace is what the product knows of a lead: a summary of the latest run,
// every run (replays carry their replay id) and every stage step.
type Trace struct {
	LeadID  string          `json:"lead_id"`
	Status  string          `json:"status"`            // the latest run's status
	Persons json.RawMessage `json:"persons,omitempty"` // the latest resolution's persons, CPFs masked
	Message *MessageStatus  `json:"message,omitempty"` // the latest notification
	Runs    []Run           `json:"runs"`
	Steps   []Step          `json:"steps"`
}

// MessageStatus is the latest notification outcome of a lead.
type MessageStatus struct {
	Status string    `json:"status"` // sent | already_sent | skipped | uncertain
	Route  string    `json:"route,omitempty"`
	At     time.Time `json:"at"`
}

// Trace returns the lead's runs (newest first) and stage steps (in order),
// or failure.NotFound when the product never saw the lead.
func (s *Store) Trace(ctx context.Context, leadID string) (*Trace, error) {
	t := &Trace{LeadID: leadID}
	rows, err := s.pool.Query(ctx, `SELECT run_id, source, COALESCE(replay_id, ''), status, cpfs_processed, entities_stored,
		COALESCE(error, ''), started_at, finished_at FROM pipeline.lead_runs WHERE lead_id = $1 ORDER BY started_at DESC`, leadID)
	if err != nil {
		return nil, dbErr("runs.trace", err)
	}
	for rows.Next() {
		var r Run
		if err := rows.Scan(&r.RunID, &r.Source, &r.ReplayID, &r.Status, &r.CPFsProcessed, &r.EntitiesStored, &r.Error, &r.StartedAt, &r.FinishedAt); err != nil {
			rows.Close()
			return nil, dbErr("runs.trace", err)
		}
		t.Runs = append(t.Runs, r)
	}
	rows.Close()
	rows, err = s.pool.Query(ctx, `SELECT run_id, stage, outcome, detail, COALESCE(error, ''), at
		FROM pipeline.lead_steps WHERE lead_id = $1 ORDER BY at, stage`, leadID)
	if err != nil {
		return nil, dbErr("runs.trace", err)
	}
	defer rows.Close()
	for rows.Next() {
		var st Step
		if err := rows.Scan(&st.RunID, &st.Stage, &st.Outcome, &st.Detail, &st.Error, &st.At); err != nil {
			return nil, dbErr("runs.trace", err)
		}
		t.Steps = append(t.Steps, st)
	}
	if err := rows.Err(); err != nil {
		return nil, dbErr("runs.trace", err)
	}
	if len(t.Runs) == 0 && len(t.Steps) == 0 {
		return nil, failure.NotFound("runs.trace")
	}
	t.summarize()
	return t, nil
}

// summarize fills the summary from the latest run and steps.
func (t *Trace) summarize() {
	if len(t.Runs) > 0 {
		t.Status = t.Runs[0].Status
	}
	for _, st := range t.Steps { // oldest first: the last match wins
		var d struct {
			Persons json.RawMessage `json:"persons"`
			Route   string          `json:"route"`
		}
		_ = json.Unmarshal(st.Detail, &d)
		switch st.Stage {
		case StageResolved:
			t.Persons = d.Persons
		case StageNotified, StageUncertain:
			t.Message = &MessageStatus{Status: st.Outcome, Route: d.Route, At: st.At}
		}
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// dbErr classifies database errors once: data errors (class 22, 23) are
// permanent, everything else (connection loss, deadlocks) transient.
func dbErr(op string, err error) error {
	if err == nil {
		return nil
	}
	return store.Classify(op, err)
}
