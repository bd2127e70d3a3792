// Package workapi is the client for the paid Work API enrichment. Every
// answered call costs credits, so the default pace is conservative and the
// token (a query parameter) never appears in errors or logs.
package workapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/leadflow/leadflow/pkg/backbone/failure"
	"github.com/leadflow/leadflow/pkg/clients/httpx"
	"github.com/leadflow/leadflow/pkg/domain/brdata"
	"github.com/leadflow/leadflow/pkg/jsonx"
)

// DefaultURL is the production endpoint.
const DefaultURL = "https://completa.workbuscas.com/api"

// Modules allowed through Module (modulo=...).
var Modules = []string{"cep", "cnpj", "phone", "nome", "email", "titulo", "mae", "cpf"}

// Errors wrapped in the classified failures.
var (
	ErrInvalidCPF    = errors.New("invalid CPF")
	ErrUnknownModule = errors.New("unknown module")
	ErrEmptyQuery    = errors.New("empty consulta")
	ErrToken         = errors.New("token expired or invalid")
	ErrCredits       = errors.New("not enough credits")
	ErrModuleOff     = errors.New("module not enabled for this token")
	ErrLookup        = errors.New("lookup error (erro)")
	ErrNoPerson      = errors.New("answer is not a person (no DadosBasicos.cpf)")
	ErrWrongPerson   = errors.New("answer is a different CPF")
	ErrNotJSON       = errors.New("answer is not JSON")
)

// Config configures a Client.
type Config struct {
	URL        string        // default DefaultURL
	Token      string        // required (WORK_API_KEY), sent as ?token=
	HTTPClient *http.Client  // default httpx.DefaultClient()
	Policy     httpx.Policy  // zero = httpx.WorkAPIPolicy(): 0.5/s, burst 1, 45 s, 2 concurrent
	Options    httpx.Options // metrics, logger, clock/sleep hooks
}

// Client calls the Work API.
type Client struct {
	url    string
	token  string
	caller *httpx.Caller
}

// Result is a real person: the whole payload, kept raw.
type Result struct {
	Raw json.RawMessage
}

// New validates cfg and builds a Client.
func New(cfg Config) (*Client, error) {
	if cfg.Token == "" {
		return nil, errors.New("workapi: token is required")
	}
	u, err := httpx.BaseURL(cfg.URL, DefaultURL)
	if err != nil {
		return nil, errors.New("workapi: " + err.Error())
	}
	p := cfg.Policy
	if p.IsZero() {
		p = httpx.WorkAPIPolicy()
	}
	o := cfg.Options
	o.Secrets = append(append([]string(nil), o.Secrets...), cfg.Token, url.QueryEscape(cfg.Token))
	if o.Classify == nil {
		o.Classify = classifyHTTP
	}
	return &Client{url: u, token: cfg.Token, caller: httpx.New("workapi", cfg.HTTPClient, p, o)}, nil
}

// Caller exposes the resilience layer (breaker state, policy).
func (c *Client) Caller() *httpx.Caller { return c.caller }

// CPF enriches one CPF (modulo=cpf). The CPF is checked before paying.
func (c *Client) CPF(ctx context.Context, cpf string) (Result, error) {
	const op = "workapi.cpf"
	cpf = brdata.Digits(cpf)
	if !brdata.ValidCPF(cpf) {
		return Result{}, failure.Permanent(op, ErrInvalidCPF)
	}
	resp, err := c.caller.Do(ctx, op, c.request("cpf", cpf))
	if err != nil {
		return Result{}, err
	}
	if err := personError(op, resp, cpf); err != nil {
		return Result{}, err
	}
	return Result{Raw: json.RawMessage(resp.Body)}, nil
}

// Module passes a query through to any allowed module. status and body are
// returned whenever the upstream answered, also with a classified err
// (token, credits, 4xx, 5xx), so a handler can relay them; a 200 with a
// lookup error body is not an error here.
func (c *Client) Module(ctx context.Context, module, consulta string) (int, []byte, error) {
	const op = "workapi.module"
	module = strings.ToLower(strings.TrimSpace(module))
	if !allowed(module) {
		return 0, nil, failure.Permanent(op, ErrUnknownModule)
	}
	if strings.TrimSpace(consulta) == "" {
		return 0, nil, failure.Permanent(op, ErrEmptyQuery)
	}
	resp, err := c.caller.Do(ctx, op, c.request(module, consulta))
	if resp == nil {
		return 0, nil, err
	}
	return resp.Status, resp.Body, err
}

func allowed(module string) bool {
	for _, m := range Modules {
		if m == module {
			return true
		}
	}
	return false
}

