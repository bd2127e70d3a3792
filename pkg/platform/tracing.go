package platform

import (
	"context"
	"errors"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/leadflow/leadflow/pkg/backbone/messaging"
	"github.com/leadflow/leadflow/pkg/buildinfo"
	"github.com/leadflow/leadflow/pkg/config"
)

// Tracing is OpenTelemetry's configuration, from the standard OTEL_*
// variables. Tracing is on when an OTLP endpoint is set
// (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) and
// neither OTEL_SDK_DISABLED=true nor OTEL_TRACES_EXPORTER=none says
// otherwise; off, the process keeps OpenTelemetry's no-op provider. The
// other OTEL_EXPORTER_OTLP_* variables (headers, timeout, compression,
// certificates) are read and checked here too (otlp.go); the SDK reads
// OTEL_TRACES_SAMPLER(_ARG) and OTEL_BSP_*, and the resource
// OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES.
type Tracing struct {
	Enabled bool
	otlp    otlpHTTP
}

// LoadTracing checks the OTEL_* variables leadflow relies on.
func LoadTracing(l *config.Loader) Tracing {
	otlp := loadOTLP(l)
	disabled := l.Bool("OTEL_SDK_DISABLED", false)
	exporter := l.OneOf("OTEL_TRACES_EXPORTER", "otlp", "otlp", "none")
	for _, name := range []string{"OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"} {
		p := l.String(name, "http/protobuf")
		l.Check(p == "http/protobuf", "%s must be http/protobuf (the only OTLP protocol leadflow ships)", name)
	}
	return Tracing{Enabled: otlp.URL != "" && !disabled && exporter == "otlp", otlp: otlp}
}

// SetupTracing installs the process's tracer provider (OTLP over HTTP) and
// the one propagator (messaging.Propagator) when t is enabled, and returns
// the function that flushes and stops it. service names the resource
// unless OTEL_SERVICE_NAME does.
func SetupTracing(ctx context.Context, t Tracing, service string) (func(context.Context) error, error) {
	otel.SetTextMapPropagator(messaging.Propagator)
	if !t.Enabled {
		return func(context.Context) error { return nil }, nil
	}
	client, err := newOTLPClient(t.otlp)
	if err != nil {
		return nil, err
	}
	exp, err := otlptrace.New(ctx, client)
	if err != nil {
		return nil, err
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(
			attribute.String("service.name", "leadflow-"+service),
			attribute.String("service.namespace", "leadflow"),
			attribute.String("service.version", buildinfo.Get().Version),
		),
		resource.WithFromEnv(), // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win
		resource.WithTelemetrySDK(),
	)
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, err
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	otel.SetTracerProvider(tp)
	return tp.Shutdown, nil
}

// setupProcessTracing is SetupTracing for a service process (Serve): the
// environment is the process's own.
func setupProcessTracing(ctx context.Context, c Common) (func(), error) {
	shutdown, err := SetupTracing(ctx, c.Tracing, c.Service)
	if err != nil {
		return nil, err
	}
	return func() {
		// Within the 10 s a service has after SIGTERM.
		sctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
		defer cancel()
		if err := shutdown(sctx); err != nil {
			_, _ = os.Stderr.WriteString("tracing: flush failed: " + err.Error() + "\n")
		}
	}, nil
}

var httpTracer = otel.Tracer("github.com/leadflow/leadflow/pkg/platform")

// TraceHTTP is the chi middleware of a public HTTP surface: it continues an
// incoming W3C traceparent or starts a trace, and names the span by method
// and route pattern. It records the method, the route pattern and the
// status, never the path or the query (ids, phones, emails, CPFs and
// tokens travel there). Mount it inside the chi router (r.Use) so that the
// route is known.
func TraceHTTP(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := messaging.Propagator.Extract(r.Context(), propagationHeader(r.Header))
		ctx, span := httpTracer.Start(ctx, r.Method, trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attribute.String("http.request.method", r.Method)))
		defer span.End()
		rec := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r.WithContext(ctx))
		route := "unmatched"
		if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
			route = rc.RoutePattern()
		}
		span.SetName(r.Method + " " + route)
		span.SetAttributes(attribute.String("http.route", route), attribute.Int("http.response.status_code", rec.status))
		if rec.status >= 500 {
			span.SetStatus(codes.Error, http.StatusText(rec.status))
		}
	})
}

type propagationHeader http.Header

func (h propagationHeader) Get(k string) string { return http.Header(h).Get(k) }
func (h propagationHeader) Set(k, v string)     { http.Header(h).Set(k, v) }
func (h propagationHeader) Keys() []string {
	out := make([]string, 0, len(h))
	for k := range h {
		out = append(out, strings.ToLower(k))
	}
	return out
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the writer's Flush and deadlines.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }
