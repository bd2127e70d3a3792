// Package stack runs the whole product in one process: an embedded NATS
// JetStream server (unless a NATS URL is given), the upstream simulators
// (unless real upstream URLs are given) and the four services, each with its
// own connections and configuration taken only from an environment map.
// The local run command and component tests use it.
package stack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/leadflow/leadflow/pkg/backbone/embedded"
	"github.com/leadflow/leadflow/pkg/config"
	"github.com/leadflow/leadflow/pkg/logging"
	"github.com/leadflow/leadflow/pkg/platform"
	"github.com/leadflow/leadflow/pkg/sim"
	enricher "github.com/leadflow/leadflow/services/enricher/service"
	ingest "github.com/leadflow/leadflow/services/ingest/service"
	notifier "github.com/leadflow/leadflow/services/notifier/service"
	resolver "github.com/leadflow/leadflow/services/resolver/service"
)

// Services in start order.
var Services = []string{"ingest", "resolver", "enricher", "notifier"}

var services = map[string]platform.Service{
	"ingest":   ingest.Service,
	"resolver": resolver.Service,
	"enricher": enricher.Service,
	"notifier": notifier.Service,
}

// The local server and the database the stack uses when DATABASE_URL is
// unset; the database is created on first use.
const (
	DefaultAdminURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	DefaultDatabase = "leadflow"
)

// ensureDatabase creates name on the server of adminURL when it is missing
// and returns its URL.
func ensureDatabase(ctx context.Context, adminURL, name string) (string, error) {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return "", fmt.Errorf("connect to the local PostgreSQL (set DATABASE_URL to use another): %w", err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		return "", err
	}
	if !exists {
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
			return "", fmt.Errorf("create database %s: %w", name, err)
		}
	}
	u, err := url.Parse(adminURL)
	if err != nil {
		return "", err
	}
	u.Path = "/" + name
	return u.String(), nil
}

// Options configure Start.
type Options struct {
	// Env is the base environment (e.g. os.Environ as a map). Upstream URLs
	// present here are used instead of simulators.
	Env map[string]string
	// Sim configures the simulators that are started.
	Sim sim.Config
	// NATSDir stores the embedded server's data; "" = a temporary directory.
	NATSDir string
	// Log receives every service's JSON logs; nil = os.Stderr.
	Log io.Writer
	// Replicas runs this many instances of every service (default 1), each
	// with its own connections, like separate processes. Ingest's extra
	// instances listen on free ports (IngestURLs).
	Replicas int
	// HealthPorts gives every instance its own free HEALTH_PORT (and ingest
	// its METRICS_PORT), listed by MetricsURLs. Otherwise both are 0 (off):
	// instances in one process cannot share a port.
	HealthPorts bool
}

// Stack is a running product.
type Stack struct {
	Env       map[string]string
	Sims      *sim.Sims // nil when every upstream is real
	NATS      *embedded.NATS
	IngestURL string
	// IngestURLs lists every ingest instance (IngestURL first).
	IngestURLs []string

	log         io.Writer
	replicas    int
	healthPorts bool
	mu          sync.Mutex
	services    map[string][]*running
	tmpDir      string
	exited      chan string
}

// Exited receives the name of a service that stopped on its own (it could
// not listen, lost its database...). The local run command stops then.
func (s *Stack) Exited() <-chan string { return s.exited }

type running struct {
	instance   string
	cancel     context.CancelFunc
	done       chan int
	registry   prometheus.Gatherer
	metricsURL string // "" without HealthPorts
}

