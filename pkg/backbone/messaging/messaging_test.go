package messaging

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/leadflow/leadflow/pkg/backbone/events"
	"github.com/leadflow/leadflow/pkg/backbone/failure"
	"github.com/leadflow/leadflow/pkg/logging"
	"github.com/leadflow/leadflow/pkg/testinfra"
)

type rig struct {
	nc  *nats.Conn
	js  jetstream.JetStream
	pub *Publisher
}

func newRig(t testing.TB) *rig {
	t.Helper()
	srv := testinfra.StartNATS(t)
	nc, err := nats.Connect(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := EnsureStream(context.Background(), js, DefaultStreamSettings()); err != nil {
		t.Fatal(err)
	}
	pub, err := NewPublisher(nc, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &rig{nc: nc, js: js, pub: pub}
}

func fastSpec(subject string) ConsumerSpec {
	s := DefaultConsumerSpec("test", subject)
	s.AckWait = 10 * time.Second
	s.BackOff = []time.Duration{10 * time.Second, 10 * time.Second}
	s.NakDelays = []time.Duration{10 * time.Millisecond, 20 * time.Millisecond}
	s.MaxDeliver = 3
	s.Workers = 2
	return s
}

func received(t *testing.T, lead, key string) events.Envelope {
	t.Helper()
	env, err := events.NewReceived(lead, events.SourceAPI, key, events.LeadReceived{Action: "trigger"})
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func runRouter(t *testing.T, r *rig, spec ConsumerSpec, h HandlerFunc) {
	t.Helper()
	router, err := NewRouter(r.nc, r.js, r.pub, "test", logging.New("test", "error", io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	if err := router.Handle(context.Background(), spec, h); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { _ = router.Run(ctx) }()
	<-router.Running()
	t.Cleanup(func() { cancel(); _ = router.Close() })
}

func deadLetters(t *testing.T, r *rig) []events.DeadLetter {
	t.Helper()
	var out []events.DeadLetter
	for _, data := range testinfra.SubjectMessages(t, r.js, events.StreamName, events.SubjectDeadLetter) {
		var dl events.DeadLetter
		if err := json.Unmarshal(data, &dl); err != nil {
			t.Fatal(err)
		}
		out = append(out, dl)
	}
	return out
}

func TestConsumerSettingsLiveOnTheServer(t *testing.T) {
	r := newRig(t)
	spec := DefaultConsumerSpec("resolver", events.SubjectReceived)
	if _, err := EnsureConsumer(context.Background(), r.js, spec); err != nil {
		t.Fatal(err)
	}
	// Idempotent.
	if _, err := EnsureConsumer(context.Background(), r.js, spec); err != nil {
		t.Fatal(err)
	}
	c, err := r.js.Consumer(context.Background(), events.StreamName, "resolver__leads_received")
	if err != nil {
		t.Fatal(err)
	}
	cfg := c.CachedInfo().Config
	if cfg.MaxDeliver != spec.MaxDeliver || cfg.MaxAckPending != spec.MaxAckPending || len(cfg.BackOff) != len(spec.BackOff) ||
		cfg.AckWait < spec.AckWait ||
		cfg.FilterSubject != events.SubjectReceived || cfg.AckPolicy != jetstream.AckExplicitPolicy {
		t.Fatalf("server config = %+v", cfg)
	}
	st, _ := r.js.Stream(context.Background(), events.StreamName)
	sc := st.CachedInfo().Config
	if sc.Retention != jetstream.LimitsPolicy || sc.MaxAge != 30*24*time.Hour || sc.Duplicates != 10*time.Minute {
		t.Fatalf("stream config = %+v", sc)
	}
}

func TestDeliveryAndDuplicateSuppression(t *testing.T) {
	r := newRig(t)
	var got atomic.Int32
	runRouter(t, r, fastSpec(events.SubjectReceived), func(ctx context.Context, msg *message.Message) error {
		got.Add(1)
		return nil
	})
	env := received(t, "lead1", "k1")
	for i := 0; i < 3; i++ {
		if err := r.pub.Publish(context.Background(), env); err != nil {
			t.Fatal(err)
		}
	}
	other := received(t, "lead1", "k2")
	if err := r.pub.Publish(context.Background(), other); err != nil {
		t.Fatal(err)
	}
	testinfra.WaitFor(t, "two deliveries", func() bool { return got.Load() >= 2 })
	st, _ := r.js.Stream(context.Background(), events.StreamName)
	info, _ := st.Info(context.Background())
	if info.State.Msgs != 2 {
		t.Fatalf("stream holds %d messages, want 2 (same Nats-Msg-Id deduplicated)", info.State.Msgs)
	}
}

func TestPermanentErrorsAndPanicsAreDeadLettered(t *testing.T) {
	r := newRig(t)
	var calls atomic.Int32
	runRouter(t, r, fastSpec(events.SubjectReceived), func(ctx context.Context, msg *message.Message) error {
		calls.Add(1)
		var lr events.LeadReceived
		env, err := events.Decode(msg.Payload, events.TypeReceived, &lr)
		if err != nil {
			return err
		}
		if env.LeadID == "panic" {
			panic("boom")
		}
		return failure.Permanent("test", errors.New("bad input"))
	})
	if err := r.pub.Publish(context.Background(), received(t, "lead1", "x")); err != nil {
		t.Fatal(err)
	}
	if err := r.pub.Publish(context.Background(), received(t, "panic", "x")); err != nil {
		t.Fatal(err)
	}
	// A message that is not even JSON.
	if _, err := r.js.Publish(context.Background(), events.SubjectReceived, []byte("not json")); err != nil {
		t.Fatal(err)
	}
	var dls []events.DeadLetter
	testinfra.WaitFor(t, "three dead letters", func() bool { dls = deadLetters(t, r); return len(dls) == 3 })
	reasons := map[string]string{}
	for _, dl := range dls {
		if dl.OriginalSubject != events.SubjectReceived || dl.Stage != "test__leads_received" {
			t.Fatalf("dead letter = %+v", dl)
		}
		key := dl.LeadID
		if dl.RawBase64 != "" {
			key = "raw"
		}
		reasons[key] = dl.Reason
	}
	if reasons["lead1"] == "" || reasons["panic"] == "" || reasons["raw"] == "" {
		t.Fatalf("reasons = %v", reasons)
	}
	if calls.Load() != 3 {
		t.Fatalf("permanent failures must not be redelivered: %d calls", calls.Load())
	}
}

func TestTransientErrorsExhaustIntoDeadLetter(t *testing.T) {
	r := newRig(t)
	var calls atomic.Int32
	spec := fastSpec(events.SubjectReceived)
	runRouter(t, r, spec, func(ctx context.Context, msg *message.Message) error {
		calls.Add(1)
		return failure.Transient("test", errors.New("upstream down"))
	})
	if err := r.pub.Publish(context.Background(), received(t, "lead1", "x")); err != nil {
		t.Fatal(err)
	}
	var dls []events.DeadLetter
	testinfra.WaitFor(t, "dead letter after MaxDeliver", func() bool { dls = deadLetters(t, r); return len(dls) == 1 })
	if int(calls.Load()) != spec.MaxDeliver {
		t.Fatalf("handler ran %d times, want MaxDeliver=%d", calls.Load(), spec.MaxDeliver)
	}
	if dls[0].Deliveries != spec.MaxDeliver || dls[0].LeadID != "lead1" {
		t.Fatalf("dead letter = %+v", dls[0])
	}
}

func TestBackoffDelay(t *testing.T) {
	d := backoffDelay{time.Second, 5 * time.Second}
	for n, want := range map[uint64]time.Duration{0: time.Second, 1: time.Second, 2: 5 * time.Second, 9: 5 * time.Second} {
		if got := d.WaitTime(n); got != want {
			t.Errorf("WaitTime(%d) = %v, want %v", n, got, want)
		}
	}
	if err := (ConsumerSpec{Service: "s", Subject: "x", MaxDeliver: 2, BackOff: d, AckWait: 1, MaxAckPending: 1, Workers: 1}).Validate(); err == nil {
		t.Fatal("MaxDeliver must exceed backoff steps")
	}
	// The server takes BackOff[0] as the ack wait: a shorter first step would
	// redeliver messages that are still being handled.
	if err := (ConsumerSpec{Service: "s", Subject: "x", MaxDeliver: 5, BackOff: d, AckWait: time.Minute, MaxAckPending: 1, Workers: 1}).Validate(); err == nil {
		t.Fatal("BackOff[0] shorter than AckWait must be rejected")
	}
	slow := DefaultConsumerSpec("enricher", "leads.resolved").WithAckWait(3 * time.Minute)
	if slow.AckWait != 3*time.Minute || slow.BackOff[0] != 3*time.Minute || slow.BackOff[3] != 10*time.Minute || slow.Validate() != nil {
		t.Fatalf("WithAckWait = %+v", slow)
	}
	if DurableName("notifier", "leads.enriched") != "notifier__leads_enriched" {
		t.Fatal("durable names must contain no dots")
	}
}

func TestHandlersGetADeadlineInsideTheAckWait(t *testing.T) {
	r := newRig(t)
	spec := fastSpec(events.SubjectReceived)
	spec.MaxHold = time.Minute
	got := make(chan time.Duration, 1)
	runRouter(t, r, spec, func(ctx context.Context, msg *message.Message) error {
		d, ok := ctx.Deadline()
		if !ok {
			got <- 0
			return nil
		}
		got <- time.Until(d)
		return nil
	})
	if err := r.pub.Publish(context.Background(), received(t, "lead1", "x")); err != nil {
		t.Fatal(err)
	}
	select {
	case left := <-got:
		// Each try ends within the ack wait; waits between tries are not
		// bounded by it (TestWaitingCostsNoDelivery).
		if left <= 0 || left > spec.AckWait {
			t.Fatalf("handler deadline in %v, want within the ack wait %v", left, spec.AckWait)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("handler not called")
	}
}

// A handler that waits (a rate budget, credits, a slow upstream) longer
// than the ack wait keeps its message in progress: it is not redelivered
// and uses one delivery.
func TestWaitingCostsNoDelivery(t *testing.T) {
	r := newRig(t)
	spec := fastSpec(events.SubjectReceived)
	spec.AckWait = time.Second
	spec.BackOff = []time.Duration{time.Second, time.Second}
	var calls atomic.Int32
	var delivered atomic.Value
	runRouter(t, r, spec, func(ctx context.Context, msg *message.Message) error {
		delivered.Store(msg.Metadata.Get(MetaDelivered))
		if calls.Add(1) == 1 {
			// Told to wait three ack waits (a rate budget, a Retry-After).
			return failure.RateLimited("test", 3*spec.AckWait, nil)
		}
		return nil
	})
	if err := r.pub.Publish(context.Background(), received(t, "lead1", "x")); err != nil {
		t.Fatal(err)
	}
	c, err := r.js.Consumer(context.Background(), events.StreamName, DurableName(spec.Service, spec.Subject))
	if err != nil {
		t.Fatal(err)
	}
	testinfra.WaitFor(t, "the message acked", func() bool {
		info, err := c.Info(context.Background())
		return err == nil && info.AckFloor.Stream == 1 && info.NumAckPending == 0
	})
	info, _ := c.Info(context.Background())
	if calls.Load() != 2 || delivered.Load() != "1" || info.NumRedelivered != 0 {
		t.Fatalf("handler ran %d times (last on delivery %v, %d redelivered), want twice on the first delivery", calls.Load(), delivered.Load(), info.NumRedelivered)
	}
}

// A backlog stays on the server: a process takes a message only when a
// handler is free, so nothing waits in a client buffer burning its ack
// wait.
func TestBacklogStaysOnTheServer(t *testing.T) {
	r := newRig(t)
	spec := fastSpec(events.SubjectReceived)
	spec.Workers = 2
	release := make(chan struct{})
	var running atomic.Int32
	runRouter(t, r, spec, func(ctx context.Context, msg *message.Message) error {
		running.Add(1)
		<-release
		return nil
	})
	for i := range 20 {
		if err := r.pub.Publish(context.Background(), received(t, fmt.Sprintf("lead%d", i), "x")); err != nil {
			t.Fatal(err)
		}
	}
	c, _ := r.js.Consumer(context.Background(), events.StreamName, DurableName(spec.Service, spec.Subject))
	testinfra.WaitFor(t, "both handlers busy", func() bool { return running.Load() == 2 })
	info, err := c.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.NumAckPending != 2 || info.NumPending != 18 {
		t.Fatalf("ack pending %d, pending %d: want 2 taken (one per free handler) and 18 left on the server", info.NumAckPending, info.NumPending)
	}
	close(release)
	testinfra.WaitFor(t, "the backlog drained", func() bool {
		info, err := c.Info(context.Background())
		return err == nil && info.AckFloor.Stream == 20
	})
}

// Stopping naks what a handler still holds after the grace period, so it
// comes back at once instead of after the ack wait.
func TestCloseNaksWhatIsStillHeld(t *testing.T) {
	r := newRig(t)
	spec := fastSpec(events.SubjectReceived)
	spec.AckWait = time.Hour
	spec.BackOff = []time.Duration{time.Hour, time.Hour}
	router, err := NewRouter(r.nc, r.js, r.pub, "test", logging.New("test", "error", io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	router.Grace = 200 * time.Millisecond
	started := make(chan struct{}, 1)
	if err := router.Handle(context.Background(), spec, func(ctx context.Context, msg *message.Message) error {
		started <- struct{}{}
		<-ctx.Done()
		return failure.Transient("test", ctx.Err())
	}); err != nil {
		t.Fatal(err)
	}
	go func() { _ = router.Run(context.Background()) }()
	<-router.Running()
	if err := r.pub.Publish(context.Background(), received(t, "lead1", "x")); err != nil {
		t.Fatal(err)
	}
	<-started
	if err := router.Close(); err != nil {
		t.Fatal(err)
	}
	c, _ := r.js.Consumer(context.Background(), events.StreamName, DurableName(spec.Service, spec.Subject))
	// Back on the server at once, not after the one-hour ack wait.
	m, err := c.Next(jetstream.FetchMaxWait(5 * time.Second))
	if err != nil {
		t.Fatalf("the held message did not come back: %v", err)
	}
	if md, _ := m.Metadata(); md == nil || md.NumDelivered != 2 {
		t.Fatalf("redelivery metadata %+v, want the second delivery", md)
	}
	// And publishing still works after the stop.
	if err := r.pub.Publish(context.Background(), received(t, "lead2", "x")); err != nil {
		t.Fatalf("publish after Close: %v", err)
	}
}

// Deliveries that run out with no handler answer (a crash or a hang every
// time) still end in the dead letters, with the reason.
func TestExhaustedWithoutAnswerIsDeadLettered(t *testing.T) {
	r := newRig(t)
	spec := fastSpec(events.SubjectReceived)
	spec.AckWait = 300 * time.Millisecond
	spec.BackOff = []time.Duration{300 * time.Millisecond, 300 * time.Millisecond}
	spec.MaxHold = time.Nanosecond // never kept in progress: like a hung process
	spec.Workers = spec.MaxDeliver + 1
	hung := make(chan struct{})
	runRouter(t, r, spec, func(ctx context.Context, msg *message.Message) error {
		<-hung // never answers while the test runs
		return nil
	})
	t.Cleanup(func() { close(hung) })
	if err := r.pub.Publish(context.Background(), received(t, "lead1", "x")); err != nil {
		t.Fatal(err)
	}
	var dls []events.DeadLetter
	testinfra.WaitFor(t, "a dead letter for the exhausted message", func() bool { dls = deadLetters(t, r); return len(dls) == 1 })
	if dls[0].Reason != ReasonExhausted || dls[0].LeadID != "lead1" || dls[0].Stage != DurableName(spec.Service, spec.Subject) {
		t.Fatalf("dead letter = %+v", dls[0])
	}
}

// An outage, a rate limit or exhausted credits is waited out in process:
// the handler runs again on the same delivery, which is acked once it
// succeeds; nothing moves the message toward the dead letters.
func TestWaitsAreNotFailures(t *testing.T) {
	r := newRig(t)
	spec := fastSpec(events.SubjectReceived)
	var calls atomic.Int32
	var deliveries sync.Map
	runRouter(t, r, spec, func(ctx context.Context, msg *message.Message) error {
		n := calls.Add(1)
		deliveries.Store(msg.Metadata.Get(MetaDelivered), true)
		switch {
		case n == 1:
			return failure.Transient("test", fmt.Errorf("breaker: %w", failure.ErrUnavailable))
		case n <= 4:
			return failure.RateLimited("test", 10*time.Millisecond, nil)
		case n == 5:
			return failure.New(failure.KindCreditsExhausted, "test", nil)
		}
		return nil
	})
	if err := r.pub.Publish(context.Background(), received(t, "lead1", "x")); err != nil {
		t.Fatal(err)
	}
	c, _ := r.js.Consumer(context.Background(), events.StreamName, DurableName(spec.Service, spec.Subject))
	testinfra.WaitFor(t, "the message acked", func() bool {
		info, err := c.Info(context.Background())
		return err == nil && info.AckFloor.Stream == 1
	})
	n := 0
	deliveries.Range(func(k, _ any) bool { n++; return k == "1" })
	if calls.Load() != 6 || n != 1 || len(deadLetters(t, r)) != 0 {
		t.Fatalf("%d calls over %d deliveries, %d dead letters; want 6 calls on the first delivery and none", calls.Load(), n, len(deadLetters(t, r)))
	}
}
