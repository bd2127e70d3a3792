// Package c2sport is the one C2S port the services use. With a gateway
// configured it goes through the gateway first and falls back to direct C2S
// (gateway/API.md, "When to fall back"):
//   - reads and PATCH fall back on any transient failure (connection error,
//     timeout, 5xx, open breaker);
//   - a message post falls back only when it provably never reached the
//     gateway: connection refused, DNS failure, an open breaker, or a 503
//     the gateway answers before forwarding. A post whose outcome is unknown
//     (a timeout or dropped connection after it was sent, a 502/504) is
//     returned as an *UncertainError and is never posted again by either
//     route: the caller must read the lead first.
//
// A 4xx, 404 or 429 from the gateway is C2S's answer and is returned as is.
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

// ErrUncertain matches (errors.Is) every error of a message post whose
// outcome is unknown: the message may be on the lead.
var ErrUncertain = errors.New("c2s: message delivery uncertain")

// UncertainError is a message post whose outcome is unknown. Route is the
// route that took the post. It unwraps to the failure.KindUncertain error,
// so failure.KindOf classifies it as uncertain.
type UncertainError struct {
	Route string
	Err   error
}

func (e *UncertainError) Error() string {
	return "message post via " + e.Route + " has an unknown outcome: " + e.Err.Error()
}

func (e *UncertainError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrUncertain) hold.
func (e *UncertainError) Is(target error) bool { return target == ErrUncertain }

// UncertainRoute returns the route of an uncertain post.
func UncertainRoute(err error) (string, bool) {
	var ue *UncertainError
	if errors.As(err, &ue) {
		return ue.Route, true
	}
	return "", false
}

// RouteOptions are optional.
type RouteOptions struct {
	Logger     *zerolog.Logger       // nil = silent
	Registerer prometheus.Registerer // nil = counters not registered
}

// Route routes C2S operations.
type Route struct {
	direct    *Client
	gw        *Gateway
	log       zerolog.Logger
	fallbacks *prometheus.CounterVec
	uncertain *prometheus.CounterVec
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
			Help: "C2S operations that fell back from the gateway to direct C2S (reads and PATCH after a transient gateway failure; posts only when they never reached the gateway).",
		}, "op"),
		uncertain: httpx.RegisterCounterVec(o.Registerer, prometheus.CounterOpts{
			Name: "leadflow_c2s_uncertain_posts_total",
			Help: "Message posts whose outcome is unknown (timeout, dropped connection or 5xx after sending), by route; never posted again blind.",
		}, "route"),
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

// Budget is the C2S token's shared rate budget that both routes draw from,
// or nil when each paces itself. A caller that must hold something scarce
// across a post takes the post's slot first with httpx.Reserve.
func (p *Route) Budget() httpx.Limiter { return p.direct.caller.Limiter() }

// HasGateway reports whether the gateway route is configured.
func (p *Route) HasGateway() bool { return p.gw != nil }

// GetLead fetches a lead; any transient gateway failure falls back.
func (p *Route) GetLead(ctx context.Context, id string) (*Lead, error) {
	if p.gw != nil {
		l, err := p.gw.GetLead(ctx, id)
		if !p.fallback(ctx, "get_lead", id, err, failure.KindTransient) {
			return l, err
		}
	}
	return p.direct.GetLead(ctx, id)
}

// PostMessage posts body on the lead and reports the route that took it
// (RouteGateway or RouteDirect), also on error. C2S does not deduplicate: a
// post whose outcome is unknown comes back as an *UncertainError (errors.Is
// ErrUncertain, failure.KindUncertain) and is not posted again by either
// route. Only a post that provably never reached the gateway (httpx answers
// transient for a post only then) goes direct.
func (p *Route) PostMessage(ctx context.Context, leadID, body string) (string, error) {
	if p.gw != nil {
		err := p.gw.AddMessage(ctx, leadID, body)
		if failure.Is(err, failure.KindUncertain) {
			return RouteGateway, p.uncertainPost(RouteGateway, leadID, err)
		}
		if !p.fallback(ctx, "post_message", leadID, err, failure.KindTransient) {
			return RouteGateway, err
		}
	}
	err := p.direct.CreateMessage(ctx, leadID, body)
	if failure.Is(err, failure.KindUncertain) {
		return RouteDirect, p.uncertainPost(RouteDirect, leadID, err)
	}
	return RouteDirect, err
}

// UpdateLead updates lead attributes. PATCH is idempotent (gateway/API.md),
// so it falls back on any transient or uncertain gateway failure.
func (p *Route) UpdateLead(ctx context.Context, id string, attrs map[string]any) error {
	if p.gw != nil {
		err := p.gw.UpdateLead(ctx, id, attrs)
		if !p.fallback(ctx, "update_lead", id, err, failure.KindTransient, failure.KindUncertain) {
			return err
		}
	}
	return p.direct.UpdateLead(ctx, id, attrs)
}

func (p *Route) uncertainPost(route, leadID string, err error) error {
	p.uncertain.WithLabelValues(route).Inc()
	// Lead ids are opaque C2S ids, not personal data; err carries only op,
	// kind and HTTP status.
	p.log.Warn().Str("route", route).Str("lead_id", leadID).Int("status", httpx.StatusOf(err)).
		Msg("message post outcome unknown; not posting again until the lead is checked")
	return &UncertainError{Route: route, Err: err}
}

// fallback decides, logs and counts: an error of one of kinds falls back.
// The caller's own cancellation is not a gateway failure.
func (p *Route) fallback(ctx context.Context, op, leadID string, err error, kinds ...failure.Kind) bool {
	if err == nil || ctx.Err() != nil {
		return false
	}
	k := failure.KindOf(err)
	ok := false
	for _, want := range kinds {
		ok = ok || k == want
	}
	if !ok {
		return false
	}
	p.fallbacks.WithLabelValues(op).Inc()
	// Lead ids are opaque C2S ids, not personal data; err carries only op,
	// kind and HTTP status (httpx never puts bodies or URLs with data in it).
	p.log.Warn().Ctx(ctx).Str("op", op).Str("lead_id", leadID).
		Int("gateway_status", httpx.StatusOf(err)).
		Bool("breaker_open", errors.Is(err, httpx.ErrBreakerOpen)).
		Str("error_kind", k.String()).
		Msg("c2s gateway failed; falling back to direct C2S")
	return true
}
