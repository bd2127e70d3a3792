// Package ports is ingest's HTTP surface (RUN.md): the C2S webhook, the
// Make.com trigger and the API-key protected query and admin API.
package ports

import (
	"bytes"
	"context"
	"crypto/subtle"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/rs/zerolog"

	"github.com/leadflow/leadflow/pkg/backbone/events"
	"github.com/leadflow/leadflow/pkg/backbone/failure"
	"github.com/leadflow/leadflow/pkg/clients/c2s"
	"github.com/leadflow/leadflow/pkg/domain/lead"
	"github.com/leadflow/leadflow/pkg/platform"
	"github.com/leadflow/leadflow/pkg/store/coredb"
	"github.com/leadflow/leadflow/pkg/store/runs"
	"github.com/leadflow/leadflow/services/ingest/app"
)

// MaxBody is the largest webhook body accepted.
const MaxBody = 1 << 20

//go:embed openapi.json
var openAPI []byte

// Traces reads a lead's trace.
type Traces interface {
	Trace(ctx context.Context, leadID string) (*runs.Trace, error)
}

// Customers reads persons from core.*.
type Customers interface {
	GetCustomer(ctx context.Context, q coredb.Query) (*coredb.Customer, error)
	SearchByName(ctx context.Context, name string, limit int) ([]coredb.CustomerSummary, error)
}

// WorkModules passes Work API module calls through.
type WorkModules interface {
	Module(ctx context.Context, module, consulta string) (int, []byte, error)
}

// Server holds the handlers' dependencies.
type Server struct {
	Intake        *app.Intake
	Enrich        *app.Enrich // nil: POST /api/v1/enrich answers 503
	Traces        Traces
	Customers     Customers
	Work          WorkModules
	WebhookSecret string
	APIKeys       []APIKey
	Log           zerolog.Logger
	Metrics       *Metrics
	// Health mounts /health, /ready and /metrics.
	Health func(chi.Router)
	// Extra mounts more API-key routes (admin).
	Extra func(chi.Router)
	// UI is the operator's console, mounted at /ui (nil: none); it signs
	// its users in itself (package console).
	UI http.Handler
}

// Routes builds the router.
func (s *Server) Routes() http.Handler {
	r := chi.NewRouter()
	r.Use(platform.TraceHTTP, s.recoverer, s.Metrics.middleware)
	if s.Health != nil {
		s.Health(r)
	}
	r.Get("/openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(openAPI)
	})
	r.Post("/api/v1/webhooks/c2s", s.webhook)
	r.Get("/api/v1/leads/process", s.makeTrigger)
	if s.UI != nil {
		r.Mount("/ui", s.UI)
	}
	r.Group(func(r chi.Router) {
		r.Use(s.apiKey)
		r.Post("/api/v1/c2s/enrich/{lead_id}", s.apiTrigger)
		r.Get("/api/v1/leads/{lead_id}", s.trace)
		r.Post("/api/v1/enrich", s.enrich)
		r.Get("/api/v1/contributor/customer", s.customerQuery)
		r.Get("/api/v1/customers/{id}", s.customerByID)
		r.Get("/api/v1/work/modules/all", s.workAll)
		r.Get("/api/v1/work/modules/{module}", s.workModule)
		if s.Extra != nil {
			s.Extra(r)
		}
	})
	return r
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"success": false, "error": msg})
}

// statusOf maps a classified error to an HTTP status once.
func statusOf(err error) int {
	switch failure.KindOf(err) {
	case failure.KindNotFound:
		return http.StatusNotFound
	case failure.KindPermanent:
		return http.StatusBadRequest
	case failure.KindRateLimited, failure.KindCreditsExhausted:
		return http.StatusTooManyRequests
	case failure.KindUnauthorized:
		return http.StatusBadGateway
	}
	return http.StatusServiceUnavailable
}

func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	status := statusOf(err)
	log := s.Log.Warn().Ctx(r.Context())
	if status >= 500 {
		log = s.Log.Error().Ctx(r.Context())
	}
	log.Err(err).Str("path", r.URL.Path).Int("status", status).Msg("request failed")
	writeError(w, status, http.StatusText(status))
}

func (s *Server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.Log.Error().Interface("panic", v).Str("path", r.URL.Path).Msg("handler panicked")
				writeError(w, http.StatusInternalServerError, "internal error")
			}
		}()
		next.ServeHTTP(w, r)
	})
}

