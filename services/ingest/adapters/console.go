package adapters

import (
	"context"

	"github.com/leadflow/leadflow/pkg/ops"
	"github.com/leadflow/leadflow/services/ingest/ports/console"
)

// ConsoleUncertain gives the console the operator's uncertain-delivery
// commands of pkg/ops, the same ones the CLI and the admin API run.
type ConsoleUncertain struct {
	Ops *ops.Ops
}

// ListUncertain implements console.Uncertain.
func (u ConsoleUncertain) ListUncertain(ctx context.Context) ([]console.UncertainDelivery, error) {
	entries, err := u.Ops.UncertainList(ctx, "")
	if err != nil {
		return nil, err
	}
	out := make([]console.UncertainDelivery, 0, len(entries))
	for _, e := range entries {
		out = append(out, console.UncertainDelivery{LeadID: e.LeadID, RunID: e.RunID, Stage: e.Stage, Status: e.Status,
			Route: e.Route, Attempts: e.Attempts, Reason: e.Reason, CreatedAt: e.CreatedAt, UpdatedAt: e.UpdatedAt})
	}
	return out, nil
}

// ConfirmDelivery implements console.Uncertain.
func (u ConsoleUncertain) ConfirmDelivery(ctx context.Context, leadID, runID string) (string, error) {
	r, err := u.Ops.UncertainConfirm(ctx, leadID, runID)
	if err != nil {
		return "", err
	}
	return r.Status, nil
}

// RepostDelivery implements console.Uncertain.
func (u ConsoleUncertain) RepostDelivery(ctx context.Context, leadID, runID string) (string, error) {
	r, err := u.Ops.UncertainRepost(ctx, leadID, runID, 0)
	if err != nil {
		return "", err
	}
	return r.Status, nil
}
