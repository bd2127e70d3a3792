// Package platform is the life of a service process: common configuration,
// connecting to NATS and Postgres, provisioning, the health server, and a
// graceful stop on SIGTERM. Each service's own wiring plugs into Serve.
package platform

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/leadflow/leadflow/pkg/backbone/events"
	"github.com/leadflow/leadflow/pkg/backbone/messaging"
	"github.com/leadflow/leadflow/pkg/buildinfo"
	"github.com/leadflow/leadflow/pkg/config"
	"github.com/leadflow/leadflow/pkg/domain/lead"
	"github.com/leadflow/leadflow/pkg/logging"
	"github.com/leadflow/leadflow/pkg/store"
	"github.com/leadflow/leadflow/pkg/store/budget"
	"github.com/leadflow/leadflow/pkg/store/runs"
)

// defaultMemoryLimit is the Go runtime's soft memory limit per service.
const defaultMemoryLimit = 48 << 20

// defaultGCPercent is GOGC for a service binary when the variable is unset.
const defaultGCPercent = 200

// defaultMaxProcs is GOMAXPROCS for a service binary when the variable is
// unset (the local stack, all services in one process, keeps Go's default).
const defaultMaxProcs = 1

// Common is the configuration every service shares (RUN.md).
type Common struct {
	Service     string
	DatabaseURL string
	NATSURL     string
	LogLevel    string
	// HealthPort serves /health, /ready and /metrics; 0 = off.
	HealthPort int
	// MetricsPort serves them again on a private port (ingest, whose
	// public PORT is exposed); 0 = off.
	MetricsPort int
	DBMaxConns  int
	Stream      messaging.StreamSettings
	// ConsumerReplicas of every durable consumer; 0 = as the stream.
	ConsumerReplicas int
	// NATS authentication and TLS files.
	NATS messaging.NATSAuth
	// Tracing: OpenTelemetry from the OTEL_* variables (Serve installs it).
	Tracing Tracing
	// AsyncCommit turns synchronous_commit off for this service's sessions.
	// Only for writes that a retry can always redo (ingest's receipts).
	AsyncCommit bool
	// RuntimeMaxProcs keeps the Go runtime's GOMAXPROCS (the container's
	// CPU limit, at least 2, or every core) instead of one P: the webhook
	// edge, whose bursts of concurrent requests use a second P (ingest).
	RuntimeMaxProcs bool
	// CustomPlans keeps Postgres's per-execution plan choice for the
	// service's main pool (ingest: the console's filters). Otherwise the
	// pools plan each statement once, generically (store.Session).
	CustomPlans bool
}

// DefaultHealthPort is where a worker serves /health, /ready and /metrics
// when HEALTH_PORT is unset (HEALTH_PORT=0 turns the server off).
const DefaultHealthPort = 8081

// DefaultMetricsPort is ingest's private metrics port (METRICS_PORT).
const DefaultMetricsPort = 9090

// Ports are a service's default private ports; 0 = off unless set.
type Ports struct {
	Health  int // HEALTH_PORT's default
	Metrics int // METRICS_PORT's default; 0 = the service does not read METRICS_PORT
}

// LoadCommon reads the shared variables into l, for a worker: HEALTH_PORT
// defaults to DefaultHealthPort.
func LoadCommon(l *config.Loader, service string) Common {
	return LoadCommonWith(l, service, Ports{Health: DefaultHealthPort})
}

