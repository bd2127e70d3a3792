package store

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

var tracer = otel.Tracer("github.com/leadflow/leadflow/pkg/store")

// queryTracer is pgx's tracer: a client span per statement and per batch (a
// stage's batch is its one implicit transaction), only inside a trace that
// records (no orphan spans for migrations or background reads). Spans carry
// the statement's SQL text, which is code, and never its arguments, which
// hold personal data.
type queryTracer struct{}

var (
	_ pgx.QueryTracer = queryTracer{}
	_ pgx.BatchTracer = queryTracer{}
)

const maxSQLAttr = 512

func sqlAttrs(sql string) []attribute.KeyValue {
	// Only the start is kept: collapse the whitespace of a prefix, not of
	// a statement of several kB.
	sql = strings.Join(strings.Fields(sql[:min(len(sql), 4*maxSQLAttr)]), " ")
	op, _, _ := strings.Cut(sql, " ")
	if len(sql) > maxSQLAttr {
		sql = sql[:maxSQLAttr]
	}
	return []attribute.KeyValue{
		attribute.String("db.system.name", "postgresql"),
		attribute.String("db.operation.name", strings.ToUpper(op)),
		attribute.String("db.query.text", sql),
	}
}

func start(ctx context.Context, name string, attrs ...attribute.KeyValue) context.Context {
	if !trace.SpanFromContext(ctx).IsRecording() {
		return ctx
	}
	ctx, _ = tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
	return ctx
}

func end(ctx context.Context, err error) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	if err != nil {
		// The class of the error, never its text (it may quote a value).
		span.SetAttributes(attribute.String("error.type", kindOf(err)))
		span.SetStatus(codes.Error, kindOf(err))
	}
	span.End()
}

func kindOf(err error) string {
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr):
		return "SQLSTATE " + pgErr.Code
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	return "connection"
}

// roundTrips and statements count this process's Postgres work (every
// pool opened by Open): a query or exec is one round trip and one
// statement; a batch is one round trip carrying its statements. They are
// exported by PoolCollector (cmd/bench reads them per lead).
var roundTrips, statements atomic.Int64

// TraceQueryStart implements pgx.QueryTracer.
func (queryTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	roundTrips.Add(1)
	statements.Add(1)
	if !trace.SpanFromContext(ctx).IsRecording() {
		return ctx // tracing off or not sampled: no attributes to build
	}
	attrs := sqlAttrs(d.SQL)
	return start(ctx, "postgres "+attrs[1].Value.AsString(), attrs...)
}

// TraceQueryEnd implements pgx.QueryTracer.
func (queryTracer) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryEndData) {
	end(ctx, d.Err)
}

// TraceBatchStart implements pgx.BatchTracer.
func (queryTracer) TraceBatchStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceBatchStartData) context.Context {
	roundTrips.Add(1)
	n := 0
	if d.Batch != nil {
		n = d.Batch.Len()
	}
	return start(ctx, "postgres batch", attribute.String("db.system.name", "postgresql"),
		attribute.String("db.operation.name", "BATCH"), attribute.Int("db.operation.batch.size", n))
}

// TraceBatchQuery implements pgx.BatchTracer: each statement is an event.
func (queryTracer) TraceBatchQuery(ctx context.Context, _ *pgx.Conn, d pgx.TraceBatchQueryData) {
	statements.Add(1)
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	attrs := sqlAttrs(d.SQL)
	if d.Err != nil {
		attrs = append(attrs, attribute.String("error.type", kindOf(d.Err)))
	}
	span.AddEvent("statement", trace.WithAttributes(attrs...))
}

// TraceBatchEnd implements pgx.BatchTracer.
func (queryTracer) TraceBatchEnd(ctx context.Context, _ *pgx.Conn, d pgx.TraceBatchEndData) {
	end(ctx, d.Err)
}
