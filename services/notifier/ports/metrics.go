package ports

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/leadflow/leadflow/pkg/backbone/events"
)

// EndToEnd returns the notifier's observer of leadflow_lead_end_to_end_seconds:
// from the run's lead.received (run_started_at, carried by every event of
// the run) to the lead.notified of a live run whose message was posted.
// Replays, repeats (already_sent) and events without a start are not
// observed.
func EndToEnd(reg prometheus.Registerer) func(events.Envelope, events.LeadNotified) {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "leadflow_lead_end_to_end_seconds",
		Help:    "Time from lead.received to lead.notified of a run (live runs whose message was posted).",
		Buckets: []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200},
	})
	if reg != nil {
		if err := reg.Register(h); err != nil {
			if are, ok := err.(prometheus.AlreadyRegisteredError); ok {
				h = are.ExistingCollector.(prometheus.Histogram)
			}
		}
	}
	return func(env events.Envelope, out events.LeadNotified) {
		start := env.RunStart()
		if out.Status != "sent" || env.Source == events.SourceReplay || start.IsZero() {
			return
		}
		h.Observe(max(env.OccurredAt.Sub(start), 0).Seconds())
	}
}
