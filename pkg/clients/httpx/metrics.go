package httpx

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"
)

type metrics struct {
	calls   *prometheus.CounterVec
	retries *prometheus.CounterVec
	breaker *prometheus.CounterVec
	request *prometheus.HistogramVec
	state   *prometheus.GaugeVec
}

// outcomes are the values of leadflow_upstream_calls_total's outcome label,
// created at zero so that increase() sees the first one.
var outcomes = []string{"ok", "not_found", "transient", "rate_limited", "unauthorized", "permanent", "credits_exhausted", "breaker_open"}

func newMetrics(reg prometheus.Registerer) *metrics {
	return &metrics{
		calls: RegisterCounterVec(reg, prometheus.CounterOpts{
			Name: "leadflow_upstream_calls_total",
			Help: "Upstream calls by final outcome (ok, not_found, transient, breaker_open, ...).",
		}, "upstream", "outcome"),
		retries: RegisterCounterVec(reg, prometheus.CounterOpts{
			Name: "leadflow_upstream_retries_total",
			Help: "Upstream call retries.",
		}, "upstream"),
		breaker: RegisterCounterVec(reg, prometheus.CounterOpts{
			Name: "leadflow_upstream_breaker_transitions_total",
			Help: "Circuit breaker state changes, by the state changed to.",
		}, "upstream", "to"),
		request: register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "leadflow_upstream_request_seconds",
			Help:    "Duration of one HTTP attempt to an upstream, body included.",
			Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 45},
		}, []string{"upstream"})),
		state: register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "leadflow_upstream_breaker_state",
			Help: "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
		}, []string{"upstream"})),
	}
}

// init creates the upstream's series at zero.
func (m *metrics) init(upstream string, breaker bool) {
	for _, o := range outcomes {
		m.calls.WithLabelValues(upstream, o)
	}
	m.retries.WithLabelValues(upstream)
	m.request.WithLabelValues(upstream)
	if breaker {
		for _, s := range []gobreaker.State{gobreaker.StateClosed, gobreaker.StateHalfOpen, gobreaker.StateOpen} {
			m.breaker.WithLabelValues(upstream, s.String())
		}
		m.setState(upstream, gobreaker.StateClosed)
	}
}

func (m *metrics) setState(upstream string, s gobreaker.State) {
	v := 0.0
	switch s {
	case gobreaker.StateHalfOpen:
		v = 1
	case gobreaker.StateOpen:
		v = 2
	}
	m.state.WithLabelValues(upstream).Set(v)
}

// RegisterCounterVec registers a counter vector on reg and returns it, or the
// already registered one with the same description. reg may be nil (the
// vector then works unregistered); it never panics.
func RegisterCounterVec(reg prometheus.Registerer, opts prometheus.CounterOpts, labels ...string) *prometheus.CounterVec {
	return register(reg, prometheus.NewCounterVec(opts, labels))
}

// RegisterCounter is RegisterCounterVec for a counter without labels.
func RegisterCounter(reg prometheus.Registerer, opts prometheus.CounterOpts) prometheus.Counter {
	return register(reg, prometheus.NewCounter(opts))
}

// register registers c on reg and returns it, or the collector of the same
// description already registered there (several clients of one upstream
// share their series). reg may be nil; it never panics.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if reg == nil {
		return c
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
	}
	return c
}
