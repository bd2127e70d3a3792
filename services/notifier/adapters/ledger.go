// Package adapters connects the notifier to Postgres and C2S.
package adapters

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/leadflow/leadflow/pkg/backbone/events"
	"github.com/leadflow/leadflow/pkg/store/ledger"
	"github.com/leadflow/leadflow/pkg/store/runs"
	"github.com/leadflow/leadflow/services/notifier/app"
)

// Ledger is pipeline.notifications through pkg/store/ledger: a session
// advisory lock per lead on one connection, so two runs of the same lead
// never post concurrently (the lock dies with the connection if the process
// crashes), and a post recorded as started before it is sent: a new
// delivery is created already posting (ledger.Begin), in the round trip that
// takes the lock.
type Ledger struct {
	Pool *pgxpool.Pool
}

// Open implements app.Ledger.
func (l Ledger) Open(ctx context.Context, key ledger.Key, runID, messageHash string) (app.Delivery, error) {
	s, err := ledger.Begin(ctx, l.Pool, key, runID, messageHash)
	if err != nil {
		return nil, err
	}
	return session{s}, nil
}

type session struct{ s *ledger.Session }

func (d session) Entry() ledger.Entry { return d.s.Entry }
func (d session) Fresh() bool         { return d.s.Fresh }
func (d session) Posting(ctx context.Context, hash string) error {
	return d.s.Posting(ctx, hash)
}
func (d session) Uncertain(ctx context.Context, route string) error { return d.s.Uncertain(ctx, route) }
func (d session) Finish(ctx context.Context, status, route, reason string, step *app.Notified) (bool, error) {
	if step == nil {
		return false, d.s.Finish(ctx, status, route, reason)
	}
	return d.s.FinishWith(ctx, status, route, reason, func(b *pgx.Batch) {
		runs.QueueRecord(ctx, b, step.Env, notifiedOutcome(step.Out))
	})
}
func (d session) Close() { d.s.Close() }

// Store records the notification step.
type Store struct {
	Pool *pgxpool.Pool
}

// SaveNotification implements app.Store.
func (s Store) SaveNotification(ctx context.Context, env events.Envelope, n events.LeadNotified) error {
	return runs.Record(ctx, s.Pool, env, notifiedOutcome(n))
}

func notifiedOutcome(n events.LeadNotified) runs.Outcome {
	return runs.Outcome{
		Stage:   runs.StageNotified,
		Outcome: n.Status,
		Detail:  map[string]any{"route": n.Route, "message_hash": n.MessageHash, "reason": n.Reason},
	}
}

// SaveUncertain implements app.Store: the run ends uncertain in the trace,
// until an operator confirms or reposts (then it ends notified).
func (s Store) SaveUncertain(ctx context.Context, env events.Envelope, u app.Uncertain) error {
	step := env
	step.EventID = UncertainStepID(env.RunID)
	return runs.Record(ctx, s.Pool, step, runs.Outcome{
		Stage:   runs.StageUncertain,
		Outcome: "uncertain",
		Error:   u.Reason,
		Detail:  map[string]any{"route": u.Route, "message_hash": u.MessageHash},
	})
}

// UncertainStepID keys the uncertain trace step of a run.
func UncertainStepID(runID string) string { return events.ID("notify.uncertain", runID) }
