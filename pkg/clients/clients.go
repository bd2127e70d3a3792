// Package upstreams builds the third-party clients from the environment:
// URLs and secrets from RUN.md, and per-upstream resilience overrides
// (<PREFIX>_TIMEOUT, _MAX_RETRIES, _RATE, _BURST, _CONCURRENCY) on top of the
// defaults in pkg/httpx.
package clients

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/leadflow/leadflow/pkg/clients/c2s"
	"github.com/leadflow/leadflow/pkg/clients/diretrix"
	"github.com/leadflow/leadflow/pkg/clients/httpx"
	"github.com/leadflow/leadflow/pkg/clients/workapi"
	"github.com/leadflow/leadflow/pkg/config"
)

// Policy reads prefix's overrides on top of def.
func Policy(l *config.Loader, prefix string, def httpx.Policy) httpx.Policy {
	p := def
	p.Timeout = l.Duration(prefix+"_TIMEOUT", def.Timeout)
	p.MaxRetries = l.Int(prefix+"_MAX_RETRIES", def.MaxRetries, 0, 20)
	p.Rate = l.Float(prefix+"_RATE", def.Rate)
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

// Port builds the C2S port: gateway first when configured, direct otherwise.
func (c C2SConfig) Port(reg prometheus.Registerer, log *zerolog.Logger) (*c2s.Route, error) {
	opts := httpx.Options{Registerer: reg, Logger: log}
	direct, err := c2s.New(c2s.Config{BaseURL: c.BaseURL, Token: c.Token, Policy: c.Direct, Options: opts})
	if err != nil {
		return nil, err
	}
	var gw *c2s.Gateway
	if c.GatewayURL != "" {
		if gw, err = c2s.NewGateway(c2s.GatewayConfig{BaseURL: c.GatewayURL, Policy: c.Gateway, Options: opts}); err != nil {
			return nil, err
		}
	}
	return c2s.NewRoute(direct, gw, c2s.RouteOptions{Logger: log, Registerer: reg})
}

// Direct builds only the direct C2S client (webhook subscriptions).
func (c C2SConfig) DirectClient(reg prometheus.Registerer, log *zerolog.Logger) (*c2s.Client, error) {
	return c2s.New(c2s.Config{BaseURL: c.BaseURL, Token: c.Token, Policy: c.Direct, Options: httpx.Options{Registerer: reg, Logger: log}})
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

// Client builds the Diretrix client.
func (c DiretrixConfig) Client(reg prometheus.Registerer, log *zerolog.Logger) (*diretrix.Client, error) {
	return diretrix.New(diretrix.Config{BaseURL: c.BaseURL, User: c.User, Pass: c.Pass, Policy: c.Policy,
		Options: httpx.Options{Registerer: reg, Logger: log}})
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

// Client builds the Work API client.
func (c WorkAPIConfig) Client(reg prometheus.Registerer, log *zerolog.Logger) (*workapi.Client, error) {
	return workapi.New(workapi.Config{URL: c.URL, Token: c.Token, Policy: c.Policy,
		Options: httpx.Options{Registerer: reg, Logger: log}})
}
