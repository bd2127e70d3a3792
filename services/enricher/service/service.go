// Package service wires the enricher: configuration, clients, handlers.
package service

import (
	"context"
	"time"

	"github.com/shopspring/decimal"

	"github.com/leadflow/leadflow/pkg/backbone/events"
	"github.com/leadflow/leadflow/pkg/backbone/messaging"
	"github.com/leadflow/leadflow/pkg/clients"
	"github.com/leadflow/leadflow/pkg/config"
	"github.com/leadflow/leadflow/pkg/platform"
	"github.com/leadflow/leadflow/pkg/store/coredb"
	"github.com/leadflow/leadflow/services/enricher/adapters"
	"github.com/leadflow/leadflow/services/enricher/app"
	"github.com/leadflow/leadflow/services/enricher/ports"
)

// Name is the service name in logs, metrics and durable consumer names.
const Name = "enricher"

// Config is the enricher's environment.
type Config struct {
	Common           platform.Common
	WorkAPI          clients.WorkAPIConfig
	IncomeMultiplier decimal.Decimal
	ReuseTTL         time.Duration
	CreditsPause     time.Duration
	Workers          int
}

// LoadConfig reads the environment, naming every problem at once.
func LoadConfig(l *config.Loader) (Config, error) {
	c := Config{
		Common:           platform.LoadCommon(l, Name),
		WorkAPI:          clients.LoadWorkAPI(l),
		IncomeMultiplier: l.Decimal("INCOME_MULTIPLIER", "1.9"),
		ReuseTTL:         l.Duration("ENRICH_REUSE_TTL", 24*time.Hour),
		CreditsPause:     l.Duration("ENRICH_CREDITS_PAUSE", 15*time.Minute),
		Workers:          l.Int("ENRICHER_WORKERS", 32, 1, 1024),
	}
	return c, l.Err()
}

// Service describes this service for its main and for the local stack.
var Service = platform.Describe(Name, LoadConfig, func(c Config) platform.Common { return c.Common }, Setup)

// Setup wires the service onto its connections.
func Setup(cfg Config) platform.Setup {
	return func(ctx context.Context, d *platform.Deps) error {
		e, err := NewApplication(cfg, d)
		if err != nil {
			return err
		}
		return Register(ctx, d, e, cfg)
	}
}

// NewApplication builds the use case on real clients.
func NewApplication(cfg Config, d *platform.Deps) (*app.Enricher, error) {
	api, err := cfg.WorkAPI.Client(d.Registry, &d.Log)
	if err != nil {
		return nil, err
	}
	return &app.Enricher{
		API:       adapters.WorkAPI{Client: api},
		Payloads:  adapters.NewPayloads(d.Pool, cfg.WorkAPI.Policy.MaxConcurrent),
		Writer:    adapters.Writer{Core: coredb.NewWriter(d.Pool, cfg.IncomeMultiplier)},
		Store:     adapters.Store{Pool: d.Pool},
		Publisher: d.Pub,
		ReuseTTL:  cfg.ReuseTTL,
		Metrics:   app.NewMetrics(d.Registry),
		Log:       d.Log,
	}, nil
}

// Register subscribes the enricher to lead.resolved. Running out of credits
// pauses the consumer server-side instead of retrying into a wall.
func Register(ctx context.Context, d *platform.Deps, e *app.Enricher, cfg Config) error {
	// A delivery may wait for the paced, paid Work API: the ack wait covers
	// its timeout and retries so JetStream never redelivers a message that
	// is still being enriched.
	p := cfg.WorkAPI.Policy
	spec := messaging.DefaultConsumerSpec(Name, events.SubjectResolved).
		WithAckWait(p.Timeout*time.Duration(p.MaxRetries+1) + time.Minute)
	spec.Workers = cfg.Workers
	return d.Consume(ctx, spec, ports.Handlers{Enricher: e}.LeadResolved, messaging.PauseConsumerOn(app.CreditsPause(cfg.CreditsPause)))
}
