package messaging

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/leadflow/leadflow/pkg/backbone/events"
)

// StatsCollector exports what JetStream knows of a service's durable
// consumers and of the dead letters, read when Prometheus scrapes: one
// consumer list and one stream info (subject filter leads.dlq), each
// bounded by a short timeout and reused for a few seconds so that several
// scrapers do not multiply the load. Every replica of a service exports the
// same figures; the rules aggregate them with max().
type StatsCollector struct {
	js      jetstream.JetStream
	prefix  string
	timeout time.Duration
	ttl     time.Duration

	pending, ackPending, redelivered, dlq *prometheus.Desc

	mu     sync.Mutex
	at     time.Time
	cached []prometheus.Metric
}

// NewStatsCollector reads the consumers of service (durables named
// "<service>__...").
func NewStatsCollector(js jetstream.JetStream, service string) *StatsCollector {
	consumer := []string{"consumer"}
	return &StatsCollector{
		js: js, prefix: strings.TrimSuffix(DurableName(service, "x"), "x"), timeout: 2 * time.Second, ttl: 5 * time.Second,
		pending: prometheus.NewDesc("leadflow_consumer_pending_messages",
			"Messages stored and not yet delivered to the durable consumer (JetStream num_pending).", consumer, nil),
		ackPending: prometheus.NewDesc("leadflow_consumer_ack_pending_messages",
			"Deliveries of the durable consumer awaiting an ack (num_ack_pending).", consumer, nil),
		redelivered: prometheus.NewDesc("leadflow_consumer_redelivered_messages",
			"Deliveries of the durable consumer being redelivered (num_redelivered).", consumer, nil),
		dlq: prometheus.NewDesc("leadflow_dlq_messages",
			"Messages on "+events.SubjectDeadLetter+" in the stream (dead-letter depth).", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (s *StatsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- s.pending
	ch <- s.ackPending
	ch <- s.redelivered
	ch <- s.dlq
}

// Collect implements prometheus.Collector.
func (s *StatsCollector) Collect(ch chan<- prometheus.Metric) {
	s.mu.Lock()
	if time.Since(s.at) >= s.ttl {
		s.cached, s.at = s.read(), time.Now()
	}
	ms := s.cached
	s.mu.Unlock()
	for _, m := range ms {
		ch <- m
	}
}

// read asks JetStream; what it cannot read in time is left out (an absent
// series, never a made-up zero).
func (s *StatsCollector) read() []prometheus.Metric {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	st, err := s.js.Stream(ctx, events.StreamName)
	if err != nil {
		return nil
	}
	var out []prometheus.Metric
	if info, err := st.Info(ctx, jetstream.WithSubjectFilter(events.SubjectDeadLetter)); err == nil {
		out = append(out, prometheus.MustNewConstMetric(s.dlq, prometheus.GaugeValue, float64(info.State.Subjects[events.SubjectDeadLetter])))
	}
	list := st.ListConsumers(ctx)
	for ci := range list.Info() {
		if !strings.HasPrefix(ci.Name, s.prefix) {
			continue
		}
		out = append(out,
			prometheus.MustNewConstMetric(s.pending, prometheus.GaugeValue, float64(ci.NumPending), ci.Name),
			prometheus.MustNewConstMetric(s.ackPending, prometheus.GaugeValue, float64(ci.NumAckPending), ci.Name),
			prometheus.MustNewConstMetric(s.redelivered, prometheus.GaugeValue, float64(ci.NumRedelivered), ci.Name))
	}
	return out
}
