package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/leadflow/leadflow/cmd/stack/stack"
	"github.com/leadflow/leadflow/pkg/backbone/embedded"
	"github.com/leadflow/leadflow/pkg/sim"
	"github.com/leadflow/leadflow/pkg/store"
	"github.com/leadflow/leadflow/pkg/testinfra"
)

// env is what one measured target runs against: a fresh database with the
// product's migrations, its own embedded JetStream server and its own
// simulators. The simulators always use seed 42, so the product and the floor
// get the same leads and the same people.
type env struct {
	dbURL, dbName string
	drop          func()
	admin         *pgx.Conn     // to the server's postgres database: reads pg_stat_*
	pool          *pgxpool.Pool // the bench's own queries on the target's database
	own           atomic.Int64  // transactions the bench itself committed there
	before        pgStats
	dir           string
	broker        *embedded.NATS
	nc            *nats.Conn
	js            jetstream.JetStream
	sims          *sim.Sims
	leads         []sim.Lead // distinct simulated leads, in posting order
	bodies        [][]byte   // their on_create_lead webhooks

	analyzedMu sync.Mutex
	analyzed   []analyzeRun // each of the analyzer's ANALYZEs
}

// analyzeRun is one ANALYZE: when it ended (from the analyzer: a time; from
// analyzedSince: an offset) and how long it took.
type analyzeRun struct {
	ended time.Time
	at    time.Duration
	took  time.Duration
}

// analyzedSince returns the ANALYZEs that ended after since, with their
// offsets from it.
func (e *env) analyzedSince(since time.Time) []analyzeRun {
	e.analyzedMu.Lock()
	defer e.analyzedMu.Unlock()
	var out []analyzeRun
	for _, a := range e.analyzed {
		if a.ended.After(since) {
			a.at = a.ended.Sub(since)
			out = append(out, a)
		}
	}
	return out
}

// pgStats are the database's counters in pg_stat_database.
type pgStats struct{ commits, rollbacks, inserted, updated, deleted int64 }

func newEnv(ctx context.Context, o options, dir string, leads int) (e *env, err error) {
	e = &env{dir: dir}
	defer func() {
		if err != nil {
			e.close()
		}
	}()
	if e.dbURL, e.drop, err = testinfra.CreateDatabase(ctx, "bench"); err != nil {
		return e, err
	}
	u, _ := url.Parse(e.dbURL)
	e.dbName = strings.TrimPrefix(u.Path, "/")
	if e.admin, err = pgx.Connect(ctx, testinfra.AdminURL()); err != nil {
		return e, err
	}
	// Migrate here, so the counters start after the schema exists; the
	// services' and the floor's own migrations then find nothing to do.
	mig, err := pgxpool.New(ctx, e.dbURL)
	if err != nil {
		return e, err
	}
	err = store.Migrate(ctx, mig)
	mig.Close()
	if err != nil {
		return e, err
	}
	if e.before, err = e.stats(ctx); err != nil {
		return e, err
	}
	if e.pool, err = pgxpool.New(ctx, e.dbURL); err != nil {
		return e, err
	}
	if e.broker, err = embedded.Start(filepath.Join(dir, "nats"), -1); err != nil {
		return e, err
	}
	if e.nc, err = nats.Connect(e.broker.URL); err != nil {
		return e, err
	}
	if e.js, err = jetstream.New(e.nc); err != nil {
		return e, err
	}
	latency := sim.Faults{LatencyMin: o.simLatency}
	e.sims = sim.New(sim.Config{Seed: 42, People: leads, Leads: leads,
		Faults: sim.FaultSet{C2S: latency, Gateway: latency, Diretrix: latency, WorkAPI: latency}})
	if _, err = e.sims.StartLocal(); err != nil {
		return e, err
	}
	for _, l := range e.sims.Pop.Leads() {
		if len(l.ID) == 32 && l.ID != "5f2c9a7e41b8d3c6a0e1f4b27d9c8e10" && l.ID != "a1b2c3d4e5f60718293a4b5c6d7e8f90" {
			e.leads = append(e.leads, l)
			e.bodies = append(e.bodies, webhook(l))
		}
	}
	if len(e.leads) < leads {
		return e, fmt.Errorf("population has %d leads, need %d", len(e.leads), leads)
	}
	e.leads, e.bodies = e.leads[:leads], e.bodies[:leads]
	return e, nil
}

