// Package diretrix finds a CPF from a phone or an email (Diretrix API).
package diretrix

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/leadflow/leadflow/pkg/backbone/failure"
	"github.com/leadflow/leadflow/pkg/clients/httpx"
	"github.com/leadflow/leadflow/pkg/domain/brdata"
)

// Config configures a Client.
type Config struct {
	BaseURL    string        // required (DIRETRIX_BASE_URL); "/Consultas/Pessoa/..." is appended
	User, Pass string        // required, HTTP Basic
	HTTPClient *http.Client  // default httpx.DefaultClient()
	Policy     httpx.Policy  // zero = httpx.DiretrixPolicy()
	Options    httpx.Options // metrics, logger, clock/sleep hooks
}

// Match is the first candidate with a valid CPF.
type Match struct {
	CPF  string // 11 digits, check digits valid
	Name string
}

// Client queries Diretrix.
type Client struct {
	base       string
	user, pass string
	caller     *httpx.Caller
}

// ErrEmptyQuery: the phone or email normalised to nothing; nothing was sent.
var ErrEmptyQuery = errors.New("empty lookup value")

// New validates cfg and builds a Client.
func New(cfg Config) (*Client, error) {
	if cfg.BaseURL == "" || cfg.User == "" || cfg.Pass == "" {
		return nil, errors.New("diretrix: base URL, user and password are required")
	}
	base, err := httpx.BaseURL(cfg.BaseURL, "")
	if err != nil {
		return nil, errors.New("diretrix: " + err.Error())
	}
	p := cfg.Policy
	if p.IsZero() {
		p = httpx.DiretrixPolicy()
	}
	o := cfg.Options
	o.Secrets = append(append([]string(nil), o.Secrets...), cfg.Pass)
	if o.Classify == nil {
		o.Classify = Classify
	}
	return &Client{base: base, user: cfg.User, pass: cfg.Pass, caller: httpx.New("diretrix", cfg.HTTPClient, p, o)}, nil
}

// Caller exposes the resilience layer (breaker state, policy).
func (c *Client) Caller() *httpx.Caller { return c.caller }

// Classify maps Diretrix statuses: 400 and 404 are "not found" answers,
// the rest as httpx.DefaultClassify (401 Unauthorized, 5xx Transient).
func Classify(op string, r *httpx.Response) error {
	if r.Status == http.StatusNotFound || r.Status == http.StatusBadRequest {
		return failure.NotFound(op)
	}
	return httpx.DefaultClassify(op, r)
}

// ByPhone looks a phone up after brdata.NormalizePhone (digits, "55" dropped).
func (c *Client) ByPhone(ctx context.Context, phone string) (Match, error) {
	return c.lookup(ctx, "diretrix.phone", "/Consultas/Pessoa/Telefone/", brdata.NormalizePhone(phone))
}

// ByEmail looks an email up after brdata.NormalizeEmail, path-escaped.
func (c *Client) ByEmail(ctx context.Context, email string) (Match, error) {
	return c.lookup(ctx, "diretrix.email", "/Consultas/Pessoa/Email/", brdata.NormalizeEmail(email))
}

func (c *Client) lookup(ctx context.Context, op, prefix, value string) (Match, error) {
	if value == "" {
		return Match{}, failure.Permanent(op, ErrEmptyQuery)
	}
	target := c.base + prefix + url.PathEscape(value)
	resp, err := c.caller.Do(ctx, op, func(ctx context.Context) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
		if err != nil {
			return nil, err
		}
		req.SetBasicAuth(c.user, c.pass)
		req.Header.Set("Accept", "application/json")
		return req, nil
	})
	if err != nil {
		return Match{}, err
	}
	m, ok, perr := FirstValid(resp.Body)
	switch {
	case perr != nil:
		return Match{}, failure.Transient(op, perr) // a proxy page, not an answer
	case !ok:
		return Match{}, failure.NotFound(op)
	}
	return m, nil
}

// ErrNotJSON: the 200 body is not JSON.
var ErrNotJSON = errors.New("diretrix: body is not JSON")

// FirstValid returns the first candidate whose cpf passes brdata.ValidCPF.
// cpf may be a string (formatted or not), a number (leading zeros lost) or
// null. A JSON body that is not an array holds no candidate.
func FirstValid(body []byte) (Match, bool, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return Match{}, false, ErrNotJSON
	}
	items, _ := v.([]any)
	for _, it := range items {
		m, _ := it.(map[string]any)
		cpf := brdata.CPFFromJSON(m["cpf"])
		if !brdata.ValidCPF(cpf) {
			continue
		}
		name, _ := m["nome"].(string)
		if name == "" {
			name, _ = m["name"].(string)
		}
		return Match{CPF: cpf, Name: strings.TrimSpace(name)}, true, nil
	}
	return Match{}, false, nil
}
