package ports

import (
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/leadflow/leadflow/pkg/backbone/events"
)

// Metrics are ingest's counters: requests, publishes and duplicates.
type Metrics struct {
	requests   *prometheus.CounterVec
	latency    *prometheus.HistogramVec
	published  *prometheus.CounterVec
	duplicates *prometheus.CounterVec
}

// NewMetrics registers ingest's metrics on reg (nil = unregistered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "leadflow_http_requests_total",
			Help: "HTTP requests by route and status code."}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "leadflow_http_request_seconds",
			Help: "HTTP latency by route.", Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 12)}, []string{"route"}),
		published: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "leadflow_leads_published_total",
			Help: "lead.received events published, by source."}, []string{"source"}),
		duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "leadflow_leads_duplicate_total",
			Help: "Triggers and webhooks answered as duplicates, by source."}, []string{"source"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.latency, m.published, m.duplicates)
	}
	return m
}

// Published counts a publish.
func (m *Metrics) Published(s events.Source) { m.published.WithLabelValues(string(s)).Inc() }

// Duplicate counts a duplicate.
func (m *Metrics) Duplicate(s events.Source) { m.duplicates.WithLabelValues(string(s)).Inc() }

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection (the console's
// live updates flush through it).
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (m *Metrics) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		// The route pattern, not the path: lead ids would explode cardinality.
		route := "unmatched"
		if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
			route = rc.RoutePattern()
		}
		m.requests.WithLabelValues(route, strconv.Itoa(rec.status)).Inc()
		m.latency.WithLabelValues(route).Observe(time.Since(start).Seconds())
	})
}
