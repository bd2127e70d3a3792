package budget

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/leadflow/leadflow/pkg/backbone/failure"
	"github.com/leadflow/leadflow/pkg/clients/httpx"
	"github.com/leadflow/leadflow/pkg/store"
	"github.com/leadflow/leadflow/pkg/testinfra"
)

// dbURL is one migrated database for the package: every test uses its own
// credentials (its name), hence its own budget rows.
var dbURL string

func TestMain(m *testing.M) {
	ctx := context.Background()
	url, drop, err := testinfra.CreateDatabase(ctx, "budget")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := func() int {
		defer drop()
		pool, err := store.Open(ctx, url, 2, false)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer pool.Close()
		if err := store.Migrate(ctx, pool); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		dbURL = url
		return m.Run()
	}()
	os.Exit(code)
}

// processes opens n independent pools on the database: each pool stands for
// one process or replica.
func processes(t *testing.T, n int) []*pgxpool.Pool {
	t.Helper()
	pools := make([]*pgxpool.Pool, n)
	for i := range pools {
		p, err := store.Open(context.Background(), dbURL, 8, false)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close)
		pools[i] = p
	}
	return pools
}

var (
	creds   sync.Map // *testing.T -> string
	credSeq atomic.Int64
)

// cred is the test's own credential, unique per run (go test -count=N
// reuses the database).
func cred(t *testing.T) string {
	c, _ := creds.LoadOrStore(t, fmt.Sprintf("%s#%d.%d", t.Name(), time.Now().UnixNano(), credSeq.Add(1)))
	return c.(string)
}

// cfg is a budget on the test's own credential.
func cfg(t *testing.T, upstream string, rate float64, burst int) Config {
	return Config{Upstream: upstream, Credential: cred(t), Rate: rate, Burst: burst}
}

// handles builds one Budget per pool, all on the same credential.
func handles(t *testing.T, pools []*pgxpool.Pool, cfg Config) []*Budget {
	t.Helper()
	out := make([]*Budget, len(pools))
	for i, p := range pools {
		b, err := New(p, cfg)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = b
	}
	return out
}

// overBudget reports the first window of length w that holds more slots
// than rate·w + burst. Checking the windows that start at a slot covers
// every window.
func overBudget(slots []time.Time, rate float64, burst int, w time.Duration) error {
	s := slices.Clone(slots)
	slices.SortFunc(s, func(a, b time.Time) int { return a.Compare(b) })
	limit := int(math.Floor(rate*w.Seconds()+1e-9)) + burst
	j := 0
	for i := range s {
		for j < len(s) && !s[j].After(s[i].Add(w)) {
			j++
		}
		if n := j - i; n > limit {
			return fmt.Errorf("%d slots in [%s, +%s], limit %d", n, s[i].Format("15:04:05.000000"), w, limit)
		}
	}
	return nil
}

var windows = []time.Duration{
	time.Microsecond, 25 * time.Millisecond, 50 * time.Millisecond, 120 * time.Millisecond,
	250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second, 5 * time.Second,
}

func checkWindows(t *testing.T, slots []time.Time, rate float64, burst int) {
	t.Helper()
	for _, w := range windows {
		if err := overBudget(slots, rate, burst, w); err != nil {
			t.Fatalf("budget exceeded: %v", err)
		}
	}
}

func withReg(c Config, reg prometheus.Registerer) Config {
	c.Registerer = reg
	return c
}

func TestNameHidesTheCredential(t *testing.T) {
	n := Name("c2s", "super-secret-token")
	if !regexp.MustCompile(`^c2s:[0-9a-f]{12}$`).MatchString(n) {
		t.Fatalf("name %q: want c2s: and 12 hex digits", n)
	}
	if strings.Contains(n, "secret") || strings.Contains(n, "token") {
		t.Fatalf("name %q leaks the credential", n)
	}
	if n != Name("c2s", "super-secret-token") || n == Name("c2s", "another-token") || n[4:] != Name("workapi", "super-secret-token")[8:] {
		t.Fatal("names must be deterministic, per credential, and prefixed by the upstream")
	}
	// sha256("abc") = ba7816bf8f01...
	if got := Name("x", "abc"); got != "x:ba7816bf8f01" {
		t.Fatalf("Name = %q, want x:ba7816bf8f01", got)
	}
}