// LoadCommonWith reads the shared variables with the service's own default
// ports (ingest: no HEALTH_PORT by default, METRICS_PORT 9090).
func LoadCommonWith(l *config.Loader, service string, ports Ports) Common {
	c := Common{Service: service}
	c.DatabaseURL = l.Required("DATABASE_URL", "DB_URL")
	c.NATSURL = l.Required("NATS_URL")
	c.LogLevel = l.String("LOG_LEVEL", "info")
	l.Check(logging.ValidLevel(c.LogLevel), "LOG_LEVEL must be one of trace, debug, info, warn, error")
	c.HealthPort = l.Int("HEALTH_PORT", ports.Health, 0, 65535)
	if ports.Metrics > 0 {
		c.MetricsPort = l.Int("METRICS_PORT", ports.Metrics, 0, 65535)
		l.Check(c.MetricsPort == 0 || c.MetricsPort != c.HealthPort, "METRICS_PORT and HEALTH_PORT must differ")
	}
	c.NATS = messaging.NATSAuth{
		Creds: l.File("NATS_CREDS"), NKeySeed: l.File("NATS_NKEY_SEED"),
		TLSCA: l.File("NATS_TLS_CA"), TLSCert: l.File("NATS_TLS_CERT"), TLSKey: l.File("NATS_TLS_KEY"),
	}
	for _, p := range c.NATS.Problems() {
		l.Check(false, "%s", p)
	}
	c.Tracing = LoadTracing(l)
	c.DBMaxConns = l.Int("DB_MAX_CONNS", 8, 1, 1000)
	def := messaging.DefaultStreamSettings()
	c.Stream = messaging.StreamSettings{
		MaxAge:     l.Duration("STREAM_MAX_AGE", def.MaxAge),
		Duplicates: l.Duration("STREAM_DUPLICATE_WINDOW", def.Duplicates),
		Replicas:   l.Int("STREAM_REPLICAS", 1, 1, 5),
	}
	c.ConsumerReplicas = l.Int("CONSUMER_REPLICAS", 0, 0, 5)
	l.Check(c.ConsumerReplicas <= c.Stream.Replicas, "CONSUMER_REPLICAS must not exceed STREAM_REPLICAS")
	l.Check(c.Stream.MaxAge > 0 && c.Stream.Duplicates > 0 && c.Stream.Duplicates <= c.Stream.MaxAge,
		"STREAM_MAX_AGE and STREAM_DUPLICATE_WINDOW must be positive, the window no longer than the age")
	return c
}

// Deps are the connections a service's wiring builds on.
type Deps struct {
	Service string
	Log     zerolog.Logger
	NC      *nats.Conn
	JS      jetstream.JetStream
	Pool    *pgxpool.Pool
	// Budgets is a small pool of its own for the shared rate budgets
	// (clients.WithPool): a reservation never waits behind connections that
	// handlers hold across an upstream call (a ledger section, a paid-call
	// claim), which may themselves be waiting for a slot.
	Budgets  *pgxpool.Pool
	Pub      *messaging.Publisher
	Router   *messaging.Router
	Registry *prometheus.Registry

	consumers        bool
	running          atomic.Bool // the consumers are subscribed
	servers          []*http.Server
	consumerReplicas int
	warmup           *store.Warmup
	dbMaxConns       int
}

// Warm registers the service's warmers (each package's hot statements, run
// on every new connection of Pool inside a rolled-back transaction, see
// store.Warmup), warms all of Pool's connections now, and sends one
// refused message down the publish path. Setups call it
// before they return, so /ready says yes only once the first leads and
// webhooks find warm connections.
func (d *Deps) Warm(ctx context.Context, warmers ...store.Warmer) error {
	if d.Pool == nil {
		return errors.New("warm-up: no Postgres pool")
	}
	n := d.dbMaxConns
	if d.warmup == nil { // Deps built by hand (tests): warm what the pool may open
		d.warmup, n = &store.Warmup{}, int(d.Pool.Config().MaxConns)
	}
	d.warmup.Add(warmers...)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	start := time.Now()
	if err := store.Warm(ctx, d.Pool, n, d.warmup); err != nil {
		return err
	}
	// The publish path too: JetStream refuses the warm-up message and
	// stores nothing (messaging.Publisher.Warm).
	if d.Pub != nil {
		if err := d.Pub.Warm(); err != nil {
			return err
		}
	}
	took := time.Since(start)
	// The warm-up's garbage (a parsed Work API payload, its batches) would
	// otherwise sit in the heap of an idle service until the next GC.
	debug.FreeOSMemory()
	d.Log.Info().Int("connections", int(d.Pool.Stat().TotalConns())).Dur("took", took).Msg("postgres connections warmed")
	return nil
}

// budgetConns is the size of Deps.Budgets: one statement per upstream call,
// each a single short UPDATE.
const budgetConns = 2

