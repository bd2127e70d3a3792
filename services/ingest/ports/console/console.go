// Package console is the operator's console in the browser, served by
// ingest at /ui. It is server-rendered HTML, with a vendored htmx for
// in-place actions and a small EventSource script for live updates, all
// embedded in the binary; no build step in the browser.
//
// The pages are templ components (*.templ, compiled to the *_templ.go files
// that are committed with them): unlike html/template they look up no
// methods by reflection, so the linker can drop unused methods, which keeps
// the ingest binary smaller and its idle memory lower. After changing a
// .templ file, regenerate with `go generate ./services/ingest/ports/console/`.
//
// It does what leadflowctl and the admin API do, through the same code
// (pkg/ops and the trace in pkg/store/runs), behind a sign-in with an API
// key: an overview of the pipeline that updates itself, leads and their
// timelines, dead letters, replays with a dry run first, and uncertain
// deliveries when they are wired. Read-only keys see; admin keys act.
// Personal data is shown only masked, through pkg/ops' masks (pkg/logging).
//
// The console depends only on the small interfaces below, so ingest wires
// it with a few lines and other packages can change behind adapters.
package console

import (
	"context"
	"embed"
	"encoding/json"
	"io/fs"
	"net/http"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/rs/zerolog"

	"github.com/leadflow/leadflow/pkg/ops"
	"github.com/leadflow/leadflow/pkg/store/runs"
)

// Base is where the console is mounted; every link and cookie is under it.
const Base = "/ui"

//go:generate go tool templ generate

//go:embed assets
var assets embed.FS

// Keys checks an API key typed at sign-in: ok when it is a key at all, admin
// when it may act (requeue, replay, confirm, repost). Read-only keys see.
type Keys interface {
	Scope(key string) (ok, admin bool)
}

// Ops is what the console needs from pkg/ops (*ops.Ops implements it).
type Ops interface {
	Status(ctx context.Context) (*ops.Status, error)
	DLQList(ctx context.Context, stage string) ([]ops.DeadLetter, error)
	DLQShow(ctx context.Context, seq uint64, reveal bool) (json.RawMessage, error)
	DLQRequeue(ctx context.Context, seq uint64) (*ops.Requeued, error)
	DLQRequeueAll(ctx context.Context, stage string) (*ops.RequeueSummary, error)
	Replay(ctx context.Context, req ops.ReplayRequest, hooks ops.ReplayHooks) (*ops.ReplaySummary, error)
}

// Runs reads the trace (*runs.Store implements it).
type Runs interface {
	Trace(ctx context.Context, leadID string) (*runs.Trace, error)
	CountStages(ctx context.Context, since ...time.Time) ([]runs.StageCounts, error)
	RecentRuns(ctx context.Context, f runs.RunFilter) ([]runs.LeadRun, error)
}

// UncertainDelivery is a message post whose outcome nobody knows (its reply
// was lost), waiting for an operator to look at the lead in C2S.
type UncertainDelivery struct {
	LeadID    string
	RunID     string
	Stage     string
	Status    string // uncertain, repost (requested), posting (stale)
	Route     string
	Attempts  int
	Reason    string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Uncertain lists and resolves uncertain deliveries. It is optional: while
// it is nil the console hides the section (and its routes answer 404).
// Confirm marks a delivery sent without posting (the operator saw the
// message on the lead); Repost posts it once more (the operator saw it is
// not there). Both return the resulting status in a word or two.
type Uncertain interface {
	ListUncertain(ctx context.Context) ([]UncertainDelivery, error)
	ConfirmDelivery(ctx context.Context, leadID, runID string) (string, error)
	RepostDelivery(ctx context.Context, leadID, runID string) (string, error)
}

// Config wires a console.
type Config struct {
	Keys      Keys
	Ops       Ops
	Runs      Runs
	Uncertain Uncertain // nil: the section is hidden
	Log       zerolog.Logger
	// SessionTTL is how long a sign-in lasts; 0 = 8 h.
	SessionTTL time.Duration
	// Refresh is how often live views push an update; 0 = 3 s.
	Refresh time.Duration
	// Now is the clock; nil = time.Now.
	Now func() time.Time
}

// Console serves the pages. It is an http.Handler to mount at Base.
type Console struct {
	cfg      Config
	ctx      context.Context // ends live streams and running replays
	router   chi.Router
	sessions *sessions
	replays  *replays
	signins  *signinLimiter

	ovMu sync.Mutex
	ov   *overview
}

// New builds a console. ctx is the life of the server: when it ends, live
// streams close and running replays stop (they can be resumed by id).
func New(ctx context.Context, cfg Config) *Console {
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 8 * time.Hour
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = 3 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := &Console{
		cfg:      cfg,
		ctx:      ctx,
		sessions: newSessions(cfg.SessionTTL, cfg.Now),
		replays:  newReplays(),
		signins:  newSigninLimiter(),
	}
	c.router = c.routes()
	return c
}

func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) { c.router.ServeHTTP(w, r) }

func (c *Console) now() time.Time { return c.cfg.Now() }

func (c *Console) routes() chi.Router {
	r := chi.NewRouter()
	r.Use(securityHeaders)
	static, _ := fs.Sub(assets, "assets/static")
	r.Handle("/static/*", http.StripPrefix(Base+"/static/", staticHandler(static)))
	r.Get("/login", c.loginPage)
	r.Post("/login", c.login)
	r.Group(func(r chi.Router) {
		r.Use(c.requireSession, c.checkCSRF)
		r.Post("/logout", c.logout)
		r.Get("/", c.overviewPage)
		r.Get("/overview/stream", c.overviewStream)
		r.Get("/leads", c.leadsPage)
		r.Get("/leads/{id}", c.leadPage)
		r.Get("/dlq", c.dlqPage)
		r.Get("/dlq/{seq}", c.dlqDetail)
		r.Get("/replay", c.replayPage)
		r.Post("/replay/preview", c.replayPreview)
		r.Get("/replay/jobs/{id}", c.replayJobPage)
		r.Get("/replay/jobs/{id}/stream", c.replayJobStream)
		r.Get("/uncertain", c.uncertainPage)
		r.Group(func(r chi.Router) {
			r.Use(c.requireAdmin)
			r.Post("/dlq/{seq}/requeue", c.dlqRequeue)
			r.Post("/dlq/requeue", c.dlqRequeueStage)
			r.Post("/replay/run", c.replayRun)
			r.Post("/replay/jobs/{id}/cancel", c.replayCancel)
			r.Post("/uncertain/confirm", c.uncertainConfirm)
			r.Post("/uncertain/repost", c.uncertainRepost)
		})
	})
	r.NotFound(c.notFound)
	return r
}

// securityHeaders: no framing, no inline script, nothing cached (pages show
// operational data and must not outlive a sign-out in the browser cache).
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
			"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		if h.Get("Cache-Control") == "" {
			h.Set("Cache-Control", "no-store")
		}
		next.ServeHTTP(w, r)
	})
}

// staticHandler serves the embedded assets; they change only with the
// binary, so a browser may keep them for an hour.
func staticHandler(fsys fs.FS) http.Handler {
	files := http.FileServer(http.FS(fsys))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		files.ServeHTTP(w, r)
	})
}

func (c *Console) notFound(w http.ResponseWriter, r *http.Request) {
	s := c.sessions.get(r)
	if s == nil {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	c.problem(w, r, s, http.StatusNotFound, "There is no such page in the console.")
}
