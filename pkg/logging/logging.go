// Package logging sets up zerolog JSON logs for every service and is the one
// place personal data is masked before it reaches a log line.
package logging

import (
	"context"
	"io"
	"os"
	"strings"

	"github.com/rs/zerolog"
)

// zerolog's time format is global: set it once, before any logger runs.
func init() { zerolog.TimeFieldFormat = "2006-01-02T15:04:05.000Z07:00" }

// New returns a JSON logger stamped with the service name.
func New(service, level string, w io.Writer) zerolog.Logger {
	if w == nil {
		w = os.Stderr
	}
	lvl, err := zerolog.ParseLevel(strings.ToLower(level))
	if err != nil || level == "" {
		lvl = zerolog.InfoLevel
	}
	return zerolog.New(w).Level(lvl).Hook(traceHook{}).With().Timestamp().Str("service", service).Logger()
}

// ValidLevel reports whether s names a zerolog level.
func ValidLevel(s string) bool {
	_, err := zerolog.ParseLevel(strings.ToLower(s))
	return err == nil
}

type correlationKey struct{}

// WithCorrelationID stores the correlation id in ctx.
func WithCorrelationID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, correlationKey{}, id)
}

// CorrelationID returns the id stored by WithCorrelationID.
func CorrelationID(ctx context.Context) string {
	id, _ := ctx.Value(correlationKey{}).(string)
	return id
}

// Ctx returns base enriched with the correlation id found in ctx, and bound
// to ctx so that its lines carry the trace id (traceHook).
func Ctx(ctx context.Context, base zerolog.Logger) zerolog.Logger {
	l := base.With().Ctx(ctx)
	if id := CorrelationID(ctx); id != "" {
		l = l.Str("correlation_id", id)
	}
	return l.Logger()
}