// Connect dials NATS and Postgres, provisions the stream and migrates.
func Connect(ctx context.Context, c Common, log zerolog.Logger) (*Deps, error) {
	d := &Deps{Service: c.Service, Log: log, Registry: prometheus.NewRegistry(), consumerReplicas: c.ConsumerReplicas,
		warmup: &store.Warmup{}, dbMaxConns: c.DBMaxConns}
	if d.consumerReplicas == 0 {
		// Set on purpose on every durable consumer: a consumer is as
		// available as the stream it reads.
		d.consumerReplicas = max(c.Stream.Replicas, 1)
	}
	d.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	auth, err := c.NATS.Options()
	if err != nil {
		return nil, err
	}
	if d.NC, err = messaging.Connect(c.NATSURL, "leadflow-"+c.Service, log, auth...); err != nil {
		return nil, fmt.Errorf("connect NATS: %w", err)
	}
	if d.JS, err = jetstream.New(d.NC); err != nil {
		d.Close()
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if _, err = messaging.EnsureStream(pctx, d.JS, c.Stream); err != nil {
		d.Close()
		return nil, err
	}
	if d.Pool, err = store.OpenWith(pctx, c.DatabaseURL, int32(c.DBMaxConns),
		store.Session{AppName: "leadflow-" + c.Service, AsyncCommit: c.AsyncCommit, GenericPlans: !c.CustomPlans}, d.warmup); err != nil {
		d.Close()
		return nil, err
	}
	if err = store.Migrate(pctx, d.Pool); err != nil {
		d.Close()
		return nil, err
	}
	// The budgets' statements are every service's: warmed here, on both
	// connections and on any the pool opens later.
	budgets := &store.Warmup{}
	budgets.Add(budget.Warm)
	if d.Budgets, err = store.OpenWith(pctx, c.DatabaseURL, budgetConns, store.Session{AppName: "leadflow-" + c.Service + "-budgets", GenericPlans: true}, budgets); err != nil {
		d.Close()
		return nil, err
	}
	if err = store.Warm(pctx, d.Budgets, budgetConns, budgets); err != nil {
		d.Close()
		return nil, err
	}
	if d.Pub, err = messaging.NewPublisher(d.NC, logging.NewWatermill(log)); err != nil {
		d.Close()
		return nil, err
	}
	if d.Router, err = messaging.NewRouter(d.NC, d.JS, d.Pub, c.Service, log); err != nil {
		d.Close()
		return nil, err
	}
	d.Router.Instrument(d.Registry)
	d.Registry.MustRegister(messaging.NewStatsCollector(d.JS, c.Service), store.NewPoolCollector(d.Pool))
	d.Router.OnDeadLetter = d.markRunFailed
	return d, nil
}

// markRunFailed records a dead-lettered event's run as failed, so the trace
// and the Make wait show it. Best effort: the dead letter itself is durable.
func (d *Deps) markRunFailed(dl events.DeadLetter) {
	var env events.Envelope
	if len(dl.Event) == 0 || json.Unmarshal(dl.Event, &env) != nil || env.RunID == "" || !lead.ValidID(env.LeadID) {
		return
	}
	failed := env
	failed.EventID = events.ID("dead_letter", dl.Stage, env.EventID)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := runs.Record(ctx, d.Pool, failed, runs.Outcome{
		Stage: runs.StageFailed, Outcome: "dead_letter", Error: dl.Reason, TraceID: dl.TraceID,
		Detail: map[string]any{"stage": dl.Stage, "deliveries": dl.Deliveries},
	})
	if err != nil {
		d.Log.Warn().Err(err).Str("lead_id", env.LeadID).Msg("could not mark the run failed")
	}
}

// Consume registers a handler on the router (and marks the router to run).
func (d *Deps) Consume(ctx context.Context, spec messaging.ConsumerSpec, h messaging.HandlerFunc, opts ...messaging.HandleOption) error {
	d.consumers = true
	if spec.Replicas == 0 {
		spec.Replicas = d.consumerReplicas
	}
	return d.Router.Handle(ctx, spec, h, opts...)
}

// AddServer serves h on addr for the life of the process.
func (d *Deps) AddServer(addr string, h http.Handler) {
	d.servers = append(d.servers, &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 10 * time.Second})
}

