// Package service wires the notifier: configuration, clients, handlers.
package service

import (
	"context"

	"github.com/shopspring/decimal"

	"github.com/leadflow/leadflow/pkg/backbone/events"
	"github.com/leadflow/leadflow/pkg/backbone/messaging"
	"github.com/leadflow/leadflow/pkg/clients"
	"github.com/leadflow/leadflow/pkg/config"
	"github.com/leadflow/leadflow/pkg/platform"
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
		return Register(ctx, d, n, cfg)
	}
}

// NewApplication builds the use case on real clients.
func NewApplication(cfg Config, d *platform.Deps) (*app.Notifier, error) {
	port, err := cfg.C2S.Port(d.Registry, &d.Log)
	if err != nil {
		return nil, err
	}
	return &app.Notifier{
		CRM:        port,
		Ledger:     adapters.Ledger{Pool: d.Pool},
		Store:      adapters.Store{Pool: d.Pool},
		Publisher:  d.Pub,
		Multiplier: cfg.IncomeMultiplier,
		OnNotified: ports.EndToEnd(d.Registry),
	}, nil
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