func (e *env) close() {
	if e.sims != nil {
		e.sims.Close()
	}
	if e.nc != nil {
		e.nc.Close()
	}
	if e.broker != nil {
		e.broker.Shutdown()
	}
	if e.pool != nil {
		e.pool.Close()
	}
	if e.admin != nil {
		e.admin.Close(context.Background())
	}
	if e.drop != nil && os.Getenv("BENCH_KEEP_DB") == "" {
		e.drop()
	} else if e.drop != nil {
		fmt.Fprintf(os.Stderr, "kept the database (BENCH_KEEP_DB): %s\n", dbName(e.dbURL))
	}
	os.RemoveAll(e.dir)
}

// count runs one counting query on the target's database (one transaction of
// the bench's own, subtracted from the target's).
func (e *env) count(ctx context.Context, sql string) (int, error) {
	e.own.Add(1)
	var n int
	err := e.pool.QueryRow(ctx, sql).Scan(&n)
	return n, err
}

// analyzer runs ANALYZE every d until stopped. This machine's Postgres runs
// with autovacuum off, so nothing would ever ANALYZE the growing tables and
// the planner would keep its empty-table estimates. Production servers
// autoanalyze; do the same here. ANALYZE runs in one transaction so that it
// counts as one of the bench's own.
func (e *env) analyzer(d time.Duration) func() {
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	if d > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(d)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					e.own.Add(1)
					start := time.Now()
					_ = pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error { _, err := tx.Exec(ctx, "ANALYZE"); return err })
					e.analyzedMu.Lock()
					e.analyzed = append(e.analyzed, analyzeRun{ended: time.Now(), took: time.Since(start)})
					e.analyzedMu.Unlock()
				}
			}
		}()
	}
	return func() { stop(); wg.Wait() }
}

