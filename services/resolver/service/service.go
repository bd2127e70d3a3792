// Package service wires the resolver: configuration, clients, handlers.
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
	"github.com/leadflow/leadflow/pkg/store"
	"github.com/leadflow/leadflow/pkg/store/pipeline"
	"github.com/leadflow/leadflow/services/resolver/adapters"
	"github.com/leadflow/leadflow/services/resolver/app"
	"github.com/leadflow/leadflow/services/resolver/ports"
)

// Name is the service name in logs, metrics and durable consumer names.
const Name = "resolver"

// Config is the resolver's environment.
type Config struct {
	Common        platform.Common
	C2S           clients.C2SConfig
	Diretrix      clients.DiretrixConfig
	LookupTimeout time.Duration
	Workers       int
}

// LoadConfig reads the environment, naming every problem at once.
func LoadConfig(l *config.Loader) (Config, error) {
	c := Config{
		Common:        platform.LoadCommon(l, Name),
		C2S:           clients.LoadC2S(l),
		Diretrix:      clients.LoadDiretrix(l),
		LookupTimeout: l.Duration("RESOLVER_LOOKUP_TIMEOUT", 20*time.Second),
		Workers:       l.Int("RESOLVER_WORKERS", 32, 1, 1024),
	}
	return c, l.Err()
}

// Service describes this service for its main and for the local stack.
var Service = platform.Describe(Name, LoadConfig, func(c Config) platform.Common { return c.Common }, Setup)

// Setup wires the service onto its connections.
func Setup(cfg Config) platform.Setup {
	return func(ctx context.Context, d *platform.Deps) error {
		resolver, err := NewApplication(cfg, d)
		if err != nil {
			return err
		}
		// Warm connections before the consumer subscribes (ready); the
		// resolution's batch carries the trace step.
		if err := d.Warm(ctx, pipeline.WarmResolution); err != nil {
			return err
		}
		return Register(ctx, d, resolver, cfg.Workers)
	}
}

// NewApplication builds the use case on real clients. Component tests call
// it with a Config pointing at the simulators.
func NewApplication(cfg Config, d *platform.Deps) (*app.Resolver, error) {
	port, err := cfg.C2S.Port(d.Registry, &d.Log, clients.WithPool(d.Budgets))
	if err != nil {
		return nil, err
	}
	dir, err := cfg.Diretrix.Client(d.Registry, &d.Log, clients.WithPool(d.Budgets))
	if err != nil {
		return nil, err
	}
	// Leads resolved at the same time share their look-ups' round trip and
	// their resolutions' commit.
	ids := pipeline.Identities{Pool: d.Pool, Group: store.NewGroup(d.Pool, max(cfg.Workers, 1))}
	return &app.Resolver{
		Identity: &enrichment.Identity{
			Directory:     enrichment.Diretrix{Client: dir},
			Records:       ids,
			LookupTimeout: cfg.LookupTimeout,
		},
		Leads:     port,
		Store:     adapters.Store{Identities: ids},
		Publisher: d.Pub,
	}, nil
}

// Register subscribes the resolver to lead.received.
func Register(ctx context.Context, d *platform.Deps, r *app.Resolver, workers int) error {
	spec := messaging.DefaultConsumerSpec(Name, events.SubjectReceived)
	spec.Workers = workers
	return d.Consume(ctx, spec, ports.Handlers{Resolver: r}.LeadReceived)
}