func equalSecret(got, want string) bool {
	return want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// APIKey is one key accepted as Authorization: Bearer <key>. Every key may
// read; only admin keys may replay with refresh or notify, requeue and purge
// dead letters, and confirm or repost uncertain deliveries.
type APIKey struct {
	Key   string
	Admin bool
}

// AdminSuffix marks an admin key in API_KEYS ("key2:admin").
const AdminSuffix = ":admin"

// APIKeys are the keys of API_KEYS with their scopes.
type APIKeys []APIKey

// Scope says whether key is valid and whether it is an admin key. Every key
// is compared, in constant time each, with no early exit. The console signs
// in with the same rule.
func (keys APIKeys) Scope(key string) (valid, admin bool) {
	for _, k := range keys {
		if equalSecret(key, k.Key) {
			valid, admin = true, k.Admin
		}
	}
	return valid, admin
}

// ParseAPIKeys reads the API_KEYS entries: "key" is a read key, "key:admin"
// an admin key. It names every problem without echoing a key.
func ParseAPIKeys(entries []string) ([]APIKey, error) {
	var keys []APIKey
	var problems []string
	seen := map[string]bool{}
	for i, e := range entries {
		k, admin := strings.CutSuffix(strings.TrimSpace(e), AdminSuffix)
		k = strings.TrimSpace(k)
		switch {
		case k == "":
			problems = append(problems, fmt.Sprintf("API_KEYS entry %d has no key before %q", i+1, AdminSuffix))
			continue
		case seen[k]:
			problems = append(problems, fmt.Sprintf("API_KEYS entry %d repeats an earlier key", i+1))
			continue
		}
		seen[k] = true
		keys = append(keys, APIKey{Key: k, Admin: admin})
	}
	if len(problems) > 0 {
		return keys, errors.New(strings.Join(problems, "; "))
	}
	return keys, nil
}

type scopeKey struct{}

// IsAdmin reports whether the request was authenticated with an admin key.
func IsAdmin(r *http.Request) bool {
	admin, _ := r.Context().Value(scopeKey{}).(bool)
	return admin
}

// requireAdmin answers 403 unless the request carries an admin key.
func requireAdmin(w http.ResponseWriter, r *http.Request) bool {
	if IsAdmin(r) {
		return true
	}
	writeError(w, http.StatusForbidden, "this action needs an admin API key (an API_KEYS entry ending in "+AdminSuffix+")")
	return false
}

func (s *Server) apiKey(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		key, ok := strings.CutPrefix(auth, "Bearer ")
		key = strings.TrimSpace(key)
		valid, admin := APIKeys(s.APIKeys).Scope(key)
		if !ok || !valid {
			writeError(w, http.StatusUnauthorized, "missing or invalid API key")
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), scopeKey{}, admin)))
	})
}

// webhook accepts every C2S delivery shape. The body is parsed as JSON
// whatever Content-Type says (RUN.md: a real lead is never refused over a
// header).
func (s *Server) webhook(w http.ResponseWriter, r *http.Request) {
	if !equalSecret(r.URL.Query().Get("token"), s.WebhookSecret) {
		writeError(w, http.StatusUnauthorized, "missing or invalid token")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		writeError(w, http.StatusRequestEntityTooLarge, "body over 1 MiB")
		return
	case err != nil:
		writeError(w, http.StatusBadRequest, "could not read body")
		return
	}
	evs, err := c2s.ParseWebhook(body)
	if err != nil {
		writeError(w, http.StatusBadRequest, "body must be a C2S webhook event (JSON with a lead id)")
		return
	}
	raws := rawItems(body, len(evs))
	results := make([]app.WebhookResult, 0, len(evs))
	queued := false
	for i, ev := range evs {
		res, err := s.Intake.Webhook(r.Context(), ev, raws[i])
		if err != nil {
			// Events before this one are durable; C2S retries the whole
			// delivery and those come back as duplicates.
			s.fail(w, r, err)
			return
		}
		s.Log.Info().Ctx(r.Context()).Str("lead_id", ev.LeadID).Str("action", ev.Action).Str("status", res.Status).Msg("webhook")
		queued = queued || res.Status == app.StatusQueued
		results = append(results, res)
	}
	status := http.StatusOK
	if queued {
		status = http.StatusAccepted
	}
	if len(results) == 1 && !isArray(body) {
		writeJSON(w, status, webhookAnswer{Success: true, LeadID: results[0].LeadID, Action: results[0].Action,
			Status: results[0].Status, EventID: results[0].EventID})
		return
	}
	writeJSON(w, status, map[string]any{"success": true, "results": results})
}

