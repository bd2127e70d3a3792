// Package sim simulates the four paid upstreams of leadflow (C2S, the C2S
// gateway, Diretrix and the Work API) over their real HTTP surface, backed by
// one deterministic synthetic population plus the contract fixtures. Each
// simulator injects faults and records what it was asked, so tests,
// benchmarks and local runs can check the product's behaviour and costs.
//
// Faults (see Faults) are set per simulator from Go (SetFaults,
// UpdateFaults, Config.Faults) or over HTTP. Besides errors, hangs, 429
// bursts, malformed bodies and outages, they include lost replies: a request
// handled in full (the message posted, the Work API person served and
// charged) whose reply is then lost as a 502, a hang or a dropped
// connection (LostReplies counts them). LeadMessagesHidden makes the lead
// document omit its messages, as the confirmed C2S document does.
//
// Rate limits (see Limit, Limiter) are token buckets per credential,
// answering 429 with Retry-After and no effect when empty. C2S and the
// gateway share one bucket per C2S token, as the real gateway spends the C2S
// token; Diretrix (per user) and the Work API (per account token) have their
// own. Every bucket records what it admitted, limit or not, so a test can
// check that the product kept to a rate (Limiter.MaxAdmittedIn). Config.Now
// gives the buckets a clock a test can drive.
//
// Every simulator also serves admin endpoints under /_sim/ (never faulted,
// limited or logged):
//   - faults: GET, PUT (replace), PATCH (merge), DELETE (healthy); the JSON
//     keys of Faults
//   - limits: GET (the limit, and per credential admitted, rejected and
//     max_in_window; ?window=1m, ?times=1 for admission times), PUT, PATCH,
//     DELETE (no limit); {"rate":10,"per":"1m","burst":10}. The gateway's is
//     the shared C2S bucket.
//   - stats: {"requests","lost_replies","rate_limited"}
//   - requests (?limit=N), POST reset
//
// C2S and the gateway add messages (?lead=); C2S adds subscriptions and leads
// (with expected CPFs); the Work API adds paid (?cpf=): charged calls per CPF
// and how many of them lost their reply. The simulators log nothing.
package sim

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Config configures New. Zero values take the defaults noted.
type Config struct {
	Seed   int64 // population and fault randomness; 0 is a seed like any other
	People int   // synthetic people besides the two fixtures; default 1000, <0 none
	Leads  int   // synthetic leads besides the two contract leads; default People, <0 none

	// Lead mix; 0 takes the default, a negative value means none.
	SplitRate   float64 // phone of one person, email of another; default 0.10
	NobodyRate  float64 // identifiers Diretrix does not know; default 0.05
	PartialRate float64 // only the phone or only the email leads somewhere; default 0.10
	// InvalidCandidateRate is the share of people whose main phone Diretrix
	// answers with a broken-CPF candidate first; default 0.02.
	InvalidCandidateRate float64

	C2SToken     string // default "c2s-token"
	DiretrixUser string // default "diretrix"
	DiretrixPass string // default "diretrix-pass"
	WorkToken    string // default "work-token"

	WorkAPIPath string   // Work API mount path; default "/api" (the root also answers)
	WorkModules []string // enabled modules; default all of WorkModules but "titulo"
	// DiretrixNotFound404 answers unknown identifiers 404 instead of [].
	DiretrixNotFound404 bool
	// GatewayTimeout bounds the gateway's call to C2S; default 5s, then 502.
	GatewayTimeout time.Duration
	// MaxRequests is how many requests each simulator's log keeps, and how
	// many admission times each rate-limit bucket keeps; default 100000.
	MaxRequests int

	Faults FaultSet // faults from the start
	// Limits are token buckets per credential from the start (none by
	// default). C2S's is shared with the gateway.
	Limits LimitSet
	// Now is the rate limits' clock; default time.Now. A test may pass a
	// fake clock it advances by hand.
	Now func() time.Time
}

func (c Config) withDefaults() Config {
	if c.People == 0 {
		c.People = 1000
	}
	if c.Leads == 0 {
		c.Leads = c.People
	}
	// Negative values stay negative ("none") so applying defaults twice is
	// harmless; the generator clamps them.
	rate := func(v *float64, def float64) {
		if *v == 0 {
			*v = def
		}
	}
	rate(&c.SplitRate, 0.10)
	rate(&c.NobodyRate, 0.05)
	rate(&c.PartialRate, 0.10)
	rate(&c.InvalidCandidateRate, 0.02)
	def := func(v *string, d string) {
		if *v == "" {
			*v = d
		}
	}
	def(&c.C2SToken, "c2s-token")
	def(&c.DiretrixUser, "diretrix")
	def(&c.DiretrixPass, "diretrix-pass")
	def(&c.WorkToken, "work-token")
	def(&c.WorkAPIPath, "/api")
	c.WorkAPIPath = "/" + strings.Trim(c.WorkAPIPath, "/")
	if c.WorkModules == nil {
		c.WorkModules = []string{"cpf", "phone", "email", "nome", "cep", "cnpj", "mae"}
	}
	if c.GatewayTimeout <= 0 {
		c.GatewayTimeout = 5 * time.Second
	}
	if c.MaxRequests <= 0 {
		c.MaxRequests = 100_000
	}
	return c
}

// URLs are the simulators' addresses once started, ready for the product's
// environment (C2S_BASE_URL, C2S_GATEWAY_URL, DIRETRIX_BASE_URL, WORK_API_URL).
type URLs struct {
	C2SBaseURL      string // without /integration
	GatewayURL      string
	DiretrixBaseURL string
	WorkAPIURL      string // with the mount path, e.g. http://127.0.0.1:PORT/api
}

