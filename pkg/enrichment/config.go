package enrichment

import (
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/shopspring/decimal"

	"github.com/leadflow/leadflow/pkg/clients/workapi"
	"github.com/leadflow/leadflow/pkg/config"
	"github.com/leadflow/leadflow/pkg/store/coredb"
	"github.com/leadflow/leadflow/pkg/store/pipeline"
)

// Config is the enrichment settings every service that enriches shares
// (the enricher and ingest's POST /api/v1/enrich), loaded in one place.
type Config struct {
	IncomeMultiplier decimal.Decimal
	ReuseTTL         time.Duration // a stored payload younger than this is reused
	CreditsWait      time.Duration // wait between tries while credits are out
	MaxPaidAttempts  int           // charged attempts per CPF per 24 h
}

// LoadConfig reads INCOME_MULTIPLIER, ENRICH_REUSE_TTL, ENRICH_CREDITS_PAUSE
// and WORK_API_MAX_ATTEMPTS_PER_CPF.
func LoadConfig(l *config.Loader) Config {
	return Config{
		IncomeMultiplier: l.IncomeMultiplier(),
		ReuseTTL:         l.Duration("ENRICH_REUSE_TTL", 24*time.Hour),
		CreditsWait:      l.Duration("ENRICH_CREDITS_PAUSE", 15*time.Minute),
		MaxPaidAttempts:  l.Int("WORK_API_MAX_ATTEMPTS_PER_CPF", 3, 1, 1000),
	}
}

// Persons builds the shared use case on real stores: slots bounds the paid
// calls in flight (the Work API's concurrency cap; 0 = unbounded).
func (c Config) Persons(pool *pgxpool.Pool, api *workapi.Client, slots int, reg prometheus.Registerer, log zerolog.Logger) *Persons {
	return &Persons{
		API:         WorkAPI{Client: api},
		Payloads:    pipeline.NewPayloads(pool, slots, c.MaxPaidAttempts, Charge),
		Writer:      CoreWriter{Core: coredb.NewWriter(pool, c.IncomeMultiplier)},
		Metrics:     NewMetrics(reg),
		Log:         log,
		CreditsWait: c.CreditsWait,
	}
}
