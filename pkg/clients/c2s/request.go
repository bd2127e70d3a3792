package c2s

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"

	"github.com/leadflow/leadflow/pkg/backbone/failure"
	"github.com/leadflow/leadflow/pkg/clients/httpx"
	"github.com/leadflow/leadflow/pkg/domain/lead"
	"github.com/leadflow/leadflow/pkg/jsonx"
)

// newRequest builds the request of one attempt: JSON in and out, with
// token as the bearer credential when the route needs one (direct C2S).
func newRequest(base, token, method, path string, body []byte) func(context.Context) (*http.Request, error) {
	return func(ctx context.Context) (*http.Request, error) {
		var r io.Reader
		if body != nil {
			r = bytes.NewReader(body)
		}
		req, err := http.NewRequestWithContext(ctx, method, base+path, r)
		if err != nil {
			return nil, err
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("Authentication", "Bearer "+token)
		}
		req.Header.Set("Accept", "application/json")
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		return req, nil
	}
}

// write is the one shape of every write on a lead, by either route: check
// the lead id (it becomes a path segment), encode the body, send.
func write(ctx context.Context, caller *httpx.Caller, op, leadID string, send func(method, path string, body []byte) func(context.Context) (*http.Request, error), method, path string, body any) error {
	if !lead.ValidID(leadID) {
		return failure.Permanent(op, ErrBadLeadID)
	}
	payload, err := jsonx.Marshal(body)
	if err != nil {
		return failure.Permanent(op, err)
	}
	_, err = caller.Do(ctx, op, send(method, path, payload))
	return err
}

// updateDoc is the JSON:API update document both routes send.
func updateDoc(attrs map[string]any) any {
	if attrs == nil {
		attrs = map[string]any{}
	}
	type data struct {
		Type       string         `json:"type"`
		Attributes map[string]any `json:"attributes"`
	}
	return struct {
		Data data `json:"data"`
	}{data{"lead", attrs}}
}

// UpdateBody renders the JSON:API update document.
func UpdateBody(attrs map[string]any) ([]byte, error) { return json.Marshal(updateDoc(attrs)) }
