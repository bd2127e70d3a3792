// Package clients builds the third-party clients from the environment:
// URLs and secrets from RUN.md, and per-upstream resilience overrides
// (<PREFIX>_TIMEOUT, _MAX_RETRIES, _RATE, _BURST, _CONCURRENCY) on top of the
// defaults in pkg/clients/httpx.
//
// Rate limits belong to the upstream credential, not to a process. Given a
// Postgres pool (WithPool), every client draws from its credential's rate
// budget shared by all processes and replicas (pkg/store/budget): C2S
// direct and the C2S gateway spend one budget for the C2S token (C2S_RATE,
// C2S_BURST), the Work API one for its token (WORK_API_RATE, _BURST) and
// Diretrix one for its account (DIRETRIX_RATE, _BURST). <PREFIX>_RATE=0
// disables pacing. Without a pool (tools, tests) each client paces itself
// with a process-local limiter at the same settings.
package clients

import (
	"math"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/leadflow/leadflow/pkg/clients/c2s"
	"github.com/leadflow/leadflow/pkg/clients/diretrix"
	"github.com/leadflow/leadflow/pkg/clients/httpx"
	"github.com/leadflow/leadflow/pkg/clients/workapi"
	"github.com/leadflow/leadflow/pkg/config"
	"github.com/leadflow/leadflow/pkg/store/budget"
)

// Budget upstream names: the prefix of each budget's name and its metrics
// label (leadflow_rate_budget_*{budget=...}).
const (
	BudgetC2S      = "c2s"
	BudgetWorkAPI  = "workapi"
	BudgetDiretrix = "diretrix"
)

// Option changes how the builders below wire a client.
type Option func(*options)

type options struct{ pool *pgxpool.Pool }

// WithPool makes the clients draw from the rate budgets shared through
// Postgres (pipeline.rate_budgets) by every process and replica that uses
// the same credential. Services pass platform.Deps.Pool. A nil pool is
// ignored.
func WithPool(pool *pgxpool.Pool) Option { return func(o *options) { o.pool = pool } }

func collect(opts []Option) options {
	var o options
	for _, f := range opts {
		if f != nil {
			f(&o)
		}
	}
	return o
}

// sharedBudget is the credential's shared budget at p's rate and burst, or
// nil (no pool, or pacing disabled with rate 0).
func sharedBudget(o options, upstream, credential string, p httpx.Policy, reg prometheus.Registerer) (httpx.Limiter, error) {
	if o.pool == nil || p.Rate <= 0 {
		return nil, nil
	}
	b, err := budget.New(o.pool, budget.Config{Upstream: upstream, Credential: credential,
		Rate: p.Rate, Burst: max(p.Burst, 1), Registerer: reg})
	if err != nil {
		return nil, err
	}
	return b, nil
}

// Policy reads prefix's overrides on top of def.
func Policy(l *config.Loader, prefix string, def httpx.Policy) httpx.Policy {
	p := def
	p.Timeout = l.Duration(prefix+"_TIMEOUT", def.Timeout)
	p.MaxRetries = l.Int(prefix+"_MAX_RETRIES", def.MaxRetries, 0, 20)
	p.Rate = l.Float(prefix+"_RATE", def.Rate)
	l.Check(p.Rate >= 0 && !math.IsInf(p.Rate, 0), "%s_RATE must be a finite number of requests per second, 0 = unlimited", prefix)
	p.Burst = l.Int(prefix+"_BURST", def.Burst, 1, 100000)
	p.MaxConcurrent = l.Int(prefix+"_CONCURRENCY", def.MaxConcurrent, 0, 10000)
	l.Check(p.Timeout > 0, "%s_TIMEOUT must be positive", prefix)
	return p
}

// C2SConfig is what a service needs to reach C2S (direct and gateway).
type C2SConfig struct {
	BaseURL, Token, GatewayURL string
	Direct, Gateway            httpx.Policy
}

// LoadC2S reads C2S_BASE_URL, C2S_TOKEN, C2S_GATEWAY_URL and the policies.
func LoadC2S(l *config.Loader) C2SConfig {
	return C2SConfig{
		BaseURL:    l.URL("C2S_BASE_URL", c2s.DefaultBaseURL, false),
		Token:      l.Required("C2S_TOKEN"),
		GatewayURL: l.URL("C2S_GATEWAY_URL", "", false),
		Direct:     Policy(l, "C2S", httpx.C2SPolicy()),
		Gateway:    Policy(l, "C2S_GATEWAY", httpx.GatewayPolicy()),
	}
}

