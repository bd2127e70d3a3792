package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/leadflow/leadflow/cmd/stack/stack"
	"github.com/leadflow/leadflow/pkg/backbone/embedded"
	"github.com/leadflow/leadflow/pkg/sim"
	"github.com/leadflow/leadflow/pkg/testinfra"
)

type options struct {
	backlog, live, concurrency, workers int
	analyzeEvery                        time.Duration
}

type service struct {
	name  string
	cmd   *exec.Cmd
	idle  int64 // KiB
	peak  atomic.Int64
	ready chan struct{}
}

func run(ctx context.Context, o options) error {
	tmp, err := os.MkdirTemp("", "leadflow-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	fmt.Fprintln(os.Stderr, "building binaries...")
	for _, s := range stack.Services {
		if _, err := testinfra.BuildService(tmp, "services/"+s); err != nil {
			return err
		}
	}
	dbURL, drop, err := testinfra.CreateDatabase(ctx, "bench")
	if err != nil {
		return err
	}
	defer drop()
	broker, err := embedded.Start(filepath.Join(tmp, "nats"), -1)
	if err != nil {
		return err
	}
	defer broker.Shutdown()
	total := o.backlog + o.live
	sims := sim.New(sim.Config{Seed: 42, People: total, Leads: total})
	urls, err := sims.StartLocal()
	if err != nil {
		return err
	}
	defer sims.Close()
	port, _ := stack.FreePort()
	c := sims.Config
	w := strconv.Itoa(o.workers)
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"DATABASE_URL=" + dbURL, "NATS_URL=" + broker.URL, "PORT=" + strconv.Itoa(port), "LOG_LEVEL=warn",
		"HEALTH_PORT=0", "METRICS_PORT=0", // four processes on one machine: no shared default ports
		"C2S_BASE_URL=" + urls.C2SBaseURL, "C2S_TOKEN=" + c.C2SToken,
		"DIRETRIX_BASE_URL=" + urls.DiretrixBaseURL, "DIRETRIX_USER=" + c.DiretrixUser, "DIRETRIX_PASS=" + c.DiretrixPass,
		"WORK_API_URL=" + urls.WorkAPIURL, "WORK_API_KEY=" + c.WorkToken,
		"WEBHOOK_SECRET=bench", "API_KEYS=bench",
		// Zero-latency simulators: lift the production pacing.
		"C2S_RATE=0", "DIRETRIX_RATE=0", "WORK_API_RATE=0",
		"C2S_CONCURRENCY=0", "DIRETRIX_CONCURRENCY=0", "WORK_API_CONCURRENCY=0",
		"RESOLVER_WORKERS=" + w, "ENRICHER_WORKERS=" + w, "NOTIFIER_WORKERS=" + w,
		"DB_MAX_CONNS=10",
	}
	svcs := map[string]*service{}
	startSvc := func(name string) error {
		s := &service{name: name, ready: make(chan struct{})}
		s.cmd = exec.Command(filepath.Join(tmp, name))
		s.cmd.Env = env
		if os.Getenv("BENCH_PROFILE_DIR") != "" {
			s.cmd.Env = append(append([]string{}, env...), "LEADFLOW_CPU_PROFILE="+filepath.Join(os.Getenv("BENCH_PROFILE_DIR"), name+".pprof"))
		}
		stderr, _ := s.cmd.StderrPipe()
		if err := s.cmd.Start(); err != nil {
			return err
		}
		go func() {
			sc := bufio.NewScanner(stderr)
			for sc.Scan() {
				line := sc.Text()
				if strings.Contains(line, `"level":"error"`) {
					fmt.Fprintln(os.Stderr, name+": "+line)
				}
			}
		}()
		svcs[name] = s
		return nil
	}
	defer func() {
		for _, s := range svcs {
			_ = s.cmd.Process.Signal(syscall.SIGTERM)
			_, _ = s.cmd.Process.Wait()
		}
	}()
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	for _, n := range stack.Services {
		if err := startSvc(n); err != nil {
			return err
		}
	}
	if err := waitOK(base + "/ready"); err != nil {
		return err
	}
	// Idle: everything up and provisioned, nothing to do.
	time.Sleep(5 * time.Second)
	for _, s := range svcs {
		s.idle = rss(s.cmd.Process.Pid)
	}
	workers := []string{"resolver", "enricher", "notifier"}
	signal := func(sig syscall.Signal) {
		for _, n := range workers {
			_ = svcs[n].cmd.Process.Signal(sig)
		}
	}
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return err
	}
	defer pool.Close()

	// This machine's Postgres runs with autovacuum off, so nothing would ever
	// ANALYZE the growing tables and the planner would keep its empty-table
	// estimates. Production servers autoanalyze; do the same here.
	analyzeCtx, stopAnalyze := context.WithCancel(ctx)
	defer stopAnalyze()
	go func() {
		if o.analyzeEvery <= 0 {
			return
		}
		t := time.NewTicker(o.analyzeEvery)
		defer t.Stop()
		for {
			select {
			case <-analyzeCtx.Done():
				return
			case <-t.C:
				_, _ = pool.Exec(analyzeCtx, "ANALYZE")
			}
		}
	}()

	leads := sims.Pop.Leads()
	var bodies [][]byte
	for _, l := range leads {
		if len(l.ID) == 32 && l.ID != "5f2c9a7e41b8d3c6a0e1f4b27d9c8e10" && l.ID != "a1b2c3d4e5f60718293a4b5c6d7e8f90" {
			bodies = append(bodies, webhook(l))
		}
	}
	if len(bodies) < total {
		return fmt.Errorf("population has %d leads, need %d", len(bodies), total)
	}

	// Phase 1: ingest alone (the workers are stopped with SIGSTOP), acked
	// webhooks/s.
	fmt.Fprintf(os.Stderr, "phase 1: %d webhooks to ingest alone...\n", o.backlog)
	sample := sampler(svcs)
	signal(syscall.SIGSTOP)
	acks, p99, err := blast(base, bodies[:o.backlog], o.concurrency)
	signal(syscall.SIGCONT)
	if err != nil {
		return err
	}

	// Phase 2: the workers drain the backlog.
	fmt.Fprintln(os.Stderr, "phase 2: draining the backlog...")
	start := time.Now()
	if err := waitFinal(ctx, pool, o.backlog, 10*time.Minute); err != nil {
		return err
	}
	drain := float64(o.backlog) / time.Since(start).Seconds()

	// Phase 3: live end to end.
	fmt.Fprintf(os.Stderr, "phase 3: %d leads end to end...\n", o.live)
	start = time.Now()
	if _, _, err := blast(base, bodies[o.backlog:total], o.concurrency); err != nil {
		return err
	}
	if err := waitFinal(ctx, pool, total, 10*time.Minute); err != nil {
		return err
	}
	live := float64(o.live) / time.Since(start).Seconds()
	sample()

	// Paid calls against unique CPFs.
	unique := map[string]bool{}
	for _, b := range bodies[:total] {
		var ev struct{ ID string }
		_ = json.Unmarshal(b, &ev)
		for _, cpf := range sims.Pop.ExpectedPersons(ev.ID) {
			unique[cpf] = true
		}
	}
	paid := sims.WorkAPI.TotalPaidCalls()

	fmt.Printf("| metric | result | target |\n|---|---|---|\n")
	fmt.Printf("| acked webhooks/s (ingest alone, %d clients) | %.0f (p99 %.1f ms) | ≥ 5,000 |\n", o.concurrency, acks, p99)
	fmt.Printf("| pipeline drain, leads/s (%d-lead backlog) | %.0f | ≥ 500 |\n", o.backlog, drain)
	fmt.Printf("| live end to end, leads/s (%d leads) | %.0f | ≥ 500 |\n", o.live, live)
	names := []string{"ingest", "resolver", "enricher", "notifier"}
	for _, n := range names {
		s := svcs[n]
		fmt.Printf("| %s RSS idle / peak under load | %.1f MB / %.1f MB | ≤ 20 / ≤ 64 MB |\n", n, float64(s.idle)/1024, float64(s.peak.Load())/1024)
	}
	fmt.Printf("| paid Work API calls / unique CPFs | %d / %d | equal |\n", paid, len(unique))
	fmt.Printf("| C2S messages posted | %d |  |\n", sims.C2S.MessageCount())
	return nil
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