// stats reads pg_stat_database for the target's database. A backend flushes
// its counters when it exits (and otherwise up to seconds later), so read it
// when nobody is connected: before the target starts and after it stopped.
func (e *env) stats(ctx context.Context) (s pgStats, err error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		var n int
		if err := e.admin.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = $1`, e.dbName).Scan(&n); err != nil {
			return s, err
		}
		if n == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	err = e.admin.QueryRow(ctx, `SELECT xact_commit, xact_rollback, tup_inserted, tup_updated, tup_deleted
		FROM pg_stat_database WHERE datname = $1`, e.dbName).Scan(&s.commits, &s.rollbacks, &s.inserted, &s.updated, &s.deleted)
	return s, err
}

// backendCPU adds up the CPU time of the Postgres backends serving the
// target's database. Backends live as long as their pooled connection, so
// sampling them often and keeping each one's last value loses little.
type backendCPU struct {
	mu   sync.Mutex
	cpu  map[int]time.Duration // pid → utime + stime
	apps map[int]string        // pid → application_name (the product's services set theirs)
}

func (e *env) sampleBackends(ctx context.Context, b *backendCPU) {
	e.own.Add(1)
	rows, err := e.pool.Query(ctx, `SELECT pid, application_name FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`, e.dbName)
	if err != nil {
		return
	}
	type backend struct {
		PID int32
		App string
	}
	backends, err := pgx.CollectRows(rows, pgx.RowToStructByPos[backend])
	if err != nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cpu == nil {
		b.cpu, b.apps = map[int]time.Duration{}, map[int]string{}
	}
	for _, be := range backends {
		pid := int(be.PID)
		if t, ok := testinfra.ProcCPU(pid); ok && t > b.cpu[pid] {
			b.cpu[pid] = t
		}
		b.apps[pid] = be.App
	}
}

func (b *backendCPU) total() time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	var n time.Duration
	for _, t := range b.cpu {
		n += t
	}
	return n
}

// byApp is total() per application_name, the "leadflow-" prefix dropped.
func (b *backendCPU) byApp() map[string]time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[string]time.Duration{}
	for pid, t := range b.cpu {
		out[strings.TrimPrefix(b.apps[pid], "leadflow-")] += t
	}
	return out
}

// loadAvg is the machine's 1-minute load average.
func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); len(f) > 0 {
		return f[0]
	}
	return "?"
}

// simRequests is how many calls the simulators answered in all.
func (e *env) simRequests() int64 {
	return e.sims.C2S.RequestCount() + e.sims.Gateway.RequestCount() + e.sims.Diretrix.RequestCount() + e.sims.WorkAPI.RequestCount()
}

// service is one process of a target.
type service struct {
	name     string
	cmd      *exec.Cmd
	idle     int64 // KiB
	idleAnon int64 // KiB, RssAnon
	peak     atomic.Int64
	ready    string        // URL answering 200 once it is up
	cpu      time.Duration // user + system CPU over the process's life, once it exited
}

// target is a running system under test: the product's four processes or
// the floor's one.
type target struct {
	kind   string // "product" or "floor"
	procs  []*service
	base   string // the webhook edge
	stream string // its JetStream stream
	pause  func() error
	resume func() error
	// discard ends the stopped stages without letting them run (-edge-only:
	// their backlog is not the edge's cost); nil when pausing is a flag.
	discard func()
	done    func(ctx context.Context) (int, error) // leads whose run is over
	once    sync.Once
}

func startProc(name, bin string, env []string, ready string, keep func(string) bool) (*service, error) {
	s := &service{name: name, ready: ready, cmd: exec.Command(bin)}
	s.cmd.Env = env
	if d := os.Getenv("BENCH_PROFILE_DIR"); d != "" && name != "floor" {
		s.cmd.Env = append(append([]string{}, env...), "LEADFLOW_CPU_PROFILE="+filepath.Join(d, name+".pprof"))
	}
	stderr, _ := s.cmd.StderrPipe()
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			if line := sc.Text(); keep(line) {
				fmt.Fprintln(os.Stderr, name+": "+line)
			}
		}
	}()
	return s, nil
}

// baseEnv is the environment the product's services and the floor share.
func baseEnv(e *env, port int) []string {
	c, u := e.sims.Config, e.sims.URLs
	return []string{
		"PATH=" + os.Getenv("PATH"),
		"DATABASE_URL=" + e.dbURL, "NATS_URL=" + e.broker.URL, "PORT=" + strconv.Itoa(port), "LOG_LEVEL=warn", "HEALTH_PORT=0", "METRICS_PORT=0",
		"C2S_BASE_URL=" + u.C2SBaseURL, "C2S_TOKEN=" + c.C2SToken,
		"DIRETRIX_BASE_URL=" + u.DiretrixBaseURL, "DIRETRIX_USER=" + c.DiretrixUser, "DIRETRIX_PASS=" + c.DiretrixPass,
		"WORK_API_URL=" + u.WorkAPIURL, "WORK_API_KEY=" + c.WorkToken,
		"WEBHOOK_SECRET=bench", "API_KEYS=bench",
	}
}

func startProduct(e *env, o options, bins string) (*target, error) {
	port, _ := stack.FreePort()
	w := strconv.Itoa(o.workers)
	env := append(baseEnv(e, port),
		// Zero-latency simulators: lift the production pacing.
		"C2S_RATE=0", "DIRETRIX_RATE=0", "WORK_API_RATE=0",
		"C2S_CONCURRENCY=0", "DIRETRIX_CONCURRENCY=0", "WORK_API_CONCURRENCY=0",
		"RESOLVER_WORKERS="+w, "ENRICHER_WORKERS="+w, "NOTIFIER_WORKERS="+w,
		"DB_MAX_CONNS=10",
	)
	env = append(env, o.serviceEnv...)
	t := &target{kind: "product", base: "http://127.0.0.1:" + strconv.Itoa(port), stream: "LEADS"}
	for _, n := range stack.Services {
		ready, senv := t.base+"/ready", env
		if n != "ingest" {
			hp, _ := stack.FreePort()
			ready, senv = "http://127.0.0.1:"+strconv.Itoa(hp)+"/ready", append(append([]string{}, env...), "HEALTH_PORT="+strconv.Itoa(hp))
		}
		s, err := startProc(n, filepath.Join(bins, n), senv, ready, func(l string) bool { return strings.Contains(l, `"level":"error"`) })
		if err != nil {
			t.stop()
			return nil, err
		}
		t.procs = append(t.procs, s)
	}
	// The workers are stopped with SIGSTOP: ingest keeps answering.
	signal := func(sig syscall.Signal) error {
		for _, s := range t.procs[1:] {
			if err := s.cmd.Process.Signal(sig); err != nil {
				return err
			}
		}
		return nil
	}
	t.pause = func() error { return signal(syscall.SIGSTOP) }
	t.resume = func() error { return signal(syscall.SIGCONT) }
	t.discard = func() { _ = signal(syscall.SIGKILL) }
	t.done = func(ctx context.Context) (int, error) {
		return e.count(ctx, `SELECT count(*) FROM pipeline.lead_runs WHERE finished_at IS NOT NULL`)
	}
	return t, nil
}

func startFloor(e *env, o options, bins string) (*target, error) {
	port, _ := stack.FreePort()
	t := &target{kind: "floor", base: "http://127.0.0.1:" + strconv.Itoa(port), stream: "FLOOR"}
	s, err := startProc("floor", filepath.Join(bins, "floor"), append(baseEnv(e, port), "WORKERS="+strconv.Itoa(o.workers)),
		t.base+"/ready", func(string) bool { return true })
	if err != nil {
		return nil, err
	}
	t.procs = []*service{s}
	post := func(path string) error {
		resp, err := http.Post(t.base+path, "", nil)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("floor %s: %s", path, resp.Status)
		}
		return nil
	}
	t.pause = func() error { return post("/_floor/pause") }
	t.resume = func() error { return post("/_floor/resume") }
	t.done = func(ctx context.Context) (int, error) {
		resp, err := http.Get(t.base + "/_floor/done")
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		n, err := strconv.Atoi(strings.Fields(string(b) + " x")[0])
		return n, err
	}
	return t, nil
}

// postgresWork sums the product processes' Postgres round trips,
// statements and liveness pings from their /metrics (ingest's on its edge,
// the workers' on their health ports); -1s for the floor or when a scrape
// fails. edgeOnly counts ingest's alone (the stopped workers cannot answer).
func (t *target) postgresWork(edgeOnly bool) (trips, stmts, pings float64) {
	if t.kind != "product" {
		return -1, -1, -1
	}
	procs := t.procs
	if edgeOnly {
		procs = procs[:1]
	}
	for i, s := range procs {
		url := strings.TrimSuffix(s.ready, "/ready") + "/metrics"
		if i == 0 {
			url = t.base + "/metrics"
		}
		resp, err := http.Get(url)
		if err != nil {
			return -1, -1, -1
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, line := range strings.Split(string(b), "\n") {
			name, val, ok := strings.Cut(line, " ")
			if !ok {
				continue
			}
			v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
			if err != nil {
				continue
			}
			switch name {
			case "leadflow_postgres_round_trips_total":
				trips += v
			case "leadflow_postgres_statements_total":
				stmts += v
			case "leadflow_postgres_pings_total":
				pings += v
			}
		}
	}
	return trips, stmts, pings
}

// stop ends every process with SIGTERM (SIGCONT first, in case it was
// paused) and waits for it.
func (t *target) stop() {
	t.once.Do(func() {
		for _, s := range t.procs {
			_ = s.cmd.Process.Signal(syscall.SIGCONT)
			_ = s.cmd.Process.Signal(syscall.SIGTERM)
		}
		for _, s := range t.procs {
			if st, err := s.cmd.Process.Wait(); err == nil {
				s.cpu = st.UserTime() + st.SystemTime()
			}
		}
	})
}

func (t *target) waitReady() error {
	for _, s := range t.procs {
		if err := waitOK(s.ready); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}
	return nil
}

// waitDone waits until want runs are over.
func (t *target) waitDone(ctx context.Context, want int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		n, err := t.done(ctx)
		if err != nil {
			return err
		}
		if n >= want {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s: runs did not finish within %s", t.kind, timeout)
}

// streamMsgs is how many messages the target's stream holds.
func (e *env) streamMsgs(ctx context.Context, stream string) (uint64, error) {
	st, err := e.js.Stream(ctx, stream)
	if err != nil {
		return 0, err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.State.Msgs, nil
}

func webhook(l sim.Lead) []byte {
	b, _ := json.Marshal(map[string]any{
		"id":          l.ID,
		"hook_action": "on_create_lead",
		"attributes": map[string]any{
			"updated_at": "2025-11-21T13:30:00Z",
			"customer":   map[string]string{"name": l.Name, "email": l.Email, "phone": l.Phone},
		},
	})
	return b
}

func waitOK(url string) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready", url)
}

// dbName is a database URL's database name (no credentials).
func dbName(raw string) string {
	if i := strings.LastIndex(raw, "/"); i >= 0 {
		name := raw[i+1:]
		if j := strings.IndexByte(name, '?'); j >= 0 {
			name = name[:j]
		}
		return name
	}
	return "?"
}
