package messaging

import (
	"context"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/leadflow/leadflow/pkg/backbone/failure"
)

// Propagator is the one way trace context travels between processes: W3C
// traceparent/tracestate, in HTTP headers at ingest's edge and in NATS
// message headers (watermill metadata) between the stages.
var Propagator propagation.TextMapPropagator = propagation.TraceContext{}

// tracer follows the process's tracer provider (no-op unless the platform
// installed one).
var tracer = otel.Tracer("github.com/leadflow/leadflow/pkg/backbone/messaging")

// metadataCarrier lets the propagator read and write watermill metadata,
// which watermill-nats sends as NATS headers.
type metadataCarrier message.Metadata

func (m metadataCarrier) Get(k string) string { return m[k] }
func (m metadataCarrier) Set(k, v string)     { m[k] = v }
func (m metadataCarrier) Keys() []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TraceID is the W3C trace id of ctx's span, or "" outside a trace.
func TraceID(ctx context.Context) string {
	if sc := trace.SpanContextFromContext(ctx); sc.HasTraceID() {
		return sc.TraceID().String()
	}
	return ""
}

// tracePublish starts the producer span of one publish and injects its
// context into msg's metadata (so the consumer continues the trace); the
// returned function ends it with the publish's result.
func tracePublish(ctx context.Context, subject string, msg *message.Message) func(error) {
	ctx, span := tracer.Start(ctx, subject+" publish", trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(
			attribute.String("messaging.system", "nats"),
			attribute.String("messaging.operation.type", "send"),
			attribute.String("messaging.destination.name", subject),
			attribute.String("messaging.message.id", msg.UUID),
		))
	if msg.Metadata == nil {
		msg.Metadata = message.Metadata{}
	}
	Propagator.Inject(ctx, metadataCarrier(msg.Metadata))
	msg.SetContext(ctx)
	return func(err error) {
		if err != nil {
			span.SetStatus(codes.Error, "publish failed")
		}
		span.End()
	}
}

// continueTrace copies the trace context of from into to's metadata (a dead
// letter continues the trace of the message it carries).
func continueTrace(from, to *message.Message) {
	ctx := from.Context()
	if !trace.SpanContextFromContext(ctx).IsValid() {
		ctx = Propagator.Extract(ctx, metadataCarrier(from.Metadata))
	}
	Propagator.Inject(ctx, metadataCarrier(to.Metadata))
}

// traceIDOf is the trace id of a message being handled (its context), or
// of its headers.
func traceIDOf(msg *message.Message) string {
	if id := TraceID(msg.Context()); id != "" {
		return id
	}
	return TraceID(Propagator.Extract(context.Background(), metadataCarrier(msg.Metadata)))
}

// telemetry is the outermost middleware of every consumer: it continues the
// trace from the message's headers in one consumer span per delivery (the
// stage handler; every upstream call, Postgres statement and publish of
// the handler is its child), and creates the consumer's metric series at
// zero. The span names the consumer, subject, message id (event type and
// deterministic id), delivery count and run id: no payload, no personal
// data; a failure is recorded by its kind and fate, not its text.
func (r *Router) telemetry(spec ConsumerSpec, durable string) message.HandlerMiddleware {
	for _, outcome := range []string{"ack", "nak", "dead_letter"} {
		r.metrics.handled.WithLabelValues(durable, outcome)
	}
	r.metrics.duration.WithLabelValues(durable)
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			ctx := Propagator.Extract(msg.Context(), metadataCarrier(msg.Metadata))
			ctx, span := tracer.Start(ctx, durable+" process", trace.WithSpanKind(trace.SpanKindConsumer),
				trace.WithAttributes(
					attribute.String("messaging.system", "nats"),
					attribute.String("messaging.operation.type", "process"),
					attribute.String("messaging.destination.name", spec.Subject),
					attribute.String("messaging.consumer.group.name", durable),
					attribute.String("messaging.message.id", msg.UUID),
					attribute.String("leadflow.delivery", msg.Metadata.Get(MetaDelivered)),
					attribute.String("leadflow.run_id", middleware.MessageCorrelationID(msg)),
				))
			defer span.End()
			msg.SetContext(ctx)
			out, err := h(msg)
			if err != nil {
				kind := failure.KindOf(err).String()
				fate := "nak"
				if !failure.ShouldNack(err) {
					fate = "dead_letter"
				}
				span.SetAttributes(attribute.String("error.type", kind), attribute.String("leadflow.fate", fate))
				span.SetStatus(codes.Error, kind)
			}
			return out, err
		}
	}
}
