package messaging

import (
	"context"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/leadflow/leadflow/pkg/backbone/events"
	"github.com/leadflow/leadflow/pkg/backbone/failure"
	"github.com/leadflow/leadflow/pkg/testinfra"
)

// TestTraceTravelsInHeadersToTheDeadLetter: the publisher injects the trace
// context into the message headers, the consumer continues it, and a dead
// letter records the trace id and keeps the context in its own headers.
func TestTraceTravelsInHeadersToTheDeadLetter(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	t.Cleanup(func() { otel.SetTracerProvider(prev) })

	r := newRig(t)
	seen := make(chan trace.SpanContext, 1)
	runRouter(t, r, fastSpec(events.SubjectReceived), func(ctx context.Context, msg *message.Message) error {
		seen <- trace.SpanContextFromContext(ctx)
		return failure.Permanent("test", context.Canceled)
	})
	ctx, root := tp.Tracer("test").Start(context.Background(), "root")
	if err := r.pub.Publish(ctx, received(t, "lead-traced", "k")); err != nil {
		t.Fatal(err)
	}
	root.End()
	want := root.SpanContext().TraceID()
	if got := <-seen; got.TraceID() != want {
		t.Fatalf("handler trace %s, want %s", got.TraceID(), want)
	}
	var dls []events.DeadLetter
	testinfra.WaitFor(t, "the dead letter", func() bool { dls = deadLetters(t, r); return len(dls) == 1 })
	if dls[0].TraceID != want.String() {
		t.Fatalf("dead letter trace_id = %q, want %s", dls[0].TraceID, want)
	}
	kinds := map[string]trace.SpanKind{}
	for _, s := range exp.GetSpans() {
		if s.SpanContext.TraceID() == want {
			kinds[s.Name] = s.SpanKind
		}
	}
	if kinds["leads.received publish"] != trace.SpanKindProducer || kinds["test__leads_received process"] != trace.SpanKindConsumer {
		t.Fatalf("spans of the trace: %v", kinds)
	}
}

// TestStatsCollector exports the consumers' JetStream figures and the
// dead-letter depth.
func TestStatsCollector(t *testing.T) {
	r := newRig(t)
	spec := fastSpec(events.SubjectReceived)
	if _, err := EnsureConsumer(context.Background(), r.js, spec); err != nil {
		t.Fatal(err)
	}
	for i, k := range []string{"a", "b", "c"} {
		if err := r.pub.Publish(context.Background(), received(t, "lead-stats", k)); err != nil {
			t.Fatal(err, i)
		}
	}
	dl := message.NewMessage("dlq:x", []byte(`{}`))
	if err := r.pub.PublishMessage(events.SubjectDeadLetter, dl); err != nil {
		t.Fatal(err)
	}
	other := prometheus.NewRegistry()
	other.MustRegister(NewStatsCollector(r.js, "other"))
	if n, err := testutil.GatherAndCount(other, "leadflow_consumer_pending_messages"); err != nil || n != 0 {
		t.Fatalf("another service exports %d pending series, %v", n, err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewStatsCollector(r.js, "test"))
	if n, err := testutil.GatherAndCount(reg, "leadflow_consumer_pending_messages"); err != nil || n != 1 {
		t.Fatalf("pending series = %d, %v", n, err)
	}
	mfs, _ := reg.Gather()
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			got[mf.GetName()] = m.GetGauge().GetValue()
			if mf.GetName() == "leadflow_consumer_pending_messages" && m.GetLabel()[0].GetValue() != "test__leads_received" {
				t.Errorf("consumer label = %s", m.GetLabel()[0].GetValue())
			}
		}
	}
	if got["leadflow_consumer_pending_messages"] != 3 || got["leadflow_dlq_messages"] != 1 || got["leadflow_consumer_ack_pending_messages"] != 0 {
		t.Fatalf("gauges = %v", got)
	}
}
