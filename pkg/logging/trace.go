package logging

import (
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/trace"
)

// traceHook adds trace_id to every line logged with a context inside a
// trace (logger.Ctx(ctx), event.Ctx(ctx), or a logger from Ctx), so a
// lead's log lines in every service share the id of its trace.
type traceHook struct{}

func (traceHook) Run(e *zerolog.Event, _ zerolog.Level, _ string) {
	ctx := e.GetCtx()
	if ctx == nil {
		return
	}
	if sc := trace.SpanContextFromContext(ctx); sc.HasTraceID() {
		e.Str("trace_id", sc.TraceID().String())
	}
}
