// Package c2sport is the one C2S port the services use. With a gateway
// configured it goes through the gateway first and falls back to direct C2S
// only on a transient failure (connection error, timeout, 5xx, open
// breaker); a 4xx, 404 or 429 from the gateway is C2S's answer and is
// returned as is.
package c2s

import (
	"context"
	"errors"

	"github.com/leadflow/leadflow/pkg/backbone/failure"
	"github.com/leadflow/leadflow/pkg/clients/httpx"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// Routes reported by PostMessage.
const (
	RouteGateway = "gateway"
	RouteDirect  = "direct"
)

// RouteOptions are optional.
type RouteOptions struct {
	Logger     *zerolog.Logger       // nil = silent
	Registerer prometheus.Registerer // nil = counter not registered
}

// Route routes C2S operations.
type Route struct {
	direct    *Client
	gw        *Gateway
	log       zerolog.Logger
	fallbacks *prometheus.CounterVec
}

// NewRoute builds the route. direct is required; gw nil means direct only.
func NewRoute(direct *Client, gw *Gateway, o RouteOptions) (*Route, error) {
	if direct == nil {
		return nil, errors.New("c2sport: direct C2S client is required")
	}
	p := &Route{
		direct: direct,
		gw:     gw,
		log:    zerolog.Nop(),
		fallbacks: httpx.RegisterCounterVec(o.Registerer, prometheus.CounterOpts{
			Name: "leadflow_c2s_gateway_fallback_total",
			Help: "C2S operations that fell back from the gateway to direct C2S after a transient gateway failure.",
		}, "op"),
	}
	if o.Logger != nil {
		p.log = o.Logger.With().Str("component", "c2sport").Logger()
	}
	for _, op := range []string{"get_lead", "post_message", "update_lead"} {
		if gw != nil {
			p.fallbacks.WithLabelValues(op) // at zero, so increase() sees the first
		}
	}
	return p, nil
}

// HasGateway reports whether the gateway route is configured.
func (p *Route) HasGateway() bool { return p.gw != nil }

// GetLead fetches a lead.
func (p *Route) GetLead(ctx context.Context, id string) (*Lead, error) {
	if p.gw != nil {
		l, err := p.gw.GetLead(ctx, id)
		if !p.fallback(ctx, "get_lead", id, err) {
			return l, err
		}
	}
	return p.direct.GetLead(ctx, id)
}

// PostMessage posts body on the lead and reports the route that answered
// (RouteGateway or RouteDirect), also on error.
func (p *Route) PostMessage(ctx context.Context, leadID, body string) (string, error) {
	if p.gw != nil {
		err := p.gw.AddMessage(ctx, leadID, body)
		if !p.fallback(ctx, "post_message", leadID, err) {
			return RouteGateway, err
		}
	}
	return RouteDirect, p.direct.CreateMessage(ctx, leadID, body)
}

// UpdateLead updates lead attributes.
func (p *Route) UpdateLead(ctx context.Context, id string, attrs map[string]any) error {
	if p.gw != nil {
		err := p.gw.UpdateLead(ctx, id, attrs)
		if !p.fallback(ctx, "update_lead", id, err) {
			return err
		}
	}
	return p.direct.UpdateLead(ctx, id, attrs)
}

// fallback decides, logs and counts. The caller's own cancellation is not a
// gateway failure.
func (p *Route) fallback(ctx context.Context, op, leadID string, err error) bool {
	if err == nil || ctx.Err() != nil || failure.KindOf(err) != failure.KindTransient {
		return false
	}
	p.fallbacks.WithLabelValues(op).Inc()
	// Lead ids are opaque C2S ids, not personal data; err carries only op,
	// kind and HTTP status (httpx never puts bodies or URLs with data in it).
	p.log.Warn().Ctx(ctx).Str("op", op).Str("lead_id", leadID).
		Int("gateway_status", httpx.StatusOf(err)).
		Bool("breaker_open", errors.Is(err, httpx.ErrBreakerOpen)).
		Msg("c2s gateway failed transiently; falling back to direct C2S")
	return true
}
