// Package service wires ingest: configuration, stores, HTTP server.
package service

import (
	"context"
	"fmt"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/leadflow/leadflow/pkg/clients"
	"github.com/leadflow/leadflow/pkg/clients/workapi"
	"github.com/leadflow/leadflow/pkg/config"
	"github.com/leadflow/leadflow/pkg/enrichment"
	"github.com/leadflow/leadflow/pkg/ops"
	"github.com/leadflow/leadflow/pkg/platform"
	"github.com/leadflow/leadflow/pkg/store/coredb"
	"github.com/leadflow/leadflow/pkg/store/pipeline"
	"github.com/leadflow/leadflow/pkg/store/runs"
	"github.com/leadflow/leadflow/services/ingest/adapters"
	"github.com/leadflow/leadflow/services/ingest/app"
	"github.com/leadflow/leadflow/services/ingest/ports"
	"github.com/leadflow/leadflow/services/ingest/ports/console"
)

// Name is the service name in logs and metrics.
const Name = "ingest"

// Config is ingest's environment.
type Config struct {
	Common        platform.Common
	Port          int
	WebhookSecret string
	APIKeys       []ports.APIKey
	MakeWindow    time.Duration
	C2S           clients.C2SConfig
	WorkAPI       clients.WorkAPIConfig
	// Diretrix is optional here (RUN.md requires DIRETRIX_* of the resolver
	// only): without it POST /api/v1/enrich answers 503 for phone and email.
	Diretrix   *clients.DiretrixConfig
	Enrichment enrichment.Config
}

// LoadConfig reads the environment, naming every problem at once.
func LoadConfig(l *config.Loader) (Config, error) {
	c := Config{
		Common:        ingestCommon(l),
		Port:          l.Int("PORT", 8080, 1, 65535),
		WebhookSecret: l.Required("WEBHOOK_SECRET"),
		MakeWindow:    l.Duration("MAKE_DEDUPE_WINDOW", 5*time.Minute),
		C2S:           clients.LoadC2S(l),
		WorkAPI:       clients.LoadWorkAPI(l),
		// The same variables and defaults as the enricher: POST /api/v1/enrich
		// follows the pipeline's paid-call and writing rules.
		Enrichment: enrichment.LoadConfig(l),
	}
	keys, err := ports.ParseAPIKeys(l.List("API_KEYS", true))
	l.Check(err == nil, "%v", err)
	c.APIKeys = keys
	if l.String("DIRETRIX_BASE_URL", "") != "" {
		d := clients.LoadDiretrix(l)
		c.Diretrix = &d
	}
	l.Check(c.Port != c.Common.HealthPort && c.Port != c.Common.MetricsPort, "PORT must differ from HEALTH_PORT and METRICS_PORT")
	return c, l.Err()
}

// Service describes this service for its main and for the local stack.
var Service = platform.Describe(Name, LoadConfig, func(c Config) platform.Common { return c.Common }, Setup)

// Setup wires the service onto its connections.
func Setup(cfg Config) platform.Setup {
	return func(ctx context.Context, d *platform.Deps) error {
		srv, err := NewServer(cfg, d)
		if err != nil {
			return err
		}
		srv.UI = newConsole(ctx, cfg, d)
		// The webhook's statements run, rolled back, on every connection
		// before ingest listens: the first webhooks answer as fast as the
		// rest.
		if err := d.Warm(ctx, adapters.WarmWebhook); err != nil {
			return err
		}
		d.AddServer(fmt.Sprintf(":%d", cfg.Port), srv.Routes())
		return nil
	}
}

// NewServer builds the HTTP surface on real stores and clients.
func NewServer(cfg Config, d *platform.Deps) (*ports.Server, error) {
	work, err := cfg.WorkAPI.Client(d.Registry, &d.Log, clients.WithPool(d.Budgets))
	if err != nil {
		return nil, err
	}
	metrics := ports.NewMetrics(d.Registry)
	runStore := runs.New(d.Pool)
	enrich, err := newEnrich(cfg, d, work)
	if err != nil {
		return nil, err
	}
	intake := &app.Intake{
		Receipts:    adapters.NewReceipts(d.Pool),
		UoW:         adapters.UnitOfWork{Pool: d.Pool},
		Publisher:   d.Pub,
		Runs:        runStore,
		MakeWindow:  cfg.MakeWindow,
		OnPublished: metrics.Published,
		OnDuplicate: metrics.Duplicate,
	}
	return &ports.Server{
		Intake:        intake,
		Enrich:        enrich,
		Traces:        runStore,
		Customers:     coredb.NewReader(d.Pool),
		Work:          work,
		WebhookSecret: cfg.WebhookSecret,
		APIKeys:       cfg.APIKeys,
		Log:           d.Log,
		Metrics:       metrics,
		Health:        func(r chi.Router) { d.HealthRoutes(r) },
		// Operator API (replay, dead letters): the same code as leadflowctl.
		Extra: ports.Admin{Ops: &ops.Ops{JS: d.JS, Pool: d.Pool, Pub: d.Pub}, Log: d.Log}.Routes,
	}, nil
}

// newConsole wires the operator's console (/ui) onto the same pkg/ops code
// and trace as the admin API; ctx ends its live streams and replays.
func newConsole(ctx context.Context, cfg Config, d *platform.Deps) *console.Console {
	o := &ops.Ops{JS: d.JS, Pool: d.Pool, Pub: d.Pub}
	return console.New(ctx, console.Config{
		Keys:      ports.APIKeys(cfg.APIKeys),
		Ops:       o,
		Runs:      runs.New(d.Pool),
		Uncertain: adapters.ConsoleUncertain{Ops: o},
		Log:       d.Log,
	})
}

// newEnrich wires POST /api/v1/enrich onto pkg/enrichment, the same use
// case the resolver and the enricher run (no second copy of their rules).
func newEnrich(cfg Config, d *platform.Deps, work *workapi.Client) (*app.Enrich, error) {
	e := &app.Enrich{
		Persons:   cfg.Enrichment.Persons(d.Pool, work, cfg.WorkAPI.Policy.MaxConcurrent, d.Registry, d.Log),
		Customers: coredb.NewReader(d.Pool),
		ReuseTTL:  cfg.Enrichment.ReuseTTL,
	}
	if cfg.Diretrix != nil {
		dir, err := cfg.Diretrix.Client(d.Registry, &d.Log, clients.WithPool(d.Budgets))
		if err != nil {
			return nil, err
		}
		e.Resolver = &enrichment.Identity{
			Directory: enrichment.Diretrix{Client: dir},
			Records:   pipeline.Identities{Pool: d.Pool},
		}
	}
	return e, nil
}

// ingestCommon: ingest's writes (receipts, run starts) are redone by any
// retry of the webhook, so they do not wait for the WAL flush; that is what
// lets ingest ack thousands of webhooks a second. Its pool keeps custom
// plans, for the console.
// Its /health, /ready and /metrics are on PORT, and on METRICS_PORT (9090)
// for Prometheus; HEALTH_PORT adds them on a third port only when set.
func ingestCommon(l *config.Loader) platform.Common {
	c := platform.LoadCommonWith(l, Name, platform.Ports{Metrics: platform.DefaultMetricsPort})
	c.AsyncCommit = true
	// The console's filters ("any status, or this one") plan well only
	// with the values in hand.
	c.CustomPlans = true
	// The edge takes bursts of concurrent webhooks: the runtime's
	// GOMAXPROCS, not one P.
	c.RuntimeMaxProcs = true
	return c
}
