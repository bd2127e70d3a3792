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
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

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
}

// Stack is a running product.
type Stack struct {
	Env       map[string]string
	Sims      *sim.Sims // nil when every upstream is real
	NATS      *embedded.NATS
	IngestURL string

	log      io.Writer
	mu       sync.Mutex
	services map[string]*running
	tmpDir   string
	exited   chan string
}

// Exited receives the name of a service that stopped on its own (it could
// not listen, lost its database...). The local run command stops then.
func (s *Stack) Exited() <-chan string { return s.exited }

type running struct {
	cancel context.CancelFunc
	done   chan int
}

// Start brings everything up and returns once ingest answers.
func Start(ctx context.Context, o Options) (*Stack, error) {
	env := map[string]string{}
	for k, v := range o.Env {
		env[k] = v
	}
	s := &Stack{Env: env, log: o.Log, services: map[string]*running{}, exited: make(chan string, len(Services))}
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
	// Four services in one process cannot share one health port; ingest
	// serves /health, /ready and /metrics on its public port anyway.
	delete(env, "HEALTH_PORT")
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
	for _, name := range Services {
		if err := s.StartService(name); err != nil {
			s.Stop()
			return nil, err
		}
	}
	if err := waitHTTP(ctx, s.IngestURL+"/health"); err != nil {
		s.Stop()
		return nil, err
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

// StartService starts (or restarts) one service in this process.
func (s *Stack) StartService(name string) error {
	svc, ok := services[name]
	if !ok {
		return fmt.Errorf("unknown service %q", name)
	}
	common, setup, err := svc.Build(config.FromMap(s.Env))
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan int, 1)}
	started := make(chan struct{})
	wrapped := func(ctx context.Context, d *platform.Deps) error {
		err := setup(ctx, d)
		close(started)
		return err
	}
	go func() {
		code := platform.RunContext(ctx, common, logging.New(name, common.LogLevel, s.log), wrapped)
		if ctx.Err() == nil {
			s.exited <- name
		}
		r.done <- code
	}()
	select {
	case <-started:
	case code := <-r.done:
		cancel()
		return fmt.Errorf("%s exited with %d while starting", name, code)
	case <-time.After(30 * time.Second):
		cancel()
		return fmt.Errorf("%s did not start", name)
	}
	s.mu.Lock()
	s.services[name] = r
	s.mu.Unlock()
	return nil
}

// StopService stops one service gracefully and returns its exit code.
func (s *Stack) StopService(name string) int {
	s.mu.Lock()
	r := s.services[name]
	delete(s.services, name)
	s.mu.Unlock()
	if r == nil {
		return 0
	}
	r.cancel()
	return <-r.done
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

// FreePort asks the kernel for an unused TCP port.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

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
