package e2e

// Helpers of the reliability suite (reliability_test.go): a cluster of real
// service processes (1 ingest, 2 replicas of resolver, enricher and
// notifier) on a fresh Postgres database, an embedded NATS server on a fixed
// port and directory (so it can be shut down and started again), and the
// four simulators in this process. Every wait is a poll on real state
// (Postgres, JetStream, the simulators) with a deadline.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/leadflow/leadflow/cmd/leadflowctl/cli"
	"github.com/leadflow/leadflow/cmd/stack/stack"
	"github.com/leadflow/leadflow/pkg/backbone/embedded"
	"github.com/leadflow/leadflow/pkg/backbone/events"
	"github.com/leadflow/leadflow/pkg/backbone/messaging"
	"github.com/leadflow/leadflow/pkg/domain/brdata"
	"github.com/leadflow/leadflow/pkg/sim"
	"github.com/leadflow/leadflow/pkg/store/ledger"
	"github.com/leadflow/leadflow/pkg/testinfra"
)

// reliabilityLong reports the long form (LEADFLOW_RELIABILITY=long).
func reliabilityLong() bool { return os.Getenv("LEADFLOW_RELIABILITY") == "long" }

// size picks the short (default) or the long figure.
func size[T any](short, long T) T {
	if reliabilityLong() {
		return long
	}
	return short
}

// reliabilitySuite skips under -short (the suite runs real processes for
// minutes) and runs the scenarios of the suite side by side.
func reliabilitySuite(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("reliability suite: real processes for minutes (run without -short)")
	}
	if os.Getenv("LEADFLOW_RELIABILITY") == "off" {
		t.Skip("LEADFLOW_RELIABILITY=off")
	}
	t.Parallel()
}

var workerServices = []string{"resolver", "enricher", "notifier"}

// clusterSpec describes one scenario's cluster.
type clusterSpec struct {
	Name string
	Sim  sim.Config
	// Env is added to every service's environment.
	Env map[string]string
	// Gateway routes C2S through the simulated gateway (direct C2S is the
	// fallback).
	Gateway bool
	// Replicas of each worker service; 0 = 2.
	Replicas int
}

// relProc is one service process.
type relProc struct {
	label, name string
	cmd         *exec.Cmd
	out         *syncBuffer
	exited      chan struct{}
	err         error
	killed      bool // by the test (SIGKILL)
}

func (p *relProc) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// cluster is the product under test with its infrastructure.
type cluster struct {
	t       *testing.T
	spec    clusterSpec
	bin     string
	dbURL   string
	pool    *pgxpool.Pool
	sims    *sim.Sims
	nc      *nats.Conn
	js      jetstream.JetStream
	env     map[string]string
	ingest  string
	started time.Time

	natsMu       sync.Mutex
	natsDir      string
	natsPort     int
	natsSrv      *embedded.NATS
	natsRestarts int

	mu         sync.Mutex
	ports      map[string]int      // each label's private health/metrics port
	procs      map[string]*relProc // current process per label
	all        []*relProc          // every process ever started
	kills      int
	killedBy   map[string]int // kills per service
	unexpected []string       // processes that exited without being killed
}