func TestNewValidates(t *testing.T) {
	pool := &pgxpool.Pool{}
	for _, c := range []Config{
		{Upstream: "", Credential: "t", Rate: 1, Burst: 1},
		{Upstream: "c2s:x", Credential: "t", Rate: 1, Burst: 1},
		{Upstream: "c2s", Credential: "", Rate: 1, Burst: 1},
		{Upstream: "c2s", Credential: "t", Rate: 0, Burst: 1},
		{Upstream: "c2s", Credential: "t", Rate: math.Inf(1), Burst: 1},
		{Upstream: "c2s", Credential: "t", Rate: 1, Burst: 0},
	} {
		if _, err := New(pool, c); err == nil {
			t.Errorf("New(%+v) accepted", c)
		}
	}
	if _, err := New(nil, Config{Upstream: "c2s", Credential: "t", Rate: 1, Burst: 1}); err == nil {
		t.Error("New without a pool accepted")
	}
}

// Many processes reserving at once: the slots the database hands out are
// spaced by the emission interval and never exceed rate·t + burst in any
// window. No sleeping: the slots themselves are checked.
func TestConcurrentReservationsFromManyProcessesStayWithinBudget(t *testing.T) {
	const rate, burst = 20.0, 4
	bs := handles(t, processes(t, 4), cfg(t, "c2s", rate, burst))
	var (
		mu    sync.Mutex
		res   []Reservation
		wg    sync.WaitGroup
		fails atomic.Int32
	)
	for _, b := range bs {
		for range 6 {
			wg.Go(func() {
				for range 10 {
					r, err := b.reserve(context.Background(), -1)
					if err != nil {
						fails.Add(1)
						t.Error(err)
						return
					}
					mu.Lock()
					res = append(res, r)
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	if fails.Load() > 0 || len(res) != 4*6*10 {
		t.Fatalf("%d reservations, %d failures", len(res), fails.Load())
	}
	slices.SortFunc(res, func(a, b Reservation) int { return a.AllowedAt.Compare(b.AllowedAt) })
	T := 50 * time.Millisecond
	for i := 1; i < len(res); i++ {
		if gap := res[i].AllowedAt.Sub(res[i-1].AllowedAt); gap < T {
			t.Fatalf("slots %d and %d are %s apart, want >= %s", i-1, i, gap, T)
		}
	}
	slots := make([]time.Time, len(res))
	for i, r := range res {
		slots[i] = r.Slot()
	}
	checkWindows(t, slots, rate, burst)
	// The queue really formed: 240 slots at 20/s reach about 12 s ahead.
	if span := slots[len(slots)-1].Sub(slots[0]); span < 11*time.Second {
		t.Fatalf("240 slots span %s: the budget did not hold them back", span)
	}
}

// The window check has teeth: one budget per process (what a process-local
// limiter amounts to) breaks it.
func TestWindowCheckCatchesPerProcessBudgets(t *testing.T) {
	const rate, burst = 20.0, 4
	pools := processes(t, 3)
	var slots []time.Time
	for i, p := range pools {
		b, err := New(p, Config{Upstream: "c2s", Credential: fmt.Sprint(cred(t), i), Rate: rate, Burst: burst})
		if err != nil {
			t.Fatal(err)
		}
		for range 20 {
			r, err := b.reserve(context.Background(), -1)
			if err != nil {
				t.Fatal(err)
			}
			slots = append(slots, r.Slot())
		}
	}
	if overBudget(slots, rate, burst, time.Second) == nil {
		t.Fatal("three separate budgets passed the shared-budget check")
	}
}

// Processes that really wait: every admitted slot (database clock) keeps the
// budget, and each caller only goes once its slot has come.
func TestWaitingProcessesStayWithinBudget(t *testing.T) {
	const rate, burst = 20.0, 3
	pools := processes(t, 3)
	bs := handles(t, pools, cfg(t, "workapi", rate, burst))
	ctx, cancel := context.WithTimeout(context.Background(), 2500*time.Millisecond)
	defer cancel()
	var (
		mu    sync.Mutex
		slots []time.Time
		wg    sync.WaitGroup
	)
	for i, b := range bs {
		for range 4 {
			wg.Go(func() {
				for {
					r, err := b.acquire(ctx)
					if err != nil {
						if !errors.Is(err, ErrBeyondDeadline) && ctx.Err() == nil {
							t.Error(err)
						}
						return
					}
					// Sent no earlier than the slot, on the database clock
					// (a few ms of slack for clock slewing).
					var now time.Time
					if err := pools[i].QueryRow(context.Background(), "SELECT clock_timestamp()").Scan(&now); err != nil {
						t.Error(err)
						return
					}
					if now.Before(r.Slot().Add(-5 * time.Millisecond)) {
						t.Errorf("admitted at %s before its slot %s", now, r.Slot())
					}
					mu.Lock()
					slots = append(slots, r.Slot())
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	if len(slots) < 10 {
		t.Fatalf("only %d admissions in 2.5 s at 20/s", len(slots))
	}
	checkWindows(t, slots, rate, burst)
}

func TestDeadlineBeforeSlotTakesNoSlot(t *testing.T) {
	b := handles(t, processes(t, 1), cfg(t, "c2s", 1.0/60, 1))[0]
	first, err := b.acquire(context.Background())
	if err != nil || first.Delay() != 0 {
		t.Fatalf("first: %v, delay %s", err, first.Delay())
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err = b.Wait(ctx)
	if !errors.Is(err, ErrBeyondDeadline) || !failure.Is(err, failure.KindRateLimited) {
		t.Fatalf("err = %v, want rate limited beyond the deadline", err)
	}
	if ra := failure.RetryAfterOf(err); ra < 50*time.Second || ra > time.Minute {
		t.Fatalf("retry after %s, want about a minute", ra)
	}
	// The refusal took no slot: the next reservation is one interval on.
	next, err := b.reserve(context.Background(), -1)
	if err != nil {
		t.Fatal(err)
	}
	if got := next.AllowedAt.Sub(first.AllowedAt); got != time.Minute {
		t.Fatalf("next slot %s after the first, want 1m0s", got)
	}
}

func TestPenalizeHoldsEveryProcess(t *testing.T) {
	reg := prometheus.NewRegistry()
	pools := processes(t, 3)
	bs := handles(t, pools, withReg(cfg(t, "c2s", 10, 5), reg))
	if err := bs[1].Penalize(context.Background(), 10*time.Minute); err != nil {
		t.Fatal(err)
	}
	var until time.Time
	if err := pools[0].QueryRow(context.Background(),
		"SELECT blocked_until FROM pipeline.rate_budgets WHERE name = $1", bs[0].Name()).Scan(&until); err != nil {
		t.Fatal(err)
	}
	for i, b := range bs {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := b.Wait(ctx)
		cancel()
		if !errors.Is(err, ErrBeyondDeadline) || failure.RetryAfterOf(err) < 9*time.Minute {
			t.Fatalf("process %d: err = %v, want held about 10 minutes", i, err)
		}
		r, err := b.reserve(context.Background(), -1)
		if err != nil {
			t.Fatal(err)
		}
		if r.AllowedAt.Before(until) {
			t.Fatalf("process %d got slot %s inside the pause (until %s)", i, r.AllowedAt, until)
		}
		if r.Delay() < 9*time.Minute {
			t.Fatalf("process %d would wait %s, want about 10 minutes", i, r.Delay())
		}
	}
	// No burst after the pause: slots resume one interval apart.
	if got := counter(t, reg, "leadflow_rate_budget_throttled_total", "c2s"); got != 1 {
		t.Fatalf("throttled_total{budget=c2s} = %v, want 1", got)
	}
	// A shorter penalty never shortens a longer one.
	if err := bs[2].Penalize(context.Background(), time.Second); err != nil {
		t.Fatal(err)
	}
	var after time.Time
	if err := pools[0].QueryRow(context.Background(),
		"SELECT blocked_until FROM pipeline.rate_budgets WHERE name = $1", bs[0].Name()).Scan(&after); err != nil {
		t.Fatal(err)
	}
	if !after.Equal(until) {
		t.Fatalf("blocked_until moved from %s to %s", until, after)
	}
}

// A caller that reserved before a 429 paused the budget, and whose slot falls
// inside the pause, does not go at its old slot.
func TestSlotInsidePauseIsVoid(t *testing.T) {
	pools := processes(t, 2)
	bs := handles(t, pools, cfg(t, "c2s", 2, 1))
	for range 3 { // queue ahead: the next slot is about 1.5 s away
		if _, err := bs[0].reserve(context.Background(), -1); err != nil {
			t.Fatal(err)
		}
	}
	var once sync.Once
	bs[0].onReserved = func(r Reservation) {
		if r.Delay() <= 0 {
			t.Errorf("second reservation should wait, delay %s", r.Delay())
		}
		once.Do(func() {
			if err := bs[1].Penalize(context.Background(), 10*time.Minute); err != nil {
				t.Error(err)
			}
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r, err := bs[0].acquire(ctx)
	if !errors.Is(err, ErrBeyondDeadline) {
		t.Fatalf("acquire = %+v, %v; want the slot voided and the new one beyond the deadline", r, err)
	}
}

func TestCancelReturnsPromptlyAndGivesTheSlotBack(t *testing.T) {
	b := handles(t, processes(t, 1), cfg(t, "c2s", 1.0/60, 1))[0]
	if _, err := b.acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var held Reservation
	b.onReserved = func(r Reservation) { held = r; cancel() }
	done := make(chan error, 1)
	go func() { done <- b.Wait(ctx) }()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Wait = %v, want context.Canceled", err)
		}
	case <-time.After(20 * time.Second): // the slot is a minute away
		t.Fatal("Wait did not return after cancel")
	}
	if held.Delay() < 50*time.Second {
		t.Fatalf("held slot delay %s, want about a minute", held.Delay())
	}
	b.onReserved = nil
	next, err := b.reserve(context.Background(), -1)
	if err != nil {
		t.Fatal(err)
	}
	if !next.AllowedAt.Equal(held.AllowedAt) {
		t.Fatalf("next slot %s, want the abandoned one %s back", next.AllowedAt, held.AllowedAt)
	}
}

func TestCancelBehindOthersKeepsTheQueue(t *testing.T) {
	bs := handles(t, processes(t, 2), cfg(t, "c2s", 1.0/60, 1))
	if _, err := bs[0].acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var later Reservation
	bs[0].onReserved = func(Reservation) {
		// Someone else queues behind us before we give up.
		r, err := bs[1].reserve(context.Background(), -1)
		if err != nil {
			t.Error(err)
		}
		later = r
		cancel()
	}
	if err := bs[0].Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait = %v", err)
	}
	next, err := bs[1].reserve(context.Background(), -1)
	if err != nil {
		t.Fatal(err)
	}
	if got := next.AllowedAt.Sub(later.AllowedAt); got != time.Minute {
		t.Fatalf("next slot %s after the last queued one, want 1m0s (nothing handed back)", got)
	}
}

func TestRowCreatedOnFirstUseAndAfterDeletion(t *testing.T) {
	pools := processes(t, 1)
	b := handles(t, pools, cfg(t, "diretrix", 5, 5))[0]
	rows := func() int {
		var n int
		if err := pools[0].QueryRow(context.Background(), "SELECT count(*) FROM pipeline.rate_budgets WHERE name = $1",
			b.Name()).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := rows(); n != 0 {
		t.Fatalf("%d rows before first use", n)
	}
	if err := b.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := rows(); n != 1 {
		t.Fatalf("%d rows after first use", n)
	}
	if _, err := pools[0].Exec(context.Background(), "DELETE FROM pipeline.rate_budgets WHERE name = $1", b.Name()); err != nil {
		t.Fatal(err)
	}
	if err := b.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := pools[0].Exec(context.Background(), "DELETE FROM pipeline.rate_budgets WHERE name = $1", b.Name()); err != nil {
		t.Fatal(err)
	}
	if err := b.Penalize(context.Background(), time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if n := rows(); n != 1 {
		t.Fatalf("%d rows after penalize", n)
	}
}

// httpx draws from the shared budget and turns a 429 into a pause for every
// process: the second process does not even send.
func TestCallerPenalizesTheSharedBudgetOn429(t *testing.T) {
	reg := prometheus.NewRegistry()
	pools := processes(t, 2)
	bs := handles(t, pools, withReg(cfg(t, "c2s", 100, 1), reg))
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) == 1 {
			w.Header().Set("Retry-After", "10 minutes")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	p := httpx.Policy{Timeout: 5 * time.Second, MaxRetries: 3, BackoffBase: 10 * time.Millisecond,
		BackoffMax: 50 * time.Millisecond, MaxRetryAfter: 10 * time.Second, Rate: 100, Burst: 1}
	post := func(ctx context.Context) (*http.Request, error) {
		return http.NewRequestWithContext(ctx, http.MethodPost, srv.URL, strings.NewReader("{}"))
	}
	for i, b := range bs {
		c := httpx.New("c2s", nil, p, httpx.Options{Limiter: b, Registerer: reg})
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		_, err := c.Do(ctx, "c2s.create_message", post)
		cancel()
		if !failure.Is(err, failure.KindRateLimited) || !errors.Is(err, httpx.ErrLocalRate) || !errors.Is(err, ErrBeyondDeadline) {
			t.Fatalf("process %d: err = %v, want our budget to hold the call back", i, err)
		}
		if ra := failure.RetryAfterOf(err); ra < 9*time.Minute {
			t.Fatalf("process %d: retry after %s, want about 10 minutes", i, ra)
		}
	}
	if got := hits.Load(); got != 1 {
		t.Fatalf("upstream hit %d times, want 1 (the 429); the pause must hold both processes", got)
	}
	if got := counter(t, reg, "leadflow_rate_budget_throttled_total", "c2s"); got != 1 {
		t.Fatalf("throttled_total = %v, want 1", got)
	}
}

// After a short Retry-After the same call goes through, later than the
// pause, within httpx and without a deadline (a long wait is not a failure).
func TestCallerRetriesAfterThePause(t *testing.T) {
	reg := prometheus.NewRegistry()
	b := handles(t, processes(t, 1), withReg(cfg(t, "c2s", 100, 1), reg))[0]
	var (
		hits  atomic.Int32
		mu    sync.Mutex
		times []time.Time
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		times = append(times, time.Now())
		mu.Unlock()
		if hits.Add(1) == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.WriteHeader(http.StatusCreated)
	}))
	defer srv.Close()
	// MaxRetries 0: the 429 retry does not use the transient retry budget.
	p := httpx.Policy{Timeout: 5 * time.Second, MaxRetries: 0, MaxRetryAfter: time.Millisecond}
	c := httpx.New("c2s", nil, p, httpx.Options{Limiter: b, Registerer: reg})
	resp, err := c.Do(context.Background(), "c2s.create_message", func(ctx context.Context) (*http.Request, error) {
		return http.NewRequestWithContext(ctx, http.MethodPost, srv.URL, strings.NewReader("{}"))
	})
	if err != nil || resp.Status != http.StatusCreated {
		t.Fatalf("Do = %v, %v", resp, err)
	}
	if len(times) != 2 {
		t.Fatalf("%d requests, want 2", len(times))
	}
	// A lower bound only: the retry cannot come before the pause ends.
	if gap := times[1].Sub(times[0]); gap < 900*time.Millisecond {
		t.Fatalf("retried %s after the 429, want >= 1s", gap)
	}
	if n := histCount(t, reg, "leadflow_rate_budget_wait_seconds", "c2s"); n != 2 {
		t.Fatalf("wait histogram count = %d, want 2", n)
	}
}

func metricFamily(t *testing.T, g prometheus.Gatherer, name string) *dto.MetricFamily {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf
		}
	}
	return nil
}

func metricFor(t *testing.T, g prometheus.Gatherer, name, budget string) *dto.Metric {
	t.Helper()
	mf := metricFamily(t, g, name)
	if mf == nil {
		return nil
	}
	for _, m := range mf.GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() != "budget" {
				t.Fatalf("%s has label %s", name, l.GetName())
			}
			if strings.Contains(l.GetValue(), "Test") || strings.Contains(l.GetValue(), ":") {
				t.Fatalf("%s label %q is not a plain upstream name", name, l.GetValue())
			}
			if l.GetValue() == budget {
				return m
			}
		}
	}
	return nil
}

func counter(t *testing.T, g prometheus.Gatherer, name, budget string) float64 {
	t.Helper()
	if m := metricFor(t, g, name, budget); m != nil {
		return m.GetCounter().GetValue()
	}
	return 0
}

func histCount(t *testing.T, g prometheus.Gatherer, name, budget string) uint64 {
	t.Helper()
	if m := metricFor(t, g, name, budget); m != nil {
		return m.GetHistogram().GetSampleCount()
	}
	return 0
}