// Budget is the C2S token's shared budget (C2S_RATE, C2S_BURST), spent by
// direct calls and gateway calls alike; nil without a pool or with rate 0.
func (c C2SConfig) Budget(reg prometheus.Registerer, opts ...Option) (httpx.Limiter, error) {
	return sharedBudget(collect(opts), BudgetC2S, c.Token, c.Direct, reg)
}

// Port builds the C2S port: gateway first when configured, direct otherwise.
// With WithPool both routes draw from the C2S token's shared budget (the
// gateway spends the same token); C2S_GATEWAY_RATE and _BURST then only
// apply without a pool or with C2S_RATE=0.
func (c C2SConfig) Port(reg prometheus.Registerer, log *zerolog.Logger, opts ...Option) (*c2s.Route, error) {
	lim, err := c.Budget(reg, opts...)
	if err != nil {
		return nil, err
	}
	o := httpx.Options{Registerer: reg, Logger: log, Limiter: lim}
	direct, err := c2s.New(c2s.Config{BaseURL: c.BaseURL, Token: c.Token, Policy: c.Direct, Options: o})
	if err != nil {
		return nil, err
	}
	var gw *c2s.Gateway
	if c.GatewayURL != "" {
		if gw, err = c2s.NewGateway(c2s.GatewayConfig{BaseURL: c.GatewayURL, Policy: c.Gateway, Options: o}); err != nil {
			return nil, err
		}
	}
	return c2s.NewRoute(direct, gw, c2s.RouteOptions{Logger: log, Registerer: reg})
}

// DirectClient builds only the direct C2S client (webhook subscriptions),
// on the C2S token's shared budget with WithPool.
func (c C2SConfig) DirectClient(reg prometheus.Registerer, log *zerolog.Logger, opts ...Option) (*c2s.Client, error) {
	lim, err := c.Budget(reg, opts...)
	if err != nil {
		return nil, err
	}
	return c2s.New(c2s.Config{BaseURL: c.BaseURL, Token: c.Token, Policy: c.Direct,
		Options: httpx.Options{Registerer: reg, Logger: log, Limiter: lim}})
}

// DiretrixConfig reaches Diretrix.
type DiretrixConfig struct {
	BaseURL, User, Pass string
	Policy              httpx.Policy
}

// LoadDiretrix reads DIRETRIX_* variables.
func LoadDiretrix(l *config.Loader) DiretrixConfig {
	return DiretrixConfig{
		BaseURL: l.URL("DIRETRIX_BASE_URL", "", true),
		User:    l.Required("DIRETRIX_USER"),
		Pass:    l.Required("DIRETRIX_PASS"),
		Policy:  Policy(l, "DIRETRIX", httpx.DiretrixPolicy()),
	}
}

// Client builds the Diretrix client; with WithPool it draws from the
// account's shared budget (keyed by DIRETRIX_USER: the account, not the
// password, is what Diretrix paces).
func (c DiretrixConfig) Client(reg prometheus.Registerer, log *zerolog.Logger, opts ...Option) (*diretrix.Client, error) {
	lim, err := sharedBudget(collect(opts), BudgetDiretrix, c.User, c.Policy, reg)
	if err != nil {
		return nil, err
	}
	return diretrix.New(diretrix.Config{BaseURL: c.BaseURL, User: c.User, Pass: c.Pass, Policy: c.Policy,
		Options: httpx.Options{Registerer: reg, Logger: log, Limiter: lim}})
}

// WorkAPIConfig reaches the paid Work API.
type WorkAPIConfig struct {
	URL, Token string
	Policy     httpx.Policy
}

// LoadWorkAPI reads WORK_API_URL, WORK_API_KEY (alias WORK_API) and the policy.
func LoadWorkAPI(l *config.Loader) WorkAPIConfig {
	return WorkAPIConfig{
		URL:    l.URL("WORK_API_URL", workapi.DefaultURL, false),
		Token:  l.Required("WORK_API_KEY", "WORK_API"),
		Policy: Policy(l, "WORK_API", httpx.WorkAPIPolicy()),
	}
}

// Client builds the Work API client; with WithPool it draws from the
// account token's shared budget.
func (c WorkAPIConfig) Client(reg prometheus.Registerer, log *zerolog.Logger, opts ...Option) (*workapi.Client, error) {
	lim, err := sharedBudget(collect(opts), BudgetWorkAPI, c.Token, c.Policy, reg)
	if err != nil {
		return nil, err
	}
	return workapi.New(workapi.Config{URL: c.URL, Token: c.Token, Policy: c.Policy,
		Options: httpx.Options{Registerer: reg, Logger: log, Limiter: lim}})
}
