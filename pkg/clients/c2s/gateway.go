// Package gateway is the client for the C2S gateway, the HTTP service in
// front of C2S that holds the C2S token. Its errors are FastAPI
// {"detail": ...} bodies; only the status is used (detail may echo data).
package c2s

import (
	"context"
	"errors"
	"net/http"

	"github.com/leadflow/leadflow/pkg/backbone/failure"
	"github.com/leadflow/leadflow/pkg/clients/httpx"
	"github.com/leadflow/leadflow/pkg/domain/lead"
)

// GatewayConfig configures a Gateway. The gateway needs no credentials.
type GatewayConfig struct {
	BaseURL    string        // required (C2S_GATEWAY_URL)
	HTTPClient *http.Client  // default httpx.DefaultClient()
	Policy     httpx.Policy  // zero = httpx.GatewayPolicy()
	Options    httpx.Options // metrics, logger, clock/sleep hooks
}

// Gateway talks to the gateway.
type Gateway struct {
	base   string
	caller *httpx.Caller
}

// NewGateway validates cfg and builds a Gateway.
func NewGateway(cfg GatewayConfig) (*Gateway, error) {
	if cfg.BaseURL == "" {
		return nil, errors.New("gateway: base URL is required")
	}
	base, err := httpx.BaseURL(cfg.BaseURL, "")
	if err != nil {
		return nil, errors.New("gateway: " + err.Error())
	}
	p := cfg.Policy
	if p.IsZero() {
		p = httpx.GatewayPolicy()
	}
	return &Gateway{base: base, caller: httpx.New("c2s_gateway", cfg.HTTPClient, p, withTokenCounter(cfg.Options))}, nil
}

// Caller exposes the resilience layer (breaker state, policy).
func (c *Gateway) Caller() *httpx.Caller { return c.caller }

// Health checks GET / answers 2xx.
func (c *Gateway) Health(ctx context.Context) error {
	_, err := c.caller.Do(ctx, "gateway.health", c.request(http.MethodGet, "/", nil))
	return err
}

// GetLead fetches the lead (the same JSON:API document as C2S). 404 ->
// NotFound, 429 -> RateLimited, 502 -> Transient.
func (c *Gateway) GetLead(ctx context.Context, id string) (*Lead, error) {
	const op = "gateway.get_lead"
	if !lead.ValidID(id) {
		return nil, failure.Permanent(op, ErrBadLeadID)
	}
	resp, err := c.caller.Do(ctx, op, c.request(http.MethodGet, "/leads/"+id, nil))
	if err != nil {
		return nil, err
	}
	return LeadFromBody(op, resp.Body)
}

// AddMessage posts {"message": text}; 200 or 201 (any 2xx) is success. The
// gateway forwards to C2S before it answers, so a timeout, a dropped
// connection or a 502/504 after the request was sent is
// failure.KindUncertain (the message may be there); a refused connection,
// an open breaker or a 503 (answered before forwarding) is transient.
func (c *Gateway) AddMessage(ctx context.Context, leadID, text string) error {
	return write(ctx, c.caller, "gateway.add_message", leadID, c.request, http.MethodPost, "/leads/"+leadID+"/messages",
		map[string]string{"message": text})
}

// UpdateLead PATCHes the same JSON:API document as direct C2S; the gateway
// passes it through.
func (c *Gateway) UpdateLead(ctx context.Context, id string, attrs map[string]any) error {
	return write(ctx, c.caller, "gateway.update_lead", id, c.request, http.MethodPatch, "/leads/"+id, updateDoc(attrs))
}

func (c *Gateway) request(method, path string, body []byte) func(context.Context) (*http.Request, error) {
	return newRequest(c.base, "", method, path, body)
}