// newCluster starts everything and returns once every process is serving.
func newCluster(t *testing.T, spec clusterSpec) *cluster {
	t.Helper()
	if spec.Replicas == 0 {
		spec.Replicas = 2
	}
	c := &cluster{t: t, spec: spec, bin: binaries(t), procs: map[string]*relProc{}, started: time.Now()}
	c.dbURL = testinfra.NewDatabase(t)
	c.pool = testinfra.NewPool(t, c.dbURL)

	c.sims = sim.New(spec.Sim)
	urls, err := c.sims.StartLocal()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.sims.Close() })

	// NATS on a fixed port and directory: shut down and started again on
	// both, it keeps its streams and the services reconnect to it.
	c.natsDir = t.TempDir()
	if c.natsPort, err = stack.FreePort(); err != nil {
		t.Fatal(err)
	}
	if c.natsSrv, err = embedded.Start(c.natsDir, c.natsPort); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.natsMu.Lock()
		defer c.natsMu.Unlock()
		if c.natsSrv != nil {
			c.natsSrv.Shutdown()
		}
	})
	// Registered after NATS: the processes are killed before it stops.
	t.Cleanup(c.killAll)
	natsURL := fmt.Sprintf("nats://127.0.0.1:%d", c.natsPort)
	if c.nc, err = nats.Connect(natsURL, nats.MaxReconnects(-1), nats.ReconnectWait(200*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.nc.Close)
	if c.js, err = jetstream.New(c.nc); err != nil {
		t.Fatal(err)
	}

	port, err := stack.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	cfg := c.sims.Config
	c.env = map[string]string{
		"DATABASE_URL":      c.dbURL,
		"NATS_URL":          natsURL,
		"PORT":              strconv.Itoa(port),
		"C2S_BASE_URL":      urls.C2SBaseURL,
		"C2S_TOKEN":         cfg.C2SToken,
		"DIRETRIX_BASE_URL": urls.DiretrixBaseURL,
		"DIRETRIX_USER":     cfg.DiretrixUser,
		"DIRETRIX_PASS":     cfg.DiretrixPass,
		"WORK_API_URL":      urls.WorkAPIURL,
		"WORK_API_KEY":      cfg.WorkToken,
		"WEBHOOK_SECRET":    "rel-secret",
		"API_KEYS":          "rel-key",
		"LOG_LEVEL":         "info",
		"DB_MAX_CONNS":      "6", // CI raises Postgres max_connections to 300 for the 14 processes
		// Every lead gets a message: the unresolved ones a short notice.
		"NOTIFY_UNRESOLVED": "true",
	}
	if spec.Gateway {
		c.env["C2S_GATEWAY_URL"] = urls.GatewayURL
	}
	for k, v := range spec.Env {
		c.env[k] = v
	}
	c.ingest = "http://127.0.0.1:" + strconv.Itoa(port)

	// Ingest first: it migrates the database while the workers wait.
	if err := c.startProc("ingest", "ingest"); err != nil {
		t.Fatal(err)
	}
	c.waitFor("ingest /ready", 60*time.Second, func() bool {
		resp, err := http.Get(c.ingest + "/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	for _, name := range workerServices {
		for i := 1; i <= spec.Replicas; i++ {
			if err := c.startProc(name, fmt.Sprintf("%s-%d", name, i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Cleanup(func() {
		if t.Failed() {
			c.dumpLogs()
		}
		c.saveLogs()
	})
	return c
}

// saveLogs writes every process's output to LEADFLOW_RELIABILITY_LOGS/<test>/
// when that variable names a directory.
func (c *cluster) saveLogs() {
	root := os.Getenv("LEADFLOW_RELIABILITY_LOGS")
	if root == "" {
		return
	}
	dir := filepath.Join(root, strings.ReplaceAll(c.t.Name(), "/", "_"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return
	}
	c.mu.Lock()
	procs := slices.Clone(c.all)
	c.mu.Unlock()
	for i, p := range procs {
		_ = os.WriteFile(filepath.Join(dir, fmt.Sprintf("%02d-%s.log", i, p.label)), []byte(p.out.String()), 0o644)
	}
}

// workerLabels are the labels of the worker processes.
func (c *cluster) workerLabels() []string {
	var out []string
	for _, name := range workerServices {
		for i := 1; i <= c.spec.Replicas; i++ {
			out = append(out, fmt.Sprintf("%s-%d", name, i))
		}
	}
	return out
}

// startProc starts name as label and waits until it logs "started". A
// process that exits before (e.g. NATS is away right then) is started
// again, as a supervisor would, for up to a minute.
func (c *cluster) startProc(name, label string) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		p, err := c.spawn(name, label)
		if err != nil {
			return err
		}
		for {
			if strings.Contains(p.out.String(), `"message":"started"`) {
				return nil
			}
			if !p.running() {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s did not start within a minute:\n%s", label, tail(p.out.String()))
			}
			time.Sleep(20 * time.Millisecond)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s kept exiting on start: %v\n%s", label, p.err, tail(p.out.String()))
		}
		time.Sleep(500 * time.Millisecond) // a supervisor's restart delay
	}
}

func (c *cluster) spawn(name, label string) (*relProc, error) {
	port, err := c.portOf(label)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(filepath.Join(c.bin, name))
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range c.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	// Private ports default to fixed numbers (8081, 9090): every process
	// here gets its own, kept across restarts.
	if name == "ingest" {
		cmd.Env = append(cmd.Env, "METRICS_PORT="+strconv.Itoa(port))
	} else {
		cmd.Env = append(cmd.Env, "HEALTH_PORT="+strconv.Itoa(port))
	}
	p := &relProc{label: label, name: name, cmd: cmd, out: &syncBuffer{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.procs[label] = p
	c.all = append(c.all, p)
	c.mu.Unlock()
	go func() {
		p.err = cmd.Wait()
		c.mu.Lock()
		if !p.killed && strings.Contains(p.out.String(), `"message":"started"`) {
			c.unexpected = append(c.unexpected, fmt.Sprintf("%s exited by itself (%v)", label, p.err))
		}
		c.mu.Unlock()
		close(p.exited)
	}()
	return p, nil
}

// budgets says whether the processes drew from rate budgets shared through
// Postgres (pipeline.rate_budgets, once that lands) or paced on their own.
func (c *cluster) budgets() string {
	var n int
	err := c.pool.QueryRow(context.Background(), `SELECT count(*) FROM pipeline.rate_budgets`).Scan(&n)
	if err != nil || n == 0 {
		return "rate limits per process"
	}
	return fmt.Sprintf("rate budgets shared in Postgres (%d)", n)
}

// portOf is label's private port (health and metrics), chosen once.
func (c *cluster) portOf(label string) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ports == nil {
		c.ports = map[string]int{}
	}
	if p, ok := c.ports[label]; ok {
		return p, nil
	}
	p, err := stack.FreePort()
	if err != nil {
		return 0, err
	}
	c.ports[label] = p
	return p, nil
}

// metric returns, per running process of service, a Prometheus metric
// summed over its series.
func (c *cluster) metric(service, name string) []float64 {
	c.t.Helper()
	c.mu.Lock()
	var ports []int
	for label, p := range c.procs {
		if p.name == service && p.running() {
			ports = append(ports, c.ports[label])
		}
	}
	c.mu.Unlock()
	var out []float64
	for _, port := range ports {
		total := 0.0
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
		if err != nil {
			c.t.Fatalf("metrics of %s: %v", service, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "#") {
				continue
			}
			key, val, ok := strings.Cut(line, " ")
			if !ok || !(key == name || strings.HasPrefix(key, name+"{")) {
				continue
			}
			if f, err := strconv.ParseFloat(strings.TrimSpace(val), 64); err == nil {
				total += f
			}
		}
		out = append(out, total)
	}
	return out
}

// killAll ends every process still running (at cleanup).
func (c *cluster) killAll() {
	c.mu.Lock()
	procs := slices.Clone(c.all)
	for _, p := range procs {
		p.killed = true
	}
	c.mu.Unlock()
	for _, p := range procs {
		if p.running() {
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	}
}

// kill SIGKILLs the current process of label and waits for it to be gone.
func (c *cluster) kill(label string) error {
	c.mu.Lock()
	p := c.procs[label]
	if p == nil || !p.running() {
		c.mu.Unlock()
		return fmt.Errorf("%s is not running", label)
	}
	p.killed = true
	c.kills++
	if c.killedBy == nil {
		c.killedBy = map[string]int{}
	}
	c.killedBy[p.name]++
	c.mu.Unlock()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		return err
	}
	<-p.exited
	return nil
}

// restart starts label's service again.
func (c *cluster) restart(label string) error {
	name, _, _ := strings.Cut(label, "-")
	return c.startProc(name, label)
}

// killSummary says how many processes of each service the test killed.
func (c *cluster) killSummary() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var parts []string
	for _, k := range sortedKeys(c.killedBy) {
		parts = append(parts, fmt.Sprintf("%s %d", k, c.killedBy[k]))
	}
	return strings.Join(parts, ", ")
}

// killCount is how many processes the test killed.
func (c *cluster) killCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.kills
}

// restartNATS shuts the NATS server down, keeps it away for down (the
// outage is the scenario's input), and starts it again on the same port
// and directory.
func (c *cluster) restartNATS(down time.Duration) error {
	c.natsMu.Lock()
	defer c.natsMu.Unlock()
	c.natsSrv.Shutdown()
	c.natsSrv = nil
	time.Sleep(down)
	srv, err := embedded.Start(c.natsDir, c.natsPort)
	if err != nil {
		return err
	}
	c.natsSrv = srv
	c.natsRestarts++
	return nil
}

func (c *cluster) waitFor(what string, timeout time.Duration, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			c.t.Fatalf("%s: timed out after %s waiting for %s", c.spec.Name, timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// dumpLogs prints the end of every process's output (on failure).
func (c *cluster) dumpLogs() {
	c.mu.Lock()
	procs := slices.Clone(c.all)
	c.mu.Unlock()
	for _, p := range procs {
		c.t.Logf("--- %s (%s) ---\n%s", p.label, p.name, tail(p.out.String()))
	}
}

// pickLeads returns n simulated leads (not the contract ones) from offset
// on that keep, in the population's order.
func (c *cluster) pickLeads(offset, n int, keep func(sim.Lead) bool) []sim.Lead {
	c.t.Helper()
	var out []sim.Lead
	skipped := 0
	for _, l := range c.sims.Pop.Leads() {
		if l.Kind == sim.LeadContract || (keep != nil && !keep(l)) {
			continue
		}
		if skipped < offset {
			skipped++
			continue
		}
		if len(out) == n {
			break
		}
		out = append(out, l)
	}
	if len(out) < n {
		c.t.Fatalf("the population has %d suitable leads after %d, need %d", len(out), offset, n)
	}
	return out
}

// withContacts keeps leads whose phone and email are both plausible: the
// resolver needs no C2S read for them, so C2S sees only the messages.
func withContacts(l sim.Lead) bool {
	return brdata.PlausiblePhone(brdata.NormalizePhone(l.Phone)) && brdata.PlausibleEmail(brdata.NormalizeEmail(l.Email))
}

func webhookBody(l sim.Lead) []byte {
	b, _ := json.Marshal(map[string]any{"id": l.ID, "hook_action": "on_create_lead", "attributes": map[string]any{
		"updated_at": "2026-11-27T10:00:00Z", "customer": map[string]any{"name": l.Name, "phone": l.Phone, "email": l.Email}}})
	return b
}

var webhookClient = &http.Client{Timeout: 10 * time.Second}

// sendLead posts the lead's webhook as C2S does: again after a 5xx or a
// connection failure (ingest answers 503 while NATS is away), until it is
// accepted (202) or known (200 duplicate).
func (c *cluster) sendLead(l sim.Lead) error {
	body := webhookBody(l)
	url := c.ingest + "/api/v1/webhooks/c2s?token=" + c.env["WEBHOOK_SECRET"]
	deadline := time.Now().Add(2 * time.Minute)
	var last string
	for time.Now().Before(deadline) {
		resp, err := webhookClient.Post(url, "application/json", bytes.NewReader(body))
		if err != nil {
			last = err.Error()
		} else {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			switch {
			case resp.StatusCode == http.StatusAccepted:
				return nil
			case resp.StatusCode == http.StatusOK && bytes.Contains(b, []byte(`"duplicate"`)):
				return nil
			case resp.StatusCode < 500:
				return fmt.Errorf("webhook of %s = %d %s", l.ID, resp.StatusCode, b)
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, b)
		}
		time.Sleep(250 * time.Millisecond) // C2S's retry delay
	}
	return fmt.Errorf("webhook of %s never accepted: %s", l.ID, last)
}

// sendAll posts leads with a few concurrent clients ("at once").
func (c *cluster) sendAll(leads []sim.Lead) {
	c.t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, len(leads))
	next := make(chan sim.Lead)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for l := range next {
				if err := c.sendLead(l); err != nil {
					errs <- err
				}
			}
		}()
	}
	for _, l := range leads {
		next <- l
	}
	close(next)
	wg.Wait()
	close(errs)
	for err := range errs {
		c.t.Fatal(err)
	}
}

func leadIDs(leads []sim.Lead) []string {
	ids := make([]string, len(leads))
	for i, l := range leads {
		ids[i] = l.ID
	}
	return ids
}

// finalStatuses: a run ends notified, uncertain (an operator must look) or
// failed (dead-lettered). With NOTIFY_UNRESOLVED=true an unresolved lead
// gets a notice and ends notified too.
var finalStatuses = []string{"notified", "uncertain", "failed"}

// settledCount is how many of ids have a run in a final status.
func (c *cluster) settledCount(ids []string) (int, error) {
	var n int
	err := c.pool.QueryRow(context.Background(), `SELECT count(DISTINCT lead_id) FROM pipeline.lead_runs
		WHERE lead_id = ANY($1) AND status = ANY($2) AND (finished_at IS NOT NULL OR status IN ('uncertain', 'failed'))`,
		ids, finalStatuses).Scan(&n)
	return n, err
}

// quiet reports whether JetStream holds nothing in flight: every durable
// consumer of LEADS has nothing pending and nothing awaiting an ack, and no
// max-deliveries advisory waits to be dead-lettered. Only then can no
// further post happen.
func (c *cluster) quiet() (bool, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := c.js.Stream(ctx, events.StreamName)
	if err != nil {
		return false, err.Error()
	}
	lister := st.ListConsumers(ctx)
	var busy []string
	for info := range lister.Info() {
		if info.Config.Durable == "" {
			continue // a reader's ordered consumer (this suite, leadflowctl)
		}
		if info.NumPending > 0 || info.NumAckPending > 0 {
			busy = append(busy, fmt.Sprintf("%s pending=%d ack_pending=%d redelivered=%d", info.Name, info.NumPending, info.NumAckPending, info.NumRedelivered))
		}
	}
	if err := lister.Err(); err != nil {
		return false, err.Error()
	}
	ex, err := c.js.Stream(ctx, messaging.ExhaustedStream)
	if err != nil {
		return false, err.Error()
	}
	exInfo, err := ex.Info(ctx)
	if err != nil {
		return false, err.Error()
	}
	if exInfo.State.Msgs > 0 {
		busy = append(busy, fmt.Sprintf("%d max-deliveries advisories not yet dead-lettered", exInfo.State.Msgs))
	}
	return len(busy) == 0, strings.Join(busy, "; ")
}

// waitSettled waits until every lead's run is final and JetStream is quiet.
func (c *cluster) waitSettled(leads []sim.Lead, timeout time.Duration) {
	c.t.Helper()
	ids := leadIDs(leads)
	deadline := time.Now().Add(timeout)
	var n int
	var why string
	for {
		var err error
		n, err = c.settledCount(ids)
		if err == nil && n == len(ids) {
			var ok bool
			if ok, why = c.quiet(); ok {
				return
			}
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	rows, _ := c.pool.Query(context.Background(), `SELECT lead_id, status, coalesce(error, '') FROM pipeline.lead_runs
		WHERE lead_id = ANY($1) AND NOT (status = ANY($2))`, ids, finalStatuses)
	var open []string
	for rows.Next() {
		var id, st, e string
		_ = rows.Scan(&id, &st, &e)
		open = append(open, fmt.Sprintf("%s:%s %s", id, st, e))
	}
	rows.Close()
	c.t.Fatalf("%s: after %s, %d of %d leads settled; JetStream: %s; open runs: %v", c.spec.Name, timeout, n, len(ids), why, open)
}

// deadLetters returns the dead letters on leads.dlq by lead.
func (c *cluster) deadLetters() map[string][]events.DeadLetter {
	c.t.Helper()
	out := map[string][]events.DeadLetter{}
	for _, raw := range testinfra.SubjectMessages(c.t, c.js, events.StreamName, events.SubjectDeadLetter) {
		var dl events.DeadLetter
		if err := json.Unmarshal(raw, &dl); err != nil {
			c.t.Fatalf("unreadable dead letter: %v", err)
		}
		out[dl.LeadID] = append(out[dl.LeadID], dl)
	}
	return out
}

// consumerRedeliveries is, per durable consumer, how many deliveries were
// repeats: deliveries made (the consumer sequence counts each one) minus
// the messages on its subject (each delivered at least once when it is
// quiet).
func (c *cluster) consumerRedeliveries() map[string]int {
	c.t.Helper()
	ctx := context.Background()
	st, err := c.js.Stream(ctx, events.StreamName)
	if err != nil {
		c.t.Fatal(err)
	}
	out := map[string]int{}
	lister := st.ListConsumers(ctx)
	for info := range lister.Info() {
		if info.Config.Durable == "" {
			continue
		}
		subject := info.Config.FilterSubject
		si, err := st.Info(ctx, jetstream.WithSubjectFilter(subject))
		if err != nil {
			c.t.Fatal(err)
		}
		out[info.Name] = int(info.Delivered.Consumer) - int(si.State.Subjects[subject])
	}
	if err := lister.Err(); err != nil {
		c.t.Fatal(err)
	}
	return out
}

// report is one scenario's figures.
type report struct {
	Scenario     string
	Leads        int
	Kills        int
	NATSRestarts int
	Lost         map[string]int64 // replies lost after the effect, by upstream
	LostPaid     int              // of which paid Work API answers
	LongestRun   time.Duration    // a lead's whole run, received to final
	LongestStage time.Duration    // the longest a lead waited in one stage
	StageOfLong  string
	SlowestLead  string
	Duplicates   int // leads with more than one message
	ExtraPaid    int // paid Work API calls beyond one per CPF
	UniqueCPFs   int
	PaidCalls    int
	DeadLetters  int
	Uncertain    int // deliveries that ended uncertain (before an operator)
	Messages     int
	Redelivered  map[string]int // repeats per durable consumer
	RateLimited  int64          // 429s the C2S bucket answered (either route)
	Elapsed      time.Duration
	Notes        []string
}

// leadState is what the suite knows of one lead at the end.
type leadState struct {
	messages  int
	run       string
	finished  bool
	ledger    []string
	deadLetts []events.DeadLetter
}

// checkInvariants collects the figures and asserts what holds in every
// scenario:
//   - no lead has more than one message (either route: one store);
//   - every lead has exactly one message, a sent ledger row and a notified
//     run, or ends visibly: ledger uncertain or a dead letter for it;
//   - every run has a final state;
//   - the simulator holds no message for a lead the suite did not send;
//   - per CPF, paid Work API calls <= 1 + paid replies lost + attempts whose
//     process died mid-call (recorded started, never finished), and never
//     more than the attempts the product recorded before calling.
func (c *cluster) checkInvariants(leads []sim.Lead) *report {
	c.t.Helper()
	ctx := context.Background()
	ids := leadIDs(leads)
	states := map[string]*leadState{}
	for _, id := range ids {
		states[id] = &leadState{messages: len(c.sims.C2S.Messages(id))}
	}
	rows, err := c.pool.Query(ctx, `SELECT lead_id, status, finished_at IS NOT NULL FROM pipeline.lead_runs WHERE lead_id = ANY($1)`, ids)
	if err != nil {
		c.t.Fatal(err)
	}
	for rows.Next() {
		var id, st string
		var fin bool
		if err := rows.Scan(&id, &st, &fin); err != nil {
			c.t.Fatal(err)
		}
		if s := states[id]; s.run != "" {
			c.t.Errorf("lead %s has more than one run", id)
		} else {
			s.run, s.finished = st, fin
		}
	}
	rows.Close()
	rows, err = c.pool.Query(ctx, `SELECT lead_id, status FROM pipeline.notifications WHERE lead_id = ANY($1)`, ids)
	if err != nil {
		c.t.Fatal(err)
	}
	for rows.Next() {
		var id, st string
		if err := rows.Scan(&id, &st); err != nil {
			c.t.Fatal(err)
		}
		states[id].ledger = append(states[id].ledger, st)
	}
	rows.Close()
	dls := c.deadLetters()
	r := &report{Scenario: c.spec.Name, Leads: len(leads), Kills: c.killCount(), NATSRestarts: c.natsRestarts,
		Lost: map[string]int64{}, Elapsed: time.Since(c.started)}
	for lead, list := range dls {
		if _, ours := states[lead]; !ours {
			c.t.Errorf("dead letter for a lead the suite never sent (%q): %s", lead, list[0].Reason)
			continue
		}
		states[lead].deadLetts = list
		r.DeadLetters += len(list)
	}
	total := 0
	for _, id := range ids {
		s := states[id]
		total += s.messages
		if s.messages > 1 {
			r.Duplicates++
			c.t.Errorf("lead %s: %d messages in C2S, want at most 1 (posted twice)", id, s.messages)
		}
		if !(s.finished || s.run == "uncertain" || s.run == "failed") {
			c.t.Errorf("lead %s: run %q has no final state", id, s.run)
		}
		sent := slices.Contains(s.ledger, ledger.StatusSent)
		uncertain := slices.Contains(s.ledger, ledger.StatusUncertain)
		if uncertain {
			r.Uncertain++
		}
		switch {
		case s.messages == 1 && sent && s.run == "notified":
		case uncertain || len(s.deadLetts) > 0:
		default:
			c.t.Errorf("lead %s lost: %d messages, ledger %v, run %q, no dead letter", id, s.messages, s.ledger, s.run)
		}
	}
	r.Messages = total
	if n := c.sims.C2S.MessageCount(); n != total {
		c.t.Errorf("C2S holds %d messages, %d of them on the suite's leads", n, total)
	}

	// Paid calls against the product's attempts ledger.
	crashed := map[string]int{}
	charged := map[string]int{}
	rows, err = c.pool.Query(ctx, `SELECT cpf, count(*) FILTER (WHERE status = 'started'), count(*) FILTER (WHERE status <> 'not_charged')
		FROM pipeline.workapi_attempts GROUP BY cpf`)
	if err != nil {
		c.t.Fatal(err)
	}
	for rows.Next() {
		var cpf string
		var s, ch int
		if err := rows.Scan(&cpf, &s, &ch); err != nil {
			c.t.Fatal(err)
		}
		crashed[cpf], charged[cpf] = s, ch
	}
	rows.Close()
	// Every attempt the product records as charged and finished reached
	// the API: the simulator saw a request for that CPF (a lost reply or a
	// hang). An attempt that failed before it was sent (waiting for the
	// rate budget, the pool) must not count toward the daily cap. An
	// attempt left "started" by a process killed mid-call is counted as
	// charged on purpose: the product cannot tell whether it was sent, so
	// it takes the safe side of the cap.
	reached := map[string]int{}
	for _, req := range c.sims.WorkAPI.Requests() {
		_, q, _ := strings.Cut(req.Path, "?")
		if v, err := url.ParseQuery(q); err == nil && v.Get("modulo") == "cpf" {
			reached[brdata.Digits(v.Get("consulta"))]++
		}
	}
	for cpf, n := range charged {
		if n-crashed[cpf] > reached[cpf] {
			var errs []string
			rows, _ := c.pool.Query(ctx, `SELECT status || ': ' || coalesce(error, '') FROM pipeline.workapi_attempts WHERE cpf = $1 AND status <> 'not_charged'`, cpf)
			for rows.Next() {
				var e string
				_ = rows.Scan(&e)
				errs = append(errs, e)
			}
			rows.Close()
			c.t.Errorf("CPF …%s: %d attempts recorded as charged, the Work API saw %d requests: %q", cpf[len(cpf)-2:], n, reached[cpf], errs)
		}
	}
	for cpf, n := range c.sims.WorkAPI.Paid() {
		lost := c.sims.WorkAPI.LostPaidCalls(cpf)
		r.PaidCalls += n
		r.UniqueCPFs++
		r.LostPaid += lost
		if n > 1+lost+crashed[cpf] {
			c.t.Errorf("CPF …%s paid %d times: more than once + %d lost replies + %d crashed attempts", cpf[len(cpf)-2:], n, lost, crashed[cpf])
		}
		if n > charged[cpf] {
			c.t.Errorf("CPF …%s paid %d times but only %d attempts were recorded before calling", cpf[len(cpf)-2:], n, charged[cpf])
		}
	}
	r.ExtraPaid = r.PaidCalls - r.UniqueCPFs

	for _, name := range []string{"diretrix", "workapi", "c2s", "gateway"} {
		u, _ := c.sims.Upstream(name)
		r.Lost[name] = u.LostReplies()
	}
	r.RateLimited = c.sims.C2S.RateLimited() + c.sims.Gateway.RateLimited()
	r.Redelivered = c.consumerRedeliveries()

	var longestRun float64
	if err := c.pool.QueryRow(ctx, `SELECT coalesce(max(extract(epoch FROM finished_at - started_at)), 0) FROM pipeline.lead_runs WHERE lead_id = ANY($1)`, ids).Scan(&longestRun); err != nil {
		c.t.Fatal(err)
	}
	r.LongestRun = time.Duration(longestRun * float64(time.Second))
	var gap float64
	var stage, slowest string
	err = c.pool.QueryRow(ctx, `SELECT coalesce(gap, 0), coalesce(prev || ' → ' || stage, ''), lead_id FROM (
			SELECT extract(epoch FROM at - lag(at) OVER w) AS gap, lag(stage) OVER w AS prev, stage, lead_id
			FROM pipeline.lead_steps WHERE lead_id = ANY($1) WINDOW w AS (PARTITION BY run_id ORDER BY at)) g
		WHERE gap IS NOT NULL ORDER BY gap DESC LIMIT 1`, ids).Scan(&gap, &stage, &slowest)
	if err == nil {
		r.LongestStage, r.StageOfLong, r.SlowestLead = time.Duration(gap*float64(time.Second)), stage, slowest
	}
	c.mu.Lock()
	unexpected := slices.Clone(c.unexpected)
	c.mu.Unlock()
	for _, u := range unexpected {
		c.t.Errorf("a service died without being killed: %s", u)
	}
	return r
}

// describeLead is a lead's trace and what the C2S simulator saw of it, with
// times relative to its first stage (for the notes of a slow lead).
func (c *cluster) describeLead(id string) string {
	rows, err := c.pool.Query(context.Background(), `SELECT stage, outcome, at FROM pipeline.lead_steps WHERE lead_id = $1 ORDER BY at`, id)
	if err != nil {
		return err.Error()
	}
	defer rows.Close()
	var parts []string
	var t0 time.Time
	for rows.Next() {
		var st, out string
		var at time.Time
		_ = rows.Scan(&st, &out, &at)
		if t0.IsZero() {
			t0 = at
		}
		parts = append(parts, fmt.Sprintf("%s/%s +%s", st, out, at.Sub(t0).Round(100*time.Millisecond)))
	}
	for _, u := range []sim.Controls{c.sims.C2S, c.sims.Gateway} {
		for _, r := range u.Requests() {
			if strings.Contains(r.Path, id) {
				parts = append(parts, fmt.Sprintf("c2s %s %s %d%s +%s", r.Method, r.Via, r.Status, r.Fault, r.Time.Sub(t0).Round(100*time.Millisecond)))
			}
		}
	}
	return id + ": " + strings.Join(parts, ", ")
}

// deadLetterReasons counts dead letters by the start of their reason.
func deadLetterReasons(dls map[string][]events.DeadLetter) map[string]int {
	out := map[string]int{}
	for _, list := range dls {
		for _, dl := range list {
			reason := dl.Reason
			if len(reason) > 90 {
				reason = reason[:90] + "…"
			}
			out[dl.Stage+": "+reason]++
		}
	}
	return out
}

// ctl runs leadflowctl in-process, as an operator would against the
// cluster, and returns its output.
func (c *cluster) ctl(args ...string) (string, error) {
	var out, errOut bytes.Buffer
	env := map[string]string{"NATS_URL": c.env["NATS_URL"], "DATABASE_URL": c.dbURL}
	code := cli.Execute(context.Background(), args, cli.IO{In: strings.NewReader(""), Out: &out, Err: &errOut,
		Getenv: func(k string) string { return env[k] }, TTY: func() bool { return false }})
	if code != 0 {
		return out.String(), fmt.Errorf("leadflowctl %s: exit %d: %s", strings.Join(args, " "), code, errOut.String())
	}
	return out.String(), nil
}

// resolveUncertain does what OPERATING.md asks of an operator for each
// uncertain delivery: look at the lead in C2S (here, the simulator's
// store), then confirm it when the message is there or repost it when it
// is not. It returns how many were confirmed and reposted.
func (c *cluster) resolveUncertain() (confirmed, reposted int) {
	c.t.Helper()
	out, err := c.ctl("uncertain", "list", "--json")
	if err != nil {
		c.t.Fatal(err)
	}
	var list []ledger.Entry
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		c.t.Fatalf("uncertain list --json: %v\n%s", err, out)
	}
	for _, e := range list {
		if e.Status != ledger.StatusUncertain {
			continue
		}
		if len(c.sims.C2S.Messages(e.LeadID)) > 0 {
			if _, err := c.ctl("uncertain", "confirm", e.LeadID, e.RunID); err != nil {
				c.t.Fatal(err)
			}
			confirmed++
		} else {
			if _, err := c.ctl("uncertain", "repost", e.LeadID, e.RunID, "--wait", "0"); err != nil {
				c.t.Fatal(err)
			}
			reposted++
		}
	}
	return confirmed, reposted
}

// waitNotified waits until every lead's run is notified and JetStream is
// quiet (after an operator resolved what was uncertain).
func (c *cluster) waitNotified(ids []string, timeout time.Duration) {
	c.t.Helper()
	c.waitFor("every run notified", timeout, func() bool {
		var n int
		if err := c.pool.QueryRow(context.Background(), `SELECT count(*) FROM pipeline.lead_runs WHERE lead_id = ANY($1) AND status = 'notified'`, ids).Scan(&n); err != nil || n != len(ids) {
			return false
		}
		ok, _ := c.quiet()
		return ok
	})
}

// printReport logs the scenario's summary table (go test -v shows it) and
// appends it to LEADFLOW_RELIABILITY_REPORT when set.
func (c *cluster) printReport(r *report) {
	var b strings.Builder
	fmt.Fprintf(&b, "\n### %s (%s form; %s)\n\n", r.Scenario, size("short", "long"), c.budgets())
	fmt.Fprintln(&b, "| leads | kills | NATS restarts | lost replies diretrix / workapi (paid) / c2s / gateway | longest wait absorbed (one stage) | longest run | duplicates | paid calls / unique CPFs (extra) | dead letters | uncertain | 429s | redeliveries | wall time |")
	fmt.Fprintln(&b, "|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	var redl []string
	for _, k := range sortedKeys(r.Redelivered) {
		redl = append(redl, fmt.Sprintf("%s %d", strings.Replace(k, "__leads_", "/", 1), r.Redelivered[k]))
	}
	fmt.Fprintf(&b, "| %d | %d | %d | %d / %d (%d) / %d / %d | %s (%s) | %s | %d | %d / %d (%d) | %d | %d | %d | %s | %s |\n",
		r.Leads, r.Kills, r.NATSRestarts, r.Lost["diretrix"], r.Lost["workapi"], r.LostPaid, r.Lost["c2s"], r.Lost["gateway"],
		r.LongestStage.Round(100*time.Millisecond), r.StageOfLong, r.LongestRun.Round(100*time.Millisecond), r.Duplicates,
		r.PaidCalls, r.UniqueCPFs, r.ExtraPaid, r.DeadLetters, r.Uncertain, r.RateLimited, strings.Join(redl, ", "),
		r.Elapsed.Round(time.Second))
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "\n- %s", n)
	}
	c.t.Log(b.String())
	if path := os.Getenv("LEADFLOW_RELIABILITY_REPORT"); path != "" {
		reportMu.Lock()
		defer reportMu.Unlock()
		if f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644); err == nil {
			_, _ = f.WriteString(b.String() + "\n")
			_ = f.Close()
		}
	}
}

var reportMu sync.Mutex

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// killer SIGKILLs a random worker process every interval and starts it
// again after a short downtime, until stop is closed. Errors go to the
// test (it runs outside the test goroutine).
func (c *cluster) killer(seed uint64, every time.Duration, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	rng := rand.New(rand.NewPCG(seed, 7))
	labels := c.workerLabels()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		label := labels[rng.IntN(len(labels))]
		if err := c.kill(label); err != nil {
			c.t.Errorf("kill %s: %v", label, err)
			return
		}
		time.Sleep(time.Duration(200+rng.IntN(800)) * time.Millisecond) // the process's downtime
		if err := c.restart(label); err != nil {
			c.t.Errorf("restart %s: %v", label, err)
			return
		}
	}
}
