package service_test

import (
	"context"
	"encoding/json"
	"io"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/leadflow/leadflow/pkg/backbone/events"
	"github.com/leadflow/leadflow/pkg/backbone/messaging"
	"github.com/leadflow/leadflow/pkg/clients/httpx/httpxtest"
	"github.com/leadflow/leadflow/pkg/config"
	"github.com/leadflow/leadflow/pkg/logging"
	"github.com/leadflow/leadflow/pkg/platform"
	"github.com/leadflow/leadflow/pkg/sim"
	"github.com/leadflow/leadflow/services/enricher/service"
)

var durable = messaging.DurableName(service.Name, events.SubjectResolved)

// startService runs the enricher as its binary would (configuration from
// the environment, platform.Connect, Register) on the rig's infrastructure,
// and returns its connections for inspection.
func startService(t *testing.T, r *rig, extra map[string]string) *platform.Deps {
	t.Helper()
	env := map[string]string{
		"DATABASE_URL": r.dbURL, "NATS_URL": r.natsURL, "LOG_LEVEL": "error",
		"WORK_API_URL": r.sims.WorkAPIURL, "WORK_API_KEY": r.sims.Config.WorkToken,
		"WORK_API_RATE": "0", "WORK_API_CONCURRENCY": "0",
	}
	for k, v := range extra {
		env[k] = v
	}
	cfg, err := service.LoadConfig(config.FromMap(env))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	d, err := platform.Connect(ctx, cfg.Common, logging.New(service.Name, "error", io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	if err := service.Setup(cfg)(ctx, d); err != nil {
		t.Fatal(err)
	}
	go func() { _ = d.Router.Run(ctx) }()
	<-d.Router.Running()
	t.Cleanup(func() { cancel(); _ = d.Router.Close(); d.Close() })
	return d
}

func consumerInfo(t *testing.T, r *rig) *jetstream.ConsumerInfo {
	t.Helper()
	c, err := r.js.Consumer(context.Background(), events.StreamName, durable)
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// TestOutOfCreditsPausesTheConsumer: the first "not enough credits" answer
// pauses the durable consumer on the server for ENRICH_CREDITS_PAUSE, so no
// replica keeps calling; the alert metric counts it and nothing is
// dead-lettered.
func TestOutOfCreditsPausesTheConsumer(t *testing.T) {
	r := newRig(t, sim.Config{Faults: sim.FaultSet{WorkAPI: sim.Faults{OutOfCredits: true}}})
	d := startService(t, r, map[string]string{"ENRICH_CREDITS_PAUSE": "1h"})
	if consumerInfo(t, r).Paused {
		t.Fatal("consumer paused before any work")
	}
	env, _ := resolved(t, leadID(t.Name()), false, false, helenaByPhone)
	if err := r.pub.Publish(context.Background(), env); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "the consumer to be paused server-side", func() bool { return consumerInfo(t, r).Paused })
	info := consumerInfo(t, r)
	if info.PauseRemaining < 50*time.Minute {
		t.Fatalf("paused for %v, want about ENRICH_CREDITS_PAUSE=1h", info.PauseRemaining)
	}
	waitFor(t, 5*time.Second, "the credits alert metric", func() bool {
		return httpxtest.CounterValue(d.Registry, metricCredits, nil) == 1
	})
	if got := r.subjectCount(t, events.SubjectDeadLetter); got != 0 {
		t.Fatalf("%d dead letters for a credits problem, want none", got)
	}
	if got := r.sims.WorkAPI.TotalPaidCalls(); got != 0 {
		t.Fatalf("%d paid calls while out of credits", got)
	}
}

// TestInvalidTokenDeadLetters: a rejected token dead-letters the event after
// one call (no in-process retries, no redeliveries), counts the alert metric
// and marks the run failed; the consumer keeps running.
func TestInvalidTokenDeadLetters(t *testing.T) {
	r := newRig(t, sim.Config{Faults: sim.FaultSet{WorkAPI: sim.Faults{TokenExpired: true}}})
	d := startService(t, r, nil)
	lead := leadID(t.Name())
	env, _ := resolved(t, lead, false, false, helenaByPhone)
	if err := r.pub.Publish(context.Background(), env); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "the dead letter", func() bool { return r.subjectCount(t, events.SubjectDeadLetter) == 1 })
	var dl events.DeadLetter
	if err := json.Unmarshal(r.dlqPayload(t), &dl); err != nil {
		t.Fatal(err)
	}
	if dl.OriginalSubject != events.SubjectResolved || dl.LeadID != lead {
		t.Fatalf("dead letter = %+v", dl)
	}
	waitFor(t, 5*time.Second, "the run to be marked failed", func() bool {
		return r.count(t, `SELECT count(*) FROM pipeline.lead_runs WHERE lead_id = $1 AND status = 'failed'`, lead) == 1
	})
	if v := httpxtest.CounterValue(d.Registry, metricToken, nil); v != 1 {
		t.Fatalf("%s = %v, want 1", metricToken, v)
	}
	if n := r.sims.WorkAPI.RequestCount(); n != 1 {
		t.Fatalf("%d Work API requests for one event, want 1 (no retry storm)", n)
	}
	if info := consumerInfo(t, r); info.Paused || info.NumAckPending != 0 {
		t.Fatalf("consumer paused=%v with %d pending after a dead letter", info.Paused, info.NumAckPending)
	}
}

// dlqPayload returns the raw body of the only dead letter.
func (r *rig) dlqPayload(t *testing.T) []byte {
	t.Helper()
	ctx := context.Background()
	st, err := r.js.Stream(ctx, events.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.GetLastMsgForSubject(ctx, events.SubjectDeadLetter)
	if err != nil {
		t.Fatal(err)
	}
	return m.Data
}

// subjectCount is how many events the stream holds on subject.
func (r *rig) subjectCount(t *testing.T, subject string) uint64 {
	t.Helper()
	st, err := r.js.Stream(context.Background(), events.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(context.Background(), jetstream.WithSubjectFilter(subject))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Subjects[subject]
}

// The enricher's pools run only the pipeline's fixed statements: each is
// planned once, generically (store.Session.GenericPlans).
func TestEnricherPoolsPlanGenerically(t *testing.T) {
	d := startService(t, newRig(t, sim.Config{}), nil)
	for name, pool := range map[string]interface {
		QueryRow(context.Context, string, ...any) pgx.Row
	}{"main": d.Pool, "budgets": d.Budgets} {
		var mode string
		if err := pool.QueryRow(context.Background(), `SHOW plan_cache_mode`).Scan(&mode); err != nil {
			t.Fatal(err)
		}
		if mode != "force_generic_plan" {
			t.Errorf("%s pool: plan_cache_mode %s, want force_generic_plan", name, mode)
		}
	}
}
