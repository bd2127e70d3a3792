// Package c2s is the direct Contact2Sale client and the tolerant parsers for
// C2S lead documents and webhook deliveries.
package c2s

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/leadflow/leadflow/pkg/backbone/failure"
	"github.com/leadflow/leadflow/pkg/clients/httpx"
	"github.com/leadflow/leadflow/pkg/domain/lead"
)

// DefaultBaseURL is the production API root; "/integration/..." is appended.
const DefaultBaseURL = "https://api.contact2sale.com"

// Webhook actions accepted by Subscribe and Unsubscribe.
const (
	ActionCreate = "on_create_lead"
	ActionUpdate = "on_update_lead"
	ActionClose  = "on_close_lead"
)

// Config configures a Client.
type Config struct {
	BaseURL    string        // default DefaultBaseURL
	Token      string        // required; sent as Authorization and Authentication Bearer
	HTTPClient *http.Client  // default httpx.DefaultClient()
	Policy     httpx.Policy  // zero = httpx.C2SPolicy()
	Options    httpx.Options // metrics, logger, clock/sleep hooks
}

// Client talks to C2S directly.
type Client struct {
	base   string
	token  string
	caller *httpx.Caller
}

// New validates cfg and builds a Client.
func New(cfg Config) (*Client, error) {
	if cfg.Token == "" {
		return nil, errors.New("c2s: token is required")
	}
	base, err := httpx.BaseURL(cfg.BaseURL, DefaultBaseURL)
	if err != nil {
		return nil, fmt.Errorf("c2s: %w", err)
	}
	p := cfg.Policy
	if p.IsZero() {
		p = httpx.C2SPolicy()
	}
	o := withTokenCounter(cfg.Options)
	o.Secrets = append(append([]string(nil), o.Secrets...), cfg.Token)
	if o.UnsentStatuses == nil {
		// c2s/API.md: a 5xx after create_message was sent leaves the
		// delivery uncertain; only a 429 proves C2S did not act.
		o.UnsentStatuses = []int{http.StatusTooManyRequests}
	}
	return &Client{base: base, token: cfg.Token, caller: httpx.New("c2s", cfg.HTTPClient, p, o)}, nil
}

// Caller exposes the resilience layer (breaker state, policy).
func (c *Client) Caller() *httpx.Caller { return c.caller }

// GetLead fetches and parses one lead. 404 -> NotFound.
func (c *Client) GetLead(ctx context.Context, id string) (*Lead, error) {
	const op = "c2s.get_lead"
	if !lead.ValidID(id) {
		return nil, failure.Permanent(op, ErrBadLeadID)
	}
	resp, err := c.caller.Do(ctx, op, c.request(http.MethodGet, "/integration/leads/"+id, nil))
	if err != nil {
		return nil, err
	}
	return LeadFromBody(op, resp.Body)
}

// LeadFromBody parses a 200 lead body and classifies a parse failure: a
// non-JSON body (a proxy's error page) is transient, a JSON document without
// data.id is permanent.
func LeadFromBody(op string, body []byte) (*Lead, error) {
	l, err := ParseLead(body)
	switch {
	case errors.Is(err, ErrNotJSON):
		return nil, failure.Transient(op, err)
	case err != nil:
		return nil, failure.Permanent(op, err)
	}
	return l, nil
}

// CreateMessage posts a message on the lead. Any 2xx is success. C2S does
// not deduplicate, so the call is not resent unless C2S surely ignored it
// (connection refused, 429). A timeout, a dropped connection or a 5xx after
// the request was sent is failure.KindUncertain: the message may be there.
func (c *Client) CreateMessage(ctx context.Context, leadID, body string) error {
	return write(ctx, c.caller, "c2s.create_message", leadID, c.request, http.MethodPost, "/integration/leads/"+leadID+"/create_message",
		struct {
			LeadID string `json:"leadId"`
			Body   string `json:"body"`
		}{leadID, body})
}

// UpdateLead PATCHes attributes as {"data":{"type":"lead","attributes":...}}.
func (c *Client) UpdateLead(ctx context.Context, id string, attrs map[string]any) error {
	return write(ctx, c.caller, "c2s.update_lead", id, c.request, http.MethodPatch, "/integration/leads/"+id, updateDoc(attrs))
}

// Subscribe registers hookURL for one action. hookURL carries the webhook
// secret in its query and never appears in errors.
func (c *Client) Subscribe(ctx context.Context, hookURL, action string) error {
	return c.hook(ctx, "c2s.subscribe", "/integration/leads/subscribe", hookURL, action)
}

// Unsubscribe removes hookURL for one action.
func (c *Client) Unsubscribe(ctx context.Context, hookURL, action string) error {
	return c.hook(ctx, "c2s.unsubscribe", "/integration/leads/unsubscribe", hookURL, action)
}

func (c *Client) hook(ctx context.Context, op, path, hookURL, action string) error {
	switch action {
	case ActionCreate, ActionUpdate, ActionClose:
	default:
		return failure.Permanent(op, errors.New("unknown hook_action"))
	}
	if u, err := url.Parse(hookURL); err != nil || !u.IsAbs() {
		return failure.Permanent(op, errors.New("hook_url must be an absolute URL"))
	}
	payload, err := json.Marshal(map[string]string{"hook_url": hookURL, "hook_action": action})
	if err != nil {
		return failure.Permanent(op, err)
	}
	resp, err := c.caller.Do(ctx, op, c.request(http.MethodPost, path, payload))
	if err != nil {
		return err
	}
	// A 2xx can still say {"success":false}.
	var ans struct {
		Success *bool `json:"success"`
	}
	if json.Unmarshal(resp.Body, &ans) == nil && ans.Success != nil && !*ans.Success {
		return failure.Permanent(op, errors.New("c2s answered success=false"))
	}
	return nil
}

// ErrBadLeadID: the id is not a sane path segment; nothing was sent.
var ErrBadLeadID = errors.New("invalid lead id")

func (c *Client) request(method, path string, body []byte) func(context.Context) (*http.Request, error) {
	return newRequest(c.base, c.token, method, path, body)
}
