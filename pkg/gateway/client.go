// Package gateway is the client for the C2S gateway, the HTTP service in
// front of C2S that holds the C2S token. Its errors are FastAPI
// {"detail": ...} bodies; only the status is used (detail may echo data).
package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/leadflow/leadflow/pkg/c2s"
	"github.com/leadflow/leadflow/pkg/failure"
	"github.com/leadflow/leadflow/pkg/httpx"
)

// Config configures a Client. The gateway needs no credentials.
type Config struct {
	BaseURL    string        // required (C2S_GATEWAY_URL)
	HTTPClient *http.Client  // default httpx.DefaultClient()
	Policy     httpx.Policy  // zero = httpx.GatewayPolicy()
	Options    httpx.Options // metrics, logger, clock/sleep hooks
}

// Client talks to the gateway.
type Client struct {
	base   string
	caller *httpx.Caller
}

// New validates cfg and builds a Client.
func New(cfg Config) (*Client, error) {
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
	return &Client{base: base, caller: httpx.New("c2s_gateway", cfg.HTTPClient, p, cfg.Options)}, nil
}

// Caller exposes the resilience layer (breaker state, policy).
func (c *Client) Caller() *httpx.Caller { return c.caller }

// Health checks GET / answers 2xx.
func (c *Client) Health(ctx context.Context) error {
	_, err := c.caller.Do(ctx, "gateway.health", c.request(http.MethodGet, "/", nil))
	return err
}

// GetLead fetches the lead (the same JSON:API document as C2S). 404 ->
// NotFound, 429 -> RateLimited, 502 -> Transient.
func (c *Client) GetLead(ctx context.Context, id string) (*c2s.Lead, error) {
	const op = "gateway.get_lead"
	if !c2s.ValidLeadID(id) {
		return nil, failure.Permanent(op, c2s.ErrBadLeadID)
	}
	resp, err := c.caller.Do(ctx, op, c.request(http.MethodGet, "/leads/"+id, nil))
	if err != nil {
		return nil, err
	}
	return c2s.LeadFromBody(op, resp.Body)
}

// AddMessage posts {"message": text}; 200 or 201 (any 2xx) is success.
func (c *Client) AddMessage(ctx context.Context, leadID, text string) error {
	const op = "gateway.add_message"
	if !c2s.ValidLeadID(leadID) {
		return failure.Permanent(op, c2s.ErrBadLeadID)
	}
	payload, err := json.Marshal(map[string]string{"message": text})
	if err != nil {
		return failure.Permanent(op, err)
	}
	_, err = c.caller.Do(ctx, op, c.request(http.MethodPost, "/leads/"+leadID+"/messages", payload))
	return err
}

// UpdateLead PATCHes the same JSON:API document as direct C2S; the gateway
// passes it through.
func (c *Client) UpdateLead(ctx context.Context, id string, attrs map[string]any) error {
	const op = "gateway.update_lead"
	if !c2s.ValidLeadID(id) {
		return failure.Permanent(op, c2s.ErrBadLeadID)
	}
	payload, err := c2s.UpdateBody(attrs)
	if err != nil {
		return failure.Permanent(op, err)
	}
	_, err = c.caller.Do(ctx, op, c.request(http.MethodPatch, "/leads/"+id, payload))
	return err
}

func (c *Client) request(method, path string, body []byte) func(context.Context) (*http.Request, error) {
	return func(ctx context.Context) (*http.Request, error) {
		var r io.Reader
		if body != nil {
			r = bytes.NewReader(body)
		}
		req, err := http.NewRequestWithContext(ctx, method, c.base+path, r)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Accept", "application/json")
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		return req, nil
	}
}