// Ready checks that the consumers are subscribed (a service with
// consumers) and that NATS (JetStream answering) and Postgres are
// reachable.
func (d *Deps) Ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var errs []error
	if d.consumers && !d.running.Load() {
		errs = append(errs, errors.New("consumers: not subscribed yet"))
	}
	if d.NC == nil || !d.NC.IsConnected() {
		errs = append(errs, errors.New("nats: not connected"))
	} else if _, err := d.JS.AccountInfo(ctx); err != nil {
		errs = append(errs, fmt.Errorf("jetstream: %w", err))
	}
	if d.Pool == nil {
		errs = append(errs, errors.New("postgres: no pool"))
	} else if err := d.Pool.Ping(ctx); err != nil {
		errs = append(errs, fmt.Errorf("postgres: %w", err))
	}
	return errors.Join(errs...)
}

// HealthRoutes mounts /health, /ready and /metrics on r.
func (d *Deps) HealthRoutes(r chi.Router) {
	r.Get("/health", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}`))
	})
	r.Get("/ready", func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if err := d.Ready(req.Context()); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = fmt.Fprintf(w, `{"status":"unavailable","error":%q}`, err.Error())
			return
		}
		_, _ = w.Write([]byte(`{"status":"ready"}`))
	})
	r.Handle("/metrics", promhttp.HandlerFor(d.Registry, promhttp.HandlerOpts{}))
}

// Close releases the connections.
func (d *Deps) Close() {
	if d.NC != nil {
		_ = d.NC.Drain()
	}
	if d.Pool != nil {
		d.Pool.Close()
	}
	if d.Budgets != nil {
		d.Budgets.Close()
	}
}

// Serve runs a service until SIGTERM/SIGINT and returns the exit code:
// 0 after a clean stop, 1 when it could not start or failed.
func Serve(c Common, setup Setup) int {
	log := logging.New(c.Service, c.LogLevel, os.Stderr)
	serviceMaxProcs(c)
	serviceGC()
	if path := os.Getenv("LEADFLOW_CPU_PROFILE"); path != "" {
		// For the bench command: profile a whole run of the process.
		if f, err := os.Create(path); err == nil {
			if pprof.StartCPUProfile(f) == nil {
				defer func() { pprof.StopCPUProfile(); f.Close() }()
			}
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	flush, err := setupProcessTracing(ctx, c)
	if err != nil {
		log.Error().Err(err).Msg("cannot start tracing")
		return 1
	}
	defer flush()
	return RunContext(ctx, c, log, setup)
}

// Setup wires a service onto its connections: it registers consumers and
// HTTP servers on d.
type Setup func(ctx context.Context, d *Deps) error

// serviceMaxProcs runs a worker process on one P unless GOMAXPROCS says
// otherwise: its work is one message after another, handed between a few
// goroutines, and with more Ps each hand-off wakes an idle thread. Measured
// with the four services on two cores (docs/BENCHMARKS.md): about 20 % less
// CPU per lead at a steady rate and half the p99. A service scales by
// replicas. The webhook edge (c.RuntimeMaxProcs) keeps the runtime's
// default: 64 concurrent webhooks were acked about 1.25x as fast on two Ps,
// for 1.1-1.5x the CPU per webhook at a steady 1,000/s (2026-12-07).
func serviceMaxProcs(c Common) {
	switch {
	case os.Getenv("GOMAXPROCS") != "":
	case c.RuntimeMaxProcs:
		runtime.SetDefaultGOMAXPROCS()
	default:
		runtime.GOMAXPROCS(defaultMaxProcs)
	}
}

// serviceGC lets a service's heap grow to three times its live data between
// collections (GOGC=200) unless GOGC says otherwise. A service keeps a few MB
// live, so with Go's default (100) it collected every few hundred leads, and
// the collector and its assists took about a tenth of a worker's CPU.
// Measured with the four services on two cores (docs/BENCHMARKS.md, fifth
// session of 2026-12-07): 0.90-0.93x the services' CPU per lead, 1.03-1.07x
// the drain, peak RSS 3-6 MB higher (at most 35 MB); idle RSS the same.
// The soft memory limit (GOMEMLIMIT, 48 MiB by default) still caps the heap.
func serviceGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
}

// RunContext runs a service until ctx ends; the local stack runs all four
// services in one process this way.
func RunContext(ctx context.Context, c Common, log zerolog.Logger, setup Setup) int {
	if os.Getenv("GOMEMLIMIT") == "" {
		// A soft limit keeps each service inside its memory budget under
		// load; GOMEMLIMIT overrides it.
		debug.SetMemoryLimit(defaultMemoryLimit)
	}
	d, err := Connect(ctx, c, log)
	if err != nil {
		log.Error().Err(err).Msg("cannot start")
		return 1
	}
	defer d.Close()
	if err := setup(ctx, d); err != nil {
		log.Error().Err(err).Msg("cannot start")
		return 1
	}
	for _, port := range []int{c.HealthPort, c.MetricsPort} {
		if port > 0 {
			r := chi.NewRouter()
			d.HealthRoutes(r)
			d.AddServer(fmt.Sprintf(":%d", port), r)
		}
	}
	return d.run(ctx)
}

func (d *Deps) run(ctx context.Context) int {
	failed := make(chan error, len(d.servers)+1)
	for _, srv := range d.servers {
		ln, err := net.Listen("tcp", srv.Addr)
		if err != nil {
			d.Log.Error().Err(err).Str("addr", srv.Addr).Msg("cannot listen")
			return 1
		}
		d.Log.Info().Str("addr", ln.Addr().String()).Msg("http listening")
		go func(srv *http.Server) {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				failed <- err
			}
		}(srv)
	}
	if d.consumers {
		go func() {
			if err := d.Router.Run(context.Background()); err != nil {
				failed <- err
			}
		}()
		<-d.Router.Running()
		d.running.Store(true)
	}
	d.Log.Info().Msg("started")
	code := 0
	select {
	case <-ctx.Done():
		d.Log.Info().Msg("stopping")
	case err := <-failed:
		d.Log.Error().Err(err).Msg("failed")
		code = 1
	}
	// Stop taking new work, then finish (or nak) what is in flight; RUN.md
	// allows 10 s in all.
	sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	for _, srv := range d.servers {
		_ = srv.Shutdown(sctx)
	}
	if d.consumers {
		_ = d.Router.Close()
	}
	d.Log.Info().Msg("stopped")
	return code
}

// Service describes one service for Main and for the local stack: how to
// read its configuration and how to wire it.
type Service interface {
	Name() string
	// Build reads the configuration from l; the error names every problem.
	Build(l *config.Loader) (Common, Setup, error)
}

// Describe builds a Service from a service's own config type and functions.
func Describe[C any](name string, load func(*config.Loader) (C, error), common func(C) Common, setup func(C) Setup) Service {
	return described[C]{name: name, load: load, common: common, setup: setup}
}

type described[C any] struct {
	name   string
	load   func(*config.Loader) (C, error)
	common func(C) Common
	setup  func(C) Setup
}

func (d described[C]) Name() string { return d.name }

func (d described[C]) Build(l *config.Loader) (Common, Setup, error) {
	cfg, err := d.load(l)
	if err != nil {
		return Common{}, nil, err
	}
	return d.common(cfg), d.setup(cfg), nil
}

// Main is a service process: --version prints the build and exits 0;
// otherwise configuration from the environment (exit 2 naming every
// problem), then Serve.
func Main(s Service) int {
	if buildinfo.PrintIfAsked(s.Name(), os.Args[1:], os.Stdout) {
		return 0
	}
	common, setup, err := s.Build(config.New())
	if err != nil {
		return ExitOnConfigError(s.Name(), err)
	}
	return Serve(common, setup)
}

// ExitOnConfigError prints a configuration error and returns exit code 2.
func ExitOnConfigError(service string, err error) int {
	fmt.Fprintf(os.Stderr, "%s: %v\n", service, err)
	return 2
}