// webhookAnswer answers a single event: the keys and their order are those
// of the map it replaced (encoding/json sorts map keys), without building a
// map and sorting it on every webhook.
type webhookAnswer struct {
	Action  string `json:"action"`
	EventID string `json:"event_id"`
	LeadID  string `json:"lead_id"`
	Status  string `json:"status"`
	Success bool   `json:"success"`
}

func isArray(b []byte) bool {
	return bytes.HasPrefix(bytes.TrimSpace(b), []byte("["))
}

// rawItems returns the raw JSON of each delivered event, for the receipts.
func rawItems(body []byte, n int) []json.RawMessage {
	out := make([]json.RawMessage, n)
	var items []json.RawMessage
	if isArray(body) && json.Unmarshal(body, &items) == nil && len(items) == n {
		return items
	}
	if n == 1 {
		out[0] = body
	}
	return out
}

// makeTrigger keeps the previous service's contract: 400 without id, 401 for
// a bad token, and otherwise always 200 with success and lead_id.
func (s *Server) makeTrigger(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	id := strings.TrimSpace(q.Get("id"))
	if id == "" {
		writeJSON(w, http.StatusBadRequest, map[string]any{"success": false, "error": "missing id"})
		return
	}
	if !equalSecret(q.Get("token"), s.WebhookSecret) {
		writeError(w, http.StatusUnauthorized, "missing or invalid token")
		return
	}
	wait, _ := strconv.Atoi(q.Get("wait"))
	s.trigger(w, r, id, events.SourceMake, min(max(wait, 0), 60))
}

func (s *Server) apiTrigger(w http.ResponseWriter, r *http.Request) {
	wait, _ := strconv.Atoi(r.URL.Query().Get("wait"))
	s.trigger(w, r, chi.URLParam(r, "lead_id"), events.SourceAPI, min(max(wait, 0), 60))
}

func (s *Server) trigger(w http.ResponseWriter, r *http.Request, leadID string, source events.Source, wait int) {
	res, err := s.Intake.Trigger(r.Context(), leadID, source)
	if err != nil {
		if failure.Is(err, failure.KindPermanent) {
			writeJSON(w, http.StatusOK, map[string]any{"success": false, "lead_id": leadID, "error": "invalid lead id"})
			return
		}
		s.Log.Error().Ctx(r.Context()).Err(err).Str("lead_id", leadID).Msg("trigger failed")
		writeJSON(w, http.StatusOK, map[string]any{"success": false, "lead_id": leadID, "error": "could not queue the lead; retry later"})
		return
	}
	s.Log.Info().Ctx(r.Context()).Str("lead_id", leadID).Str("source", string(source)).Str("status", res.Status).Msg("trigger")
	if wait == 0 {
		writeJSON(w, http.StatusOK, map[string]any{"success": true, "lead_id": leadID, "status": res.Status, "run_id": res.RunID})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), time.Duration(wait)*time.Second)
	defer cancel()
	run, err := s.Intake.Wait(ctx, res.RunID)
	if err != nil {
		writeJSON(w, http.StatusOK, map[string]any{"success": false, "lead_id": leadID, "status": res.Status, "error": "could not read the run"})
		return
	}
	writeJSON(w, http.StatusOK, waitAnswer(leadID, res.Status, run))
}

// waitAnswer is the previous service's synchronous answer.
func waitAnswer(leadID, status string, run *runs.Run) map[string]any {
	out := map[string]any{"lead_id": leadID, "status": status}
	switch {
	case run == nil || !runs.Final(run.Status):
		out["success"] = false
		out["message"] = "Lead is still being processed; check GET /api/v1/leads/" + leadID
	case run.Status == runs.StageNotified:
		out["success"] = true
		out["message"] = "Successfully processed and enriched lead. Stored " + strconv.Itoa(run.EntitiesStored) + " entities in database."
		out["cpfs_processed"] = run.CPFsProcessed
		out["entities_stored"] = run.EntitiesStored
	case run.Status == runs.StageUncertain:
		out["success"] = false
		out["message"] = "The message may already be on the lead; an operator must confirm or repost it."
		out["cpfs_processed"] = run.CPFsProcessed
		out["entities_stored"] = run.EntitiesStored
	case run.Status == runs.StageUnresolved:
		out["success"] = false
		out["message"] = "No CPF found for this lead."
		out["cpfs_processed"] = run.CPFsProcessed
		out["entities_stored"] = run.EntitiesStored
	default:
		out["success"] = false
		out["message"] = "Failed to process lead."
	}
	if run != nil {
		out["run_id"] = run.RunID
	}
	return out
}

func (s *Server) trace(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "lead_id")
	if !lead.ValidID(id) {
		writeError(w, http.StatusBadRequest, "invalid lead id")
		return
	}
	t, err := s.Traces.Trace(r.Context(), id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, t)
}

