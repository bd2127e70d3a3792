package cli_test

import (
	"context"
	"strings"
	"testing"

	"github.com/leadflow/leadflow/cmd/leadflowctl/cli"
	"github.com/leadflow/leadflow/pkg/backbone/events"
	"github.com/leadflow/leadflow/pkg/store/runs"
	"github.com/leadflow/leadflow/pkg/testinfra/backbone"
)

// TestUncertainCommands drives `leadflowctl uncertain` on a real stream and
// database: list shows what waits for an operator, confirm resolves it once,
// and a delivery where nothing was posted cannot be confirmed.
func TestUncertainCommands(t *testing.T) {
	js, pool := backbone.Start(t)
	ctx := context.Background()
	env := map[string]string{"NATS_URL": js.Conn().ConnectedUrl(), "DATABASE_URL": pool.Config().ConnString()}
	rec, _ := events.NewReceived("LA", events.SourceWebhook, "k", events.LeadReceived{Action: "on_create_lead"})
	if err := runs.StartRun(ctx, pool, rec); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO pipeline.notifications (lead_id, run_key, stage, run_id, status, route, message_hash, attempts) VALUES
		('LA', $1, 'enriched', $1, 'uncertain', 'gateway', 'h', 1),
		('LP', 'rp', 'enriched', 'rp', 'pending', NULL, 'h', 0)`, rec.RunID); err != nil {
		t.Fatal(err)
	}
	out, _, code := run(env, "uncertain", "list")
	if code != 0 || !strings.Contains(out, "LA") || strings.Contains(out, "LP") || !strings.Contains(out, "1 delivery(ies) waiting") {
		t.Fatalf("list exit %d:\n%s", code, out)
	}
	if _, errOut, code := run(env, "uncertain", "confirm", "LP", "rp"); code != cli.ExitUsage || !strings.Contains(errOut, "nothing was posted") {
		t.Fatalf("confirm of a pending delivery: exit %d: %s", code, errOut)
	}
	if _, _, code := run(env, "uncertain", "confirm", "LA", "nope"); code != cli.ExitFailure {
		t.Fatalf("confirm of an unknown run: exit %d", code)
	}
	if out, _, code = run(env, "uncertain", "confirm", "LA", rec.RunID); code != 0 || !strings.Contains(out, "confirmed") {
		t.Fatalf("confirm exit %d: %s", code, out)
	}
	if out, _, code = run(env, "uncertain", "confirm", "LA", rec.RunID); code != 0 || !strings.Contains(out, "already sent") {
		t.Fatalf("second confirm exit %d: %s", code, out)
	}
	var status string
	_ = pool.QueryRow(ctx, `SELECT status FROM pipeline.lead_runs WHERE run_id = $1`, rec.RunID).Scan(&status)
	if status != runs.StageNotified {
		t.Fatalf("run = %q after confirm", status)
	}
	if out, _, code = run(env, "uncertain", "list", "--json"); code != 0 || strings.TrimSpace(out) != "[]" {
		t.Fatalf("list after confirm exit %d: %s", code, out)
	}
}