// blast posts bodies with n concurrent clients; it returns acked/s and p99 ms.
func blast(base string, bodies [][]byte, n int) (float64, float64, error) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n}, Timeout: 30 * time.Second}
	url := base + "/api/v1/webhooks/c2s?token=bench"
	var next atomic.Int64
	var acked atomic.Int64
	lat := make([][]time.Duration, n)
	var firstErr atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < n; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(bodies) {
					return
				}
				t0 := time.Now()
				resp, err := client.Post(url, "application/json", bytes.NewReader(bodies[i]))
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				// Drain the body so the connection is reused (keep-alive).
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusAccepted {
					acked.Add(1)
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		}(w)
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	if err, _ := firstErr.Load().(error); err != nil {
		return 0, 0, err
	}
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	p99 := 0.0
	if len(all) > 0 {
		p99 = float64(all[len(all)*99/100].Microseconds()) / 1000
	}
	if int(acked.Load()) != len(bodies) {
		return 0, 0, fmt.Errorf("only %d of %d webhooks were acked with 202", acked.Load(), len(bodies))
	}
	return float64(acked.Load()) / elapsed, p99, nil
}

func waitFinal(ctx context.Context, pool *pgxpool.Pool, want int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		var n int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM pipeline.lead_runs WHERE finished_at IS NOT NULL`).Scan(&n); err != nil {
			return err
		}
		if n >= want {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("runs did not finish within %s", timeout)
}

// sampler records each service's peak RSS every 100 ms until stopped.
func sampler(svcs map[string]*service) func() {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				for _, s := range svcs {
					if kb := rss(s.cmd.Process.Pid); kb > s.peak.Load() {
						s.peak.Store(kb)
					}
				}
			}
		}
	}()
	return func() { close(done) }
}

// rss reads VmRSS (KiB) from /proc.
func rss(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				n, _ := strconv.ParseInt(f[1], 10, 64)
				return n
			}
		}
	}
	return 0
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
