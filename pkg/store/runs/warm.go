package runs

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/leadflow/leadflow/pkg/backbone/events"
	"github.com/leadflow/leadflow/pkg/store"
)

// WarmEnvelope is the event of the warm-up run: lead store.WarmLead, never
// kept (see store.Warmup).
func WarmEnvelope() events.Envelope {
	env, err := events.NewReceived(store.WarmLead, events.SourceWebhook, "warm-up", events.LeadReceived{Action: "warm-up"})
	if err != nil {
		panic(err) // a constant event: cannot fail
	}
	return env
}

// WarmRecord is the trace step's store.Warmer: every stage records one.
func WarmRecord(ctx context.Context, tx pgx.Tx) error {
	n := 0
	return Record(ctx, tx, WarmEnvelope(), Outcome{Stage: StageResolved, Outcome: "warm-up",
		Detail: map[string]any{"warm_up": true}, CPFs: &n, Entities: &n})
}