// Start brings everything up and returns once ingest answers.
func Start(ctx context.Context, o Options) (*Stack, error) {
	env := map[string]string{}
	for k, v := range o.Env {
		env[k] = v
	}
	s := &Stack{Env: env, log: o.Log, replicas: max(o.Replicas, 1), healthPorts: o.HealthPorts,
		services: map[string][]*running{}}
	s.exited = make(chan string, len(Services)*s.replicas)
	if s.log == nil {
		s.log = os.Stderr
	}
	if env["DATABASE_URL"] == "" && env["DB_URL"] == "" {
		url, err := ensureDatabase(ctx, DefaultAdminURL, DefaultDatabase)
		if err != nil {
			return nil, err
		}
		env["DATABASE_URL"] = url
	}
	if env["NATS_URL"] == "" {
		dir := o.NATSDir
		if dir == "" {
			tmp, err := os.MkdirTemp("", "leadflow-nats-")
			if err != nil {
				return nil, err
			}
			dir, s.tmpDir = tmp, tmp
		}
		n, err := embedded.Start(dir, -1)
		if err != nil {
			return nil, fmt.Errorf("embedded NATS: %w", err)
		}
		s.NATS = n
		env["NATS_URL"] = n.URL
	}
	if err := s.startSims(o.Sim); err != nil {
		s.Stop()
		return nil, err
	}
	// Services in one process cannot share a port: HEALTH_PORT and
	// METRICS_PORT are off here (or free ports per instance, HealthPorts);
	// ingest serves /health, /ready and /metrics on its public port anyway.
	env["HEALTH_PORT"], env["METRICS_PORT"] = "0", "0"
	def(env, "WEBHOOK_SECRET", "local-webhook-secret")
	def(env, "API_KEYS", "local-api-key")
	def(env, "LOG_LEVEL", "info")
	if env["PORT"] == "" {
		port, err := FreePort()
		if err != nil {
			s.Stop()
			return nil, err
		}
		env["PORT"] = strconv.Itoa(port)
	}
	s.IngestURL = "http://127.0.0.1:" + env["PORT"]
	s.IngestURLs = []string{s.IngestURL}
	for i := 1; i < s.replicas; i++ {
		port, err := FreePort()
		if err != nil {
			s.Stop()
			return nil, err
		}
		s.IngestURLs = append(s.IngestURLs, "http://127.0.0.1:"+strconv.Itoa(port))
	}
	for _, name := range Services {
		if err := s.StartService(name); err != nil {
			s.Stop()
			return nil, err
		}
	}
	for _, u := range s.IngestURLs {
		if err := waitHTTP(ctx, u+"/health"); err != nil {
			s.Stop()
			return nil, err
		}
	}
	return s, nil
}

func def(env map[string]string, k, v string) {
	if env[k] == "" {
		env[k] = v
	}
}

// startSims starts simulators for every upstream whose URL is not given.
func (s *Stack) startSims(cfg sim.Config) error {
	env := s.Env
	need := env["C2S_BASE_URL"] == "" || env["DIRETRIX_BASE_URL"] == "" || env["WORK_API_URL"] == ""
	if !need {
		return nil
	}
	s.Sims = sim.New(cfg)
	urls, err := s.Sims.StartLocal()
	if err != nil {
		return err
	}
	c := s.Sims.Config
	if env["C2S_BASE_URL"] == "" {
		env["C2S_BASE_URL"] = urls.C2SBaseURL
		env["C2S_TOKEN"] = c.C2SToken
		if env["C2S_GATEWAY_URL"] == "" && env["LEADFLOW_USE_GATEWAY"] == "true" {
			env["C2S_GATEWAY_URL"] = urls.GatewayURL
		}
	}
	if env["DIRETRIX_BASE_URL"] == "" {
		env["DIRETRIX_BASE_URL"] = urls.DiretrixBaseURL
		env["DIRETRIX_USER"], env["DIRETRIX_PASS"] = c.DiretrixUser, c.DiretrixPass
	}
	if env["WORK_API_URL"] == "" {
		env["WORK_API_URL"] = urls.WorkAPIURL
		env["WORK_API_KEY"] = c.WorkToken
	}
	return nil
}

// StartService starts (or restarts) every instance of one service in this
// process.
func (s *Stack) StartService(name string) error {
	svc, ok := services[name]
	if !ok {
		return fmt.Errorf("unknown service %q", name)
	}
	for i := 0; i < s.replicas; i++ {
		r, err := s.startInstance(svc, name, i)
		if err != nil {
			return err
		}
		s.mu.Lock()
		s.services[name] = append(s.services[name], r)
		s.mu.Unlock()
	}
	return nil
}

// instanceEnv is the service's environment for instance i: the shared
// environment plus its own ports.
func (s *Stack) instanceEnv(name string, i int) (map[string]string, string, error) {
	env := make(map[string]string, len(s.Env)+3)
	for k, v := range s.Env {
		env[k] = v
	}
	if name == "ingest" && i > 0 {
		u, _ := url.Parse(s.IngestURLs[i])
		env["PORT"] = u.Port()
	}
	metricsURL := ""
	if s.healthPorts {
		key := "HEALTH_PORT"
		if name == "ingest" {
			key = "METRICS_PORT"
		}
		port, err := FreePort()
		if err != nil {
			return nil, "", err
		}
		env[key] = strconv.Itoa(port)
		metricsURL = "http://127.0.0.1:" + env[key] + "/metrics"
	}
	return env, metricsURL, nil
}

