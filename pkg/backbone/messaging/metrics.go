package messaging

import (
	"github.com/prometheus/client_golang/prometheus"
)

type routerMetrics struct {
	handled  *prometheus.CounterVec
	duration *prometheus.HistogramVec
	waits    *prometheus.CounterVec
}

func newRouterMetrics() *routerMetrics {
	return &routerMetrics{
		handled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "leadflow_messages_handled_total",
			Help: "Deliveries handled per consumer and outcome (ack, nak, dead_letter).",
		}, []string{"consumer", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "leadflow_handler_seconds",
			Help:    "Time spent handling one delivery, per consumer.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12),
		}, []string{"consumer"}),
		waits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "leadflow_stage_waits_total",
			Help: "Times a handler waited (outage, rate limit, credits) holding its message in progress instead of failing, per consumer and reason.",
		}, []string{"consumer", "reason"}),
	}
}

// Instrument registers the router's per-stage counts and latencies.
func (r *Router) Instrument(reg prometheus.Registerer) {
	if reg == nil {
		return
	}
	reg.MustRegister(r.metrics.handled, r.metrics.duration, r.metrics.waits)
}
