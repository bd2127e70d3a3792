package ops_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/leadflow/leadflow/cmd/leadflowctl/cli"
	"github.com/leadflow/leadflow/pkg/backbone/events"
	"github.com/leadflow/leadflow/pkg/ops"
	"github.com/leadflow/leadflow/pkg/sim"
)

// ctl runs leadflowctl in-process against the stack.
func ctl(t *testing.T, env map[string]string, args ...string) (string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := cli.Execute(context.Background(), args, cli.IO{In: strings.NewReader(""), Out: &out, Err: &errOut,
		Getenv: func(k string) string { return env[k] }})
	if errOut.Len() > 0 {
		t.Logf("leadflowctl %s: %s", strings.Join(args, " "), errOut.String())
	}
	return out.String(), code
}

func deadLetters(t *testing.T, env map[string]string, stage string) []ops.DeadLetter {
	t.Helper()
	out, code := ctl(t, env, "dlq", "list", "--json", "--stage", stage)
	if code != 0 {
		t.Fatalf("dlq list exit %d", code)
	}
	var list []ops.DeadLetter
	jsonOf(t, out, &list)
	return list
}

// TestPoisonMessagesAndRequeue: a malformed event is dead-lettered with its
// reason; an event refused for a cause that is then fixed (an expired Work
// API token) completes after `dlq requeue`, with exactly one C2S message.
func TestPoisonMessagesAndRequeue(t *testing.T) {
	s, o, pool := startStack(t, sim.Config{Seed: 7, People: 60, Leads: 60})
	env := map[string]string{"NATS_URL": s.Env["NATS_URL"], "DATABASE_URL": s.Env["DATABASE_URL"]}
	ctx := context.Background()

	// 1. Malformed: not an envelope at all.
	if _, err := o.JS.Publish(ctx, events.SubjectReceived, []byte(`{"lead_id": "abc", "oops"`), jetstream.WithMsgID("poison-1")); err != nil {
		t.Fatal(err)
	}
	var poison ops.DeadLetter
	waitFor(t, 20*time.Second, "the malformed event in leads.dlq", func() (bool, string) {
		list := deadLetters(t, env, "resolver")
		if len(list) == 1 {
			poison = list[0]
		}
		return len(list) == 1, fmt.Sprint(list)
	})
	if poison.OriginalSubject != events.SubjectReceived || !strings.Contains(poison.Reason, "invalid event") {
		t.Fatalf("dead letter = %+v, want the received subject and an 'invalid event' reason", poison)
	}

	// 2. A fixable cause: the Work API refuses the token.
	lead := singlePersonLeads(t, s.Sims.Pop, 1)[0]
	cpf := s.Sims.Pop.ExpectedPersons(lead.ID)[0]
	s.Sims.WorkAPI.SetFaults(sim.Faults{TokenExpired: true})
	postWebhooks(t, s, []sim.Lead{lead})
	var dl ops.DeadLetter
	waitFor(t, 20*time.Second, "the enricher's dead letter", func() (bool, string) {
		list := deadLetters(t, env, "enricher")
		if len(list) == 1 {
			dl = list[0]
		}
		return len(list) == 1, fmt.Sprint(list)
	})
	if dl.LeadID != lead.ID || dl.OriginalSubject != events.SubjectResolved {
		t.Fatalf("dead letter = %+v, want lead %s from %s", dl, lead.ID, events.SubjectResolved)
	}

	// show masks personal data unless --reveal.
	seq := fmt.Sprint(dl.Seq)
	masked, code := ctl(t, env, "dlq", "show", seq)
	if code != 0 || !strings.Contains(masked, lead.ID) {
		t.Fatalf("dlq show exit %d: %s", code, masked)
	}
	if strings.Contains(masked, cpf) || (lead.Email != "" && strings.Contains(masked, strings.ToLower(strings.TrimSpace(lead.Email)))) {
		t.Fatalf("dlq show leaked the CPF:\n%s", masked)
	}
	revealed, _ := ctl(t, env, "dlq", "show", seq, "--reveal")
	if !strings.Contains(revealed, cpf) {
		t.Fatalf("dlq show --reveal hides the CPF:\n%s", revealed)
	}
	if n := len(s.Sims.C2S.Messages(lead.ID)); n != 0 {
		t.Fatalf("%d messages before the fix", n)
	}

	// Ingest's admin API (mounted by the service) lists the same entry.
	req, _ := http.NewRequest("GET", s.IngestURL+"/api/v1/admin/dlq?stage=enricher", nil)
	req.Header.Set("Authorization", "Bearer "+strings.Split(s.Env["API_KEYS"], ",")[0])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var listed struct {
		Count       int              `json:"count"`
		DeadLetters []ops.DeadLetter `json:"dead_letters"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&listed)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || listed.Count != 1 || listed.DeadLetters[0].Seq != dl.Seq {
		t.Fatalf("GET /api/v1/admin/dlq: %d %+v", resp.StatusCode, listed)
	}

	// Fix the cause, requeue: the run completes with exactly one message.
	s.Sims.WorkAPI.ClearFaults()
	if out, code := ctl(t, env, "dlq", "requeue", seq); code != 0 || !strings.Contains(out, "requeued "+seq) {
		t.Fatalf("dlq requeue exit %d: %s", code, out)
	}
	waitRuns(t, pool, 20*time.Second, 1, "lead_id = $1 AND status = 'notified'", lead.ID)
	if n := len(s.Sims.C2S.Messages(lead.ID)); n != 1 {
		t.Fatalf("%d messages after the requeue, want 1", n)
	}
	if list := deadLetters(t, env, "enricher"); len(list) != 0 {
		t.Fatalf("dead letter still listed after requeue: %+v", list)
	}
	// The entry is gone: requeuing it again is refused, nothing is posted.
	if _, code := ctl(t, env, "dlq", "requeue", seq); code == 0 {
		t.Fatal("requeue of a deleted dead letter succeeded")
	}

	// 3. Requeuing what is still malformed dead-letters it again: never lost.
	if _, code := ctl(t, env, "dlq", "requeue", "--all", "--stage", "resolver"); code != 0 {
		t.Fatalf("requeue --all exit %d", code)
	}
	waitFor(t, 20*time.Second, "the malformed event back in leads.dlq", func() (bool, string) {
		list := deadLetters(t, env, "resolver")
		return len(list) == 1 && list[0].Seq != poison.Seq, fmt.Sprint(list)
	})
	if n := len(s.Sims.C2S.Messages(lead.ID)); n != 1 {
		t.Fatalf("%d messages at the end, want 1", n)
	}

	// purge asks first; --yes skips the question.
	if _, code := ctl(t, env, "dlq", "purge"); code == 0 {
		t.Fatal("purge without confirmation succeeded")
	}
	if out, code := ctl(t, env, "dlq", "purge", "--yes"); code != 0 || !strings.Contains(out, "purged 1") {
		t.Fatalf("purge --yes exit %d: %s", code, out)
	}
	if n := streamMessages(t, o, events.SubjectDeadLetter); n != 0 {
		t.Fatalf("%d dead letters after purge", n)
	}

	// status and trace render from the same data.
	if out, code := ctl(t, env, "status"); code != 0 || !strings.Contains(out, "enricher__leads_resolved") || !strings.Contains(out, "dead letters: 0") {
		t.Fatalf("status exit %d:\n%s", code, out)
	}
	if out, code := ctl(t, env, "trace", lead.ID); code != 0 || !strings.Contains(out, "notified") {
		t.Fatalf("trace exit %d:\n%s", code, out)
	}
}
