package httpx

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	calls   *prometheus.CounterVec
	retries *prometheus.CounterVec
	breaker *prometheus.CounterVec
}

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
			Help: "Circuit breaker state changes by new state.",
		}, "upstream", "state"),
	}
}

// RegisterCounterVec registers a counter vector on reg and returns it, or the
// already registered one with the same description. reg may be nil (the
// vector then works unregistered); it never panics.
func RegisterCounterVec(reg prometheus.Registerer, opts prometheus.CounterOpts, labels ...string) *prometheus.CounterVec {
	cv := prometheus.NewCounterVec(opts, labels)
	if reg == nil {
		return cv
	}
	if err := reg.Register(cv); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
				return existing
			}
		}
	}
	return cv
}
