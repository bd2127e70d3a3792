// Package service wires the enricher: configuration, clients, handlers.
package service

import (
	"context"
	"time"

	"github.com/leadflow/leadflow/pkg/backbone/events"
	"github.com/leadflow/leadflow/pkg/backbone/messaging"
	"github.com/leadflow/leadflow/pkg/clients"
	"github.com/leadflow/leadflow/pkg/config"
	"github.com/leadflow/leadflow/pkg/enrichment"
	"github.com/leadflow/leadflow/pkg/platform"
	"github.com/leadflow/leadflow/pkg/store/runs"
	"github.com/leadflow/leadflow/services/enricher/adapters"
	"github.com/leadflow/leadflow/services/enricher/app"
	"github.com/leadflow/leadflow/services/enricher/ports"
)

// Name is the service name in logs, metrics and durable consumer names.
const Name = "enricher"

// Config is the enricher's environment.
type Config struct {
	Common     platform.Common
	WorkAPI    clients.WorkAPIConfig
	Enrichment enrichment.Config
	Workers    int
}

// LoadConfig reads the environment, naming every problem at once.
func LoadConfig(l *config.Loader) (Config, error) {
	c := Config{
		Common:     platform.LoadCommon(l, Name),
		WorkAPI:    clients.LoadWorkAPI(l),
		Enrichment: enrichment.LoadConfig(l),
		Workers:    l.Int("ENRICHER_WORKERS", 32, 1, 1024),
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
		// Warm connections before the consumer subscribes (ready).
		if err := d.Warm(ctx, append(e.Persons.Warmers(), runs.WarmRecord)...); err != nil {
			return err
		}
		return Register(ctx, d, e, cfg)
	}
}

// NewApplication builds the use case on real clients.
func NewApplication(cfg Config, d *platform.Deps) (*app.Enricher, error) {
	api, err := cfg.WorkAPI.Client(d.Registry, &d.Log, clients.WithPool(d.Budgets))
	if err != nil {
		return nil, err
	}
	persons := cfg.Enrichment.Persons(d.Pool, api, cfg.WorkAPI.Policy.MaxConcurrent, d.Registry, d.Log)
	return &app.Enricher{
		Persons:   persons,
		Store:     adapters.Store{Pool: d.Pool, Writer: persons.Writer.(enrichment.BatchWriter)},
		Publisher: d.Pub,
		ReuseTTL:  cfg.Enrichment.ReuseTTL,
	}, nil
}

// Register subscribes the enricher to lead.resolved. Running out of credits
// is waited out inside the handler (pkg/enrichment), not retried into a wall.
func Register(ctx context.Context, d *platform.Deps, e *app.Enricher, cfg Config) error {
	// A delivery may wait for the paced, paid Work API: the ack wait covers
	// its timeout and retries so JetStream never redelivers a message that
	// is still being enriched.
	p := cfg.WorkAPI.Policy
	spec := messaging.DefaultConsumerSpec(Name, events.SubjectResolved).
		WithAckWait(p.Timeout*time.Duration(p.MaxRetries+1) + time.Minute)
	spec.Workers = cfg.Workers
	// Out of credits: the consumer is paused server-side, so no replica
	// takes new work, while the leads in hand wait in progress.
	e.Persons.OnCreditsOut = func(ctx context.Context, wait time.Duration) {
		if wait <= 0 {
			wait = time.Minute
		}
		if err := messaging.PauseConsumer(ctx, d.JS, spec, wait); err != nil {
			d.Log.Error().Err(err).Msg("could not pause the consumer")
		}
	}
	return d.Consume(ctx, spec, ports.Handlers{Enricher: e}.LeadResolved)
}