func (s *Stack) startInstance(svc platform.Service, name string, i int) (*running, error) {
	instance := name
	if i > 0 {
		instance = fmt.Sprintf("%s-%d", name, i+1)
	}
	env, metricsURL, err := s.instanceEnv(name, i)
	if err != nil {
		return nil, err
	}
	common, setup, err := svc.Build(config.FromMap(env))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", instance, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{instance: instance, cancel: cancel, done: make(chan int, 1), metricsURL: metricsURL}
	started := make(chan struct{})
	wrapped := func(ctx context.Context, d *platform.Deps) error {
		r.registry = d.Registry
		err := setup(ctx, d)
		close(started)
		return err
	}
	go func() {
		code := platform.RunContext(ctx, common, logging.New(name, common.LogLevel, s.log), wrapped)
		if ctx.Err() == nil {
			s.exited <- instance
		}
		r.done <- code
	}()
	select {
	case <-started:
	case code := <-r.done:
		cancel()
		return nil, fmt.Errorf("%s exited with %d while starting", instance, code)
	case <-time.After(30 * time.Second):
		cancel()
		return nil, fmt.Errorf("%s did not start", instance)
	}
	if metricsURL != "" {
		if err := waitHTTP(context.Background(), strings.TrimSuffix(metricsURL, "/metrics")+"/health"); err != nil {
			cancel()
			<-r.done
			return nil, fmt.Errorf("%s: %w", instance, err)
		}
	}
	return r, nil
}

// StopService stops every instance of one service gracefully and returns
// the worst exit code.
func (s *Stack) StopService(name string) int {
	s.mu.Lock()
	rs := s.services[name]
	delete(s.services, name)
	s.mu.Unlock()
	code := 0
	for _, r := range rs {
		r.cancel()
	}
	for _, r := range rs {
		code = max(code, <-r.done)
	}
	return code
}

// Gatherers returns each running instance's metrics registry, by instance
// name ("resolver", "resolver-2", ...).
func (s *Stack) Gatherers() map[string]prometheus.Gatherer {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]prometheus.Gatherer{}
	for _, rs := range s.services {
		for _, r := range rs {
			out[r.instance] = r.registry
		}
	}
	return out
}

// MetricsURLs returns each running instance's private /metrics URL (with
// Options.HealthPorts), by instance name.
func (s *Stack) MetricsURLs() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]string{}
	for _, rs := range s.services {
		for _, r := range rs {
			if r.metricsURL != "" {
				out[r.instance] = r.metricsURL
			}
		}
	}
	return out
}

// Stop stops the services, the simulators and the embedded NATS server.
func (s *Stack) Stop() {
	for i := len(Services) - 1; i >= 0; i-- {
		s.StopService(Services[i])
	}
	if s.Sims != nil {
		_ = s.Sims.Close()
	}
	if s.NATS != nil {
		s.NATS.Shutdown()
	}
	if s.tmpDir != "" {
		_ = os.RemoveAll(s.tmpDir)
	}
}

// FreePort asks the kernel for an unused TCP port, never one it already
// handed out in this process: the port is free only until its taker binds
// it, and a child process binds it later, so the kernel may offer it again
// in between (two services then race for one port; the loser exits).
func FreePort() (int, error) {
	handedMu.Lock()
	defer handedMu.Unlock()
	for range 1000 {
		port, err := kernelPort()
		if err != nil {
			return 0, err
		}
		if !handed[port] {
			handed[port] = true
			return port, nil
		}
	}
	return 0, errors.New("stack: no free port the process has not handed out already")
}

var (
	handedMu sync.Mutex
	handed   = map[int]bool{}
	// kernelPort binds port 0 and closes it (a variable for the test).
	kernelPort = func() (int, error) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		defer ln.Close()
		return ln.Addr().(*net.TCPAddr).Port, nil
	}
)

func waitHTTP(ctx context.Context, url string) error {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if err := ctx.Err(); err != nil {
			return err
		}
		if ok := get(url); ok {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("ingest did not answer " + url)
}