func (s *Server) customerQuery(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var cq coredb.Query
	switch {
	case q.Get("cpf") != "":
		cq.CPF = q.Get("cpf")
	case q.Get("email") != "":
		cq.Email = q.Get("email")
	case q.Get("phone") != "":
		cq.Phone = q.Get("phone")
	case strings.TrimSpace(q.Get("name")) != "":
		limit, _ := strconv.Atoi(q.Get("limit"))
		if limit <= 0 || limit > 100 {
			limit = 20
		}
		hits, err := s.Customers.SearchByName(r.Context(), q.Get("name"), limit)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if len(hits) == 0 {
			writeError(w, http.StatusNotFound, "no customer matches")
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"results": hits})
		return
	default:
		writeError(w, http.StatusBadRequest, "give one of cpf, email, phone or name")
		return
	}
	s.customer(w, r, cq)
}

func (s *Server) customerByID(w http.ResponseWriter, r *http.Request) {
	s.customer(w, r, coredb.Query{EntityID: chi.URLParam(r, "id")})
}

func (s *Server) customer(w http.ResponseWriter, r *http.Request, q coredb.Query) {
	c, err := s.Customers.GetCustomer(r.Context(), q)
	switch {
	case errors.Is(err, coredb.ErrNotFound):
		writeError(w, http.StatusNotFound, "customer not found")
	case errors.Is(err, coredb.ErrInvalidQuery):
		writeError(w, http.StatusBadRequest, "invalid query")
	case err != nil:
		s.fail(w, r, err)
	default:
		writeJSON(w, http.StatusOK, c)
	}
}

func (s *Server) workModule(w http.ResponseWriter, r *http.Request) {
	s.work(w, r, chi.URLParam(r, "module"), r.URL.Query().Get("consulta"))
}

// workAll is the full person behind a CPF (modulo=cpf).
func (s *Server) workAll(w http.ResponseWriter, r *http.Request) {
	s.work(w, r, "cpf", r.URL.Query().Get("cpf"))
}

func (s *Server) work(w http.ResponseWriter, r *http.Request, module, consulta string) {
	if strings.TrimSpace(consulta) == "" {
		writeError(w, http.StatusBadRequest, "missing query value")
		return
	}
	status, body, err := s.Work.Module(r.Context(), module, consulta)
	if err != nil && len(body) == 0 {
		s.fail(w, r, err)
		return
	}
	if status == 0 {
		status = http.StatusOK
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// maxEnrichBody bounds POST /api/v1/enrich (one identifier).
const maxEnrichBody = 64 << 10

// enrich resolves and enriches one person synchronously (app.Enrich reuses
// the resolver's and the enricher's own code) and answers the person as
// core.* holds it, or the name matches.
func (s *Server) enrich(w http.ResponseWriter, r *http.Request) {
	if s.Enrich == nil {
		writeError(w, http.StatusServiceUnavailable, "enrichment is not configured")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxEnrichBody))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		writeError(w, http.StatusRequestEntityTooLarge, "body too large")
		return
	}
	var req app.EnrichRequest
	if err != nil || len(strings.TrimSpace(string(body))) == 0 || json.Unmarshal(body, &req) != nil {
		writeError(w, http.StatusBadRequest, `body must be JSON with one of "cpf", "phone", "email" or "name"`)
		return
	}
	res, err := s.Enrich.Enrich(r.Context(), req)
	switch {
	case failure.Is(err, failure.KindPermanent):
		writeError(w, http.StatusBadRequest, permanentMessage(err))
		return
	case failure.Is(err, failure.KindNotFound):
		writeError(w, http.StatusNotFound, "nobody found")
		return
	case err != nil:
		s.fail(w, r, err)
		return
	}
	// Only the kind of query and the outcome: the values are personal data.
	s.Log.Info().Str("query", enrichKind(req)).Bool("paid", res.Paid).Int("matches", len(res.Matches)).Msg("enrich")
	if res.Person != nil {
		writeJSON(w, http.StatusOK, res.Person)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"results": res.Matches})
}

// permanentMessage is the reason of a rejected query; it never echoes input.
func permanentMessage(err error) string {
	var fe *failure.Error
	if errors.As(err, &fe) && fe.Err != nil {
		return fe.Err.Error()
	}
	return "invalid request"
}

func enrichKind(req app.EnrichRequest) string {
	switch {
	case req.CPF != "":
		return "cpf"
	case req.Phone != "":
		return "phone"
	case req.Email != "":
		return "email"
	}
	return "name"
}
