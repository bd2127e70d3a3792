// Package service wires the notifier: configuration, clients, handlers.
package service

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/shopspring/decimal"

	"github.com/leadflow/leadflow/pkg/backbone/events"
	"github.com/leadflow/leadflow/pkg/backbone/messaging"
	"github.com/leadflow/leadflow/pkg/clients"
	"github.com/leadflow/leadflow/pkg/clients/c2s"
	"github.com/leadflow/leadflow/pkg/clients/httpx"
	"github.com/leadflow/leadflow/pkg/config"
	"github.com/leadflow/leadflow/pkg/platform"
	"github.com/leadflow/leadflow/pkg/store/ledger"
	"github.com/leadflow/leadflow/pkg/store/runs"
	"github.com/leadflow/leadflow/services/notifier/adapters"
	"github.com/leadflow/leadflow/services/notifier/app"
	"github.com/leadflow/leadflow/services/notifier/ports"
)

// Name is the service name in logs, metrics and durable consumer names.
const Name = "notifier"

// Config is the notifier's environment.
type Config struct {
	Common           platform.Common
	C2S              clients.C2SConfig
	IncomeMultiplier decimal.Decimal
	NotifyUnresolved bool
	Workers          int
}

// LoadConfig reads the environment, naming every problem at once.
func LoadConfig(l *config.Loader) (Config, error) {
	c := Config{
		Common:           platform.LoadCommon(l, Name),
		C2S:              clients.LoadC2S(l),
		IncomeMultiplier: l.IncomeMultiplier(),
		NotifyUnresolved: l.Bool("NOTIFY_UNRESOLVED", false),
		Workers:          l.Int("NOTIFIER_WORKERS", 32, 1, 1024),
	}
	return c, l.Err()
}

// Service describes this service for its main and for the local stack.
var Service = platform.Describe(Name, LoadConfig, func(c Config) platform.Common { return c.Common }, Setup)

// Setup wires the service onto its connections.
func Setup(cfg Config) platform.Setup {
	return func(ctx context.Context, d *platform.Deps) error {
		n, err := NewApplication(cfg, d)
		if err != nil {
			return err
		}
		// Warm connections before the consumer subscribes (ready).
		if err := d.Warm(ctx, ledger.Warm, runs.WarmRecord); err != nil {
			return err
		}
		return Register(ctx, d, n, cfg)
	}
}

// NewApplication builds the use case on real clients.
func NewApplication(cfg Config, d *platform.Deps) (*app.Notifier, error) {
	port, err := cfg.C2S.Port(d.Registry, &d.Log, clients.WithPool(d.Budgets))
	if err != nil {
		return nil, err
	}
	m := NewMetrics(d.Registry, d.Pool)
	budget := port.Budget()
	// The post itself needs room before the try's deadline.
	room := max(cfg.C2S.Direct.Timeout, cfg.C2S.Gateway.Timeout)
	return &app.Notifier{
		CRM:         port,
		Slot:        func(ctx context.Context) (context.Context, error) { return httpx.Reserve(ctx, budget, room) },
		Ledger:      adapters.Ledger{Pool: d.Pool},
		Store:       adapters.Store{Pool: d.Pool},
		Publisher:   d.Pub,
		Multiplier:  cfg.IncomeMultiplier,
		OnUncertain: m.Uncertain,
		OnNotified:  ports.EndToEnd(d.Registry),
	}, nil
}

// Metrics are the notifier's own metrics.
type Metrics struct {
	uncertain *prometheus.CounterVec
}

// NewMetrics registers leadflow_uncertain_deliveries_total (deliveries that
// became uncertain, by route) and leadflow_uncertain_deliveries_open (how
// many wait for an operator now, read from the ledger at scrape time, so
// every replica reports the same number and operator actions show at once).
func NewMetrics(reg prometheus.Registerer, pool *pgxpool.Pool) *Metrics {
	m := &Metrics{uncertain: httpx.RegisterCounterVec(reg, prometheus.CounterOpts{
		Name: "leadflow_uncertain_deliveries_total",
		Help: "Deliveries marked uncertain: a post may be on the lead and the lead lists no messages to check; an operator must confirm or repost.",
	}, "route")}
	for _, route := range []string{c2s.RouteGateway, c2s.RouteDirect} {
		m.uncertain.WithLabelValues(route) // exported at zero from the start
	}
	if reg != nil && pool != nil {
		var last atomic.Int64
		_ = reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "leadflow_uncertain_deliveries_open",
			Help: "Uncertain deliveries waiting for an operator (leadflowctl uncertain list).",
		}, func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			if n, err := ledger.CountUncertain(ctx, pool); err == nil {
				last.Store(int64(n))
			}
			return float64(last.Load())
		}))
	}
	return m
}

// Uncertain counts a delivery that became uncertain.
func (m *Metrics) Uncertain(route string) {
	if route == "" {
		route = "unknown"
	}
	m.uncertain.WithLabelValues(route).Inc()
}

// Register subscribes the notifier to lead.enriched (and lead.unresolved
// when NOTIFY_UNRESOLVED=true).
func Register(ctx context.Context, d *platform.Deps, n *app.Notifier, cfg Config) error {
	h := ports.Handlers{Notifier: n}
	spec := messaging.DefaultConsumerSpec(Name, events.SubjectEnriched)
	spec.Workers = cfg.Workers
	if err := d.Consume(ctx, spec, h.LeadEnriched); err != nil {
		return err
	}
	if cfg.NotifyUnresolved {
		spec := messaging.DefaultConsumerSpec(Name, events.SubjectUnresolved)
		spec.Workers = cfg.Workers
		return d.Consume(ctx, spec, h.LeadUnresolved)
	}
	return nil
}
