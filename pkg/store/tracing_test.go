package store

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// A statement's span attributes: the operation, and the text's start with
// its whitespace collapsed, however long the statement.
func TestSQLAttrs(t *testing.T) {
	long := "\n\twith  found AS (\n" + strings.Repeat("SELECT 1,\n\t\t2 ", 2000) + ")"
	attrs := sqlAttrs(long)
	if op := attrs[1].Value.AsString(); op != "WITH" {
		t.Fatalf("operation %q, want WITH", op)
	}
	text := attrs[2].Value.AsString()
	if len(text) != maxSQLAttr || !strings.HasPrefix(text, "with found AS ( SELECT 1, 2 SELECT") {
		t.Fatalf("text (%d bytes) %.60q", len(text), text)
	}
}

// Without a recording span (tracing off), a query is counted and nothing
// else is built: no allocation, and the context comes back as it was.
func TestQueryStartWithoutTracing(t *testing.T) {
	ctx := context.Background()
	d := pgx.TraceQueryStartData{SQL: "SELECT  pg_advisory_lock(hashtextextended($1, 0))"}
	before := statements.Load()
	if got := (queryTracer{}).TraceQueryStart(ctx, nil, d); got != ctx {
		t.Fatal("a span context was built with tracing off")
	}
	if statements.Load() != before+1 {
		t.Fatal("the statement was not counted")
	}
	if n := testing.AllocsPerRun(100, func() { (queryTracer{}).TraceQueryStart(ctx, nil, d) }); n != 0 {
		t.Fatalf("%v allocations per query with tracing off, want 0", n)
	}
}