func (c *Client) request(module, consulta string) func(context.Context) (*http.Request, error) {
	sep := "?"
	if strings.Contains(c.url, "?") {
		sep = "&"
	}
	target := c.url + sep + "token=" + url.QueryEscape(c.token) +
		"&modulo=" + url.QueryEscape(module) + "&consulta=" + url.QueryEscape(consulta)
	return func(ctx context.Context) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
		if err != nil {
			return nil, errors.New("cannot build request") // err would echo the URL
		}
		req.Header.Set("Accept", "application/json")
		// Every call that reaches the Work API is charged. Go's transport
		// silently resends a request whose reused connection broke after
		// it was written, but only a replayable one: a GET without a body,
		// or with GetBody. An empty body without GetBody makes the call
		// not replayable, so it is never resent behind the attempts
		// ledger's back, while connections (and their TLS sessions) are
		// reused. The transport finds the body empty and sends a plain GET.
		// A call that fails on a reused connection the server had just
		// closed is not resent either; the ledger counts it as lost
		// (charged), which errs on the safe side of the cap.
		req.Body, req.GetBody = io.NopCloser(bytes.NewReader(nil)), nil
		return req, nil
	}
}

// Classify is the full verdict on a modulo=cpf answer: nil only for a real
// person. It never panics on any input.
func Classify(status int, body []byte) error {
	const op = "workapi.cpf"
	r := &httpx.Response{Status: status, Header: http.Header{}, Body: body}
	if err := classifyHTTP(op, r); err != nil {
		return err
	}
	return personError(op, r, "")
}

// probe reads only the fields that decide the verdict; `any` and raw
// fields never cause type errors on oddly typed bodies.
type probe struct {
	Status       any             `json:"status"`
	Code         any             `json:"code"`
	Message      any             `json:"message"`
	Reason       any             `json:"reason"`
	StatusMsg    any             `json:"statusMsg"`
	Msg          any             `json:"msg"`
	Erro         json.RawMessage `json:"erro"`
	DadosBasicos any             `json:"DadosBasicos"`
}

// readProbe reports ok for any JSON value (an array or a string just
// yields an empty probe) and false for a body that is not JSON.
func readProbe(body []byte) (probe, bool) {
	var p probe
	err := jsonx.DecodeFirst(body, &p)
	var te *json.UnmarshalTypeError
	return p, err == nil || errors.As(err, &te)
}

// classifyHTTP is the Caller's classifier: token and credit errors are
// detected in the body whatever the status (they come with 200 too).
func classifyHTTP(op string, r *httpx.Response) error {
	if r.Status >= 500 {
		return httpx.DefaultClassify(op, r)
	}
	if r.Status == http.StatusForbidden && bytes.Contains(bytes.ToLower(r.Body), []byte("inexistente")) {
		return failure.Permanent(op, ErrModuleOff)
	}
	if p, ok := readProbe(r.Body); ok {
		r.Decoded = p // personError reads it: a person's answer is decoded once here
		msg := strings.ToLower(strings.Join([]string{text(p.Message), text(p.Reason), text(p.StatusMsg), text(p.Msg)}, " "))
		switch {
		case num(p.Code) == 429 || strings.Contains(msg, "credit") || strings.Contains(msg, "crédito"):
			return failure.New(failure.KindCreditsExhausted, op, ErrCredits)
		case strings.Contains(msg, "inexistente"):
			return failure.Permanent(op, ErrModuleOff)
		case num(p.Status) == 401 || num(p.Status) == 403 || strings.Contains(msg, "token"):
			return failure.New(failure.KindUnauthorized, op, ErrToken)
		}
	}
	return httpx.DefaultClassify(op, r)
}

// personError checks a 200 modulo=cpf body. want, when set, must match
// DadosBasicos.cpf.
func personError(op string, r *httpx.Response, want string) error {
	p, ok := r.Decoded.(probe) // classifyHTTP's, when it read one
	if !ok {
		p, ok = readProbe(r.Body)
	}
	if !ok {
		return failure.Transient(op, ErrNotJSON) // a proxy page, not an answer
	}
	db, _ := p.DadosBasicos.(map[string]any)
	got := brdata.CPFFromJSON(db["cpf"])
	switch {
	case got == "" && len(p.Erro) > 0:
		return failure.Permanent(op, ErrLookup)
	case got == "":
		return failure.Permanent(op, ErrNoPerson)
	case want != "" && got != want:
		return failure.Permanent(op, ErrWrongPerson)
	}
	return nil
}

func text(v any) string {
	s, _ := v.(string)
	return s
}

func num(v any) int64 {
	switch t := v.(type) {
	case json.Number:
		n, err := t.Int64()
		if err != nil {
			return 0
		}
		return n
	case string:
		n, err := json.Number(strings.TrimSpace(t)).Int64()
		if err != nil {
			return 0
		}
		return n
	}
	return 0
}