// Addrs are listen addresses; an empty one means 127.0.0.1:0.
type Addrs struct {
	C2S, Gateway, Diretrix, WorkAPI string
}

// Sims is the four simulators over one population.
type Sims struct {
	URLs
	Config   Config // with defaults applied
	Pop      *Population
	C2S      *C2S
	Gateway  *Gateway
	Diretrix *Diretrix
	WorkAPI  *WorkAPI

	stop      chan struct{}
	closeOnce sync.Once
	mu        sync.Mutex
	servers   []*http.Server
}

// New builds the population and the simulators; nothing listens yet. The
// handlers may be mounted anywhere (httptest, Start).
func New(cfg Config) *Sims {
	cfg = cfg.withDefaults()
	s := &Sims{Config: cfg, stop: make(chan struct{})}
	s.Pop = NewPopulation(cfg)
	seed := uint64(cfg.Seed)
	lim := func(l Limit) *Limiter { return newLimiter(l, cfg.Now, cfg.MaxRequests) }
	c2sLim := lim(cfg.Limits.C2S)
	s.C2S = newC2S(newBase("c2s", seed+1, cfg.Faults.C2S, cfg.MaxRequests, s.stop, c2sError).withLimiter(c2sLim, true),
		s.Pop, cfg.C2SToken)
	// The gateway spends the C2S token: C2S checks the shared bucket when
	// the gateway forwards; the gateway only shows it.
	s.Gateway = newGateway(newBase("gateway", seed+2, cfg.Faults.Gateway, cfg.MaxRequests, s.stop, detail).withLimiter(c2sLim, false),
		s.C2S, cfg.GatewayTimeout)
	s.Diretrix = newDiretrix(newBase("diretrix", seed+3, cfg.Faults.Diretrix, cfg.MaxRequests, s.stop, diretrixError).withLimiter(lim(cfg.Limits.Diretrix), true),
		s.Pop, cfg.DiretrixUser, cfg.DiretrixPass, cfg.DiretrixNotFound404)
	s.WorkAPI = newWorkAPI(newBase("workapi", seed+4, cfg.Faults.WorkAPI, cfg.MaxRequests, s.stop, workError).withLimiter(lim(cfg.Limits.WorkAPI), true),
		s.Pop, cfg.WorkToken, cfg.WorkAPIPath, cfg.WorkModules)
	return s
}

func workError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, obj{{"status", status}, {"statusMsg", msg}})
}

// Start listens on addrs, serves in the background and returns the URLs.
// The simulators close when ctx ends or on Close.
func (s *Sims) Start(ctx context.Context, addrs Addrs) (URLs, error) {
	type srv struct {
		addr string
		h    http.Handler
		dst  *string
		path string
	}
	list := []srv{
		{addrs.C2S, s.C2S, &s.C2SBaseURL, ""},
		{addrs.Gateway, s.Gateway, &s.GatewayURL, ""},
		{addrs.Diretrix, s.Diretrix, &s.DiretrixBaseURL, ""},
		{addrs.WorkAPI, s.WorkAPI, &s.WorkAPIURL, s.Config.WorkAPIPath},
	}
	var lns []net.Listener
	for _, x := range list {
		if x.addr == "" {
			x.addr = "127.0.0.1:0"
		}
		ln, err := net.Listen("tcp", x.addr)
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return URLs{}, err
		}
		lns = append(lns, ln)
	}
	s.mu.Lock()
	for i, x := range list {
		*x.dst = baseURL(lns[i].Addr().(*net.TCPAddr)) + x.path
		hs := &http.Server{Handler: x.h, ReadHeaderTimeout: 10 * time.Second}
		s.servers = append(s.servers, hs)
		go hs.Serve(lns[i])
	}
	s.mu.Unlock()
	go func() {
		select {
		case <-ctx.Done():
			s.Close()
		case <-s.stop:
		}
	}()
	return s.URLs, nil
}

// StartLocal is Start on four free loopback ports.
func (s *Sims) StartLocal() (URLs, error) { return s.Start(context.Background(), Addrs{}) }

func baseURL(a *net.TCPAddr) string {
	host := a.IP.String()
	if a.IP.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, strconv.Itoa(a.Port))
}

// Close releases hanging requests and stops the servers. It is idempotent.
func (s *Sims) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.stop)
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, hs := range s.servers {
			err = errors.Join(err, hs.Close())
		}
	})
	return err
}

// Reset clears every simulator's recordings and messages; faults are kept.
func (s *Sims) Reset() {
	s.C2S.Reset()
	s.Gateway.Reset()
	s.Diretrix.Reset()
	s.WorkAPI.Reset()
}

// ClearFaults makes every simulator healthy.
func (s *Sims) ClearFaults() {
	s.C2S.ClearFaults()
	s.Gateway.ClearFaults()
	s.Diretrix.ClearFaults()
	s.WorkAPI.ClearFaults()
}

// Upstream returns the fault/recording controls of one simulator by name:
// c2s, gateway, diretrix or workapi.
func (s *Sims) Upstream(name string) (Controls, bool) {
	switch name {
	case "c2s":
		return s.C2S, true
	case "gateway":
		return s.Gateway, true
	case "diretrix":
		return s.Diretrix, true
	case "workapi":
		return s.WorkAPI, true
	}
	return nil, false
}

// Controls is what every simulator offers besides http.Handler.
type Controls interface {
	http.Handler
	SetFaults(Faults)
	UpdateFaults(func(*Faults))
	Faults() Faults
	ClearFaults()
	Requests() []Request
	RequestCount() int64
	Reset()
	// Lost replies and the rate limit.
	LostReplies() int64
	RateLimited() int64
	Stats() Stats
	Limiter() *Limiter
	SetLimit(Limit)
	Limit() Limit
}
