package httpx

import (
	"context"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/leadflow/leadflow/pkg/backbone/failure"
)

// tracer follows the process's tracer provider (a no-op one unless
// OTEL_EXPORTER_OTLP_ENDPOINT is set; pkg/platform).
var tracer = otel.Tracer("github.com/leadflow/leadflow/pkg/clients/httpx")

// traceCall starts the span of one upstream call (every attempt and retry
// inside it). Its attributes name the upstream, the operation, the final
// status and outcome, and the retries: never a URL (paths and queries hold
// phones, emails, CPFs and tokens) nor a body.
func (c *Caller) traceCall(ctx context.Context, op string) (context.Context, func(*Response, error)) {
	ctx, span := tracer.Start(ctx, op, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("leadflow.upstream", c.name), attribute.String("leadflow.upstream.op", op)))
	return ctx, func(resp *Response, err error) {
		status := StatusOf(err)
		if resp != nil {
			status = resp.Status
		}
		if status != 0 {
			span.SetAttributes(attribute.Int("http.response.status_code", status))
		}
		o := outcome(err)
		span.SetAttributes(attribute.String("leadflow.upstream.outcome", o))
		if err != nil {
			span.SetAttributes(attribute.String("error.type", o))
			span.SetStatus(codes.Error, o)
		}
		span.End()
	}
}

// traceRetry notes a retry on the call's span.
func traceRetry(ctx context.Context, retry int, wait time.Duration, kind failure.Kind) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	span.SetAttributes(attribute.Int("leadflow.upstream.retries", retry))
	span.AddEvent("retry", trace.WithAttributes(attribute.Int("leadflow.retry", retry),
		attribute.Int64("leadflow.retry.wait_ms", wait.Milliseconds()), attribute.String("error.type", kind.String())))
}

// observeCall counts refused credentials and refreshes the breaker gauge
// (gobreaker moves from open to half-open lazily, when asked).
func (c *Caller) observeCall(err error) {
	if err != nil && c.unauth != nil && failure.KindOf(err) == failure.KindUnauthorized {
		c.unauth.Inc()
	}
	if c.breaker != nil {
		c.m.setState(c.name, c.breaker.State())
	}
}

// timeAttempt observes one HTTP attempt's duration.
func (c *Caller) timeAttempt(start time.Time) {
	c.m.request.WithLabelValues(c.name).Observe(time.Since(start).Seconds())
}
