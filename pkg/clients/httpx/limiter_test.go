package httpx

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/leadflow/leadflow/pkg/backbone/failure"
	"github.com/prometheus/client_golang/prometheus"
)

// fakeLimiter records what the Caller asks of a shared budget.
type fakeLimiter struct {
	mu        sync.Mutex
	waits     int
	penalties []time.Duration
	waitErr   error
	penErr    error
}

func (f *fakeLimiter) Wait(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.waits++
	return f.waitErr
}

func (f *fakeLimiter) Penalize(ctx context.Context, d time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.penalties = append(f.penalties, d)
	return f.penErr
}

func (f *fakeLimiter) state() (int, []time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.waits, append([]time.Duration(nil), f.penalties...)
}

func sharedCaller(p Policy, l Limiter, s *recSleeper, reg prometheus.Registerer) *Caller {
	return New("test", nil, p, Options{Sleep: s.Sleep, Now: fixedNow, Jitter: noJitter, Registerer: reg, Limiter: l})
}

func post(url string) func(ctx context.Context) (*http.Request, error) {
	return func(ctx context.Context) (*http.Request, error) {
		return http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader("{}"))
	}
}

func TestSharedLimiterReplacesLocalLimiter(t *testing.T) {
	var hits atomic.Int32
	srv := server(t, &hits, []int{200}, nil)
	s := &recSleeper{}
	p := testPolicy()
	p.Rate, p.Burst = 0.001, 1 // locally, the second call would wait 1000 s
	l := &fakeLimiter{}
	c := sharedCaller(p, l, s, nil)
	if c.Limiter() != l {
		t.Fatal("Limiter() does not return the shared budget")
	}
	for range 3 {
		if _, err := c.Do(context.Background(), "test.op", get(srv.URL)); err != nil {
			t.Fatal(err)
		}
	}
	if waits, _ := l.state(); waits != 3 {
		t.Fatalf("shared budget asked %d times, want 3", waits)
	}
	if w := s.Waits(); len(w) != 0 {
		t.Fatalf("local waits %v: the local limiter must not run beside the shared one", w)
	}
	if New("x", nil, p, Options{}).Limiter() != nil {
		t.Fatal("no shared budget configured, yet Limiter() is set")
	}
}

func TestSharedLimiterRefusalIsRateLimited(t *testing.T) {
	var hits atomic.Int32
	srv := server(t, &hits, []int{200}, nil)
	l := &fakeLimiter{waitErr: failure.RateLimited("rate budget c2s", 5*time.Minute, errors.New("beyond deadline"))}
	_, err := sharedCaller(testPolicy(), l, &recSleeper{}, nil).Do(context.Background(), "test.op", get(srv.URL))
	if !failure.Is(err, failure.KindRateLimited) || !errors.Is(err, ErrLocalRate) || failure.RetryAfterOf(err) != 5*time.Minute {
		t.Fatalf("err = %v, want rate limited by our budget, retry after 5m", err)
	}
	if waits, _ := l.state(); waits != 1 || hits.Load() != 0 {
		t.Fatalf("waits %d, hits %d; want 1 and 0 (no retry, nothing sent)", waits, hits.Load())
	}
}

func TestSharedLimiterErrorIsTransient(t *testing.T) {
	var hits atomic.Int32
	srv := server(t, &hits, []int{200}, nil)
	l := &fakeLimiter{waitErr: errors.New("rate budget c2s: reserve: connection refused")}
	_, err := sharedCaller(testPolicy(), l, &recSleeper{}, nil).Do(context.Background(), "test.op", get(srv.URL))
	if !failure.Is(err, failure.KindTransient) || errors.Is(err, ErrLocalRate) {
		t.Fatalf("err = %v, want transient", err)
	}
	if hits.Load() != 0 {
		t.Fatal("sent without a slot")
	}
}

// A 429 penalizes the shared budget by its Retry-After, even past
// MaxRetryAfter, and the POST is resent once the budget allows: the wait is
// the budget's, not a local sleep, and it does not use MaxRetries.
func Test429PenalizesSharedBudgetAndResends(t *testing.T) {
	var hits atomic.Int32
	srv := server(t, &hits, []int{429, 429, 201}, http.Header{"Retry-After": {"1 minute"}})
	s := &recSleeper{}
	p := testPolicy()
	p.MaxRetries, p.MaxRetryAfter = 0, 10*time.Second
	reg := prometheus.NewRegistry()
	l := &fakeLimiter{}
	resp, err := sharedCaller(p, l, s, reg).Do(context.Background(), "test.post", post(srv.URL))
	if err != nil || resp.Status != 201 {
		t.Fatalf("Do = %v, %v; want 201", resp, err)
	}
	waits, pens := l.state()
	if waits != 3 || !equalDur(pens, []time.Duration{time.Minute, time.Minute}) {
		t.Fatalf("waits %d, penalties %v; want 3 and [1m 1m]", waits, pens)
	}
	if w := s.Waits(); len(w) != 0 {
		t.Fatalf("local sleeps %v, want none", w)
	}
	if got := counterValue(t, reg, "leadflow_upstream_retries_total", map[string]string{"upstream": "test"}); got != 2 {
		t.Fatalf("retries = %v, want 2", got)
	}
}

func Test429WithoutRetryAfterPenalizesByBackoff(t *testing.T) {
	var hits atomic.Int32
	srv := server(t, &hits, []int{429, 429, 200}, nil)
	p := testPolicy()
	p.BackoffBase, p.BackoffMax = 2*time.Second, 3*time.Second
	l := &fakeLimiter{}
	if _, err := sharedCaller(p, l, &recSleeper{}, nil).Do(context.Background(), "test.op", get(srv.URL)); err != nil {
		t.Fatal(err)
	}
	if _, pens := l.state(); !equalDur(pens, []time.Duration{2 * time.Second, 3 * time.Second}) {
		t.Fatalf("penalties %v, want [2s 3s]", pens)
	}
	// At least a second, whatever the backoff.
	l = &fakeLimiter{}
	hits.Store(0)
	if _, err := sharedCaller(testPolicy(), l, &recSleeper{}, nil).Do(context.Background(), "test.op", get(srv.URL)); err != nil {
		t.Fatal(err)
	}
	if _, pens := l.state(); len(pens) != 2 || pens[0] != time.Second {
		t.Fatalf("penalties %v, want 1s first", pens)
	}
}

func TestThrottledRetriesAreBounded(t *testing.T) {
	var hits atomic.Int32
	srv := server(t, &hits, []int{429}, http.Header{"Retry-After": {"1"}})
	p := testPolicy()
	p.MaxRetries = 0
	l := &fakeLimiter{}
	c := New("test", nil, p, Options{Sleep: (&recSleeper{}).Sleep, Now: fixedNow, Jitter: noJitter, Limiter: l, MaxThrottled: 3})
	_, err := c.Do(context.Background(), "test.post", post(srv.URL))
	if !failure.Is(err, failure.KindRateLimited) || StatusOf(err) != 429 {
		t.Fatalf("err = %v, want the 429 back", err)
	}
	if _, pens := l.state(); hits.Load() != 4 || len(pens) != 3 {
		t.Fatalf("hits %d, penalties %v; want 4 and 3", hits.Load(), pens)
	}
}

// If the budget cannot be paused (database down), the 429 is handled as
// without a shared budget: Retry-After slept locally within MaxRetryAfter.
func TestPenalizeFailureFallsBackToRetryAfter(t *testing.T) {
	var hits atomic.Int32
	srv := server(t, &hits, []int{429, 200}, http.Header{"Retry-After": {"7"}})
	s := &recSleeper{}
	l := &fakeLimiter{penErr: errors.New("db down")}
	if _, err := sharedCaller(testPolicy(), l, s, nil).Do(context.Background(), "test.op", get(srv.URL)); err != nil {
		t.Fatal(err)
	}
	if w := s.Waits(); !equalDur(w, []time.Duration{7 * time.Second}) {
		t.Fatalf("local waits %v, want [7s]", w)
	}
}

// A 429 the classifier reads as something else (the Work API's "out of
// credits") is not a throttle.
func TestOtherKindsOn429DoNotPenalize(t *testing.T) {
	var hits atomic.Int32
	srv := server(t, &hits, []int{429}, nil)
	l := &fakeLimiter{}
	c := New("test", nil, testPolicy(), Options{Sleep: (&recSleeper{}).Sleep, Now: fixedNow, Limiter: l,
		Classify: func(op string, r *Response) error {
			return failure.New(failure.KindCreditsExhausted, op, errors.New("credits"))
		}})
	_, err := c.Do(context.Background(), "test.op", get(srv.URL))
	if !failure.Is(err, failure.KindCreditsExhausted) {
		t.Fatalf("err = %v", err)
	}
	if _, pens := l.state(); len(pens) != 0 || hits.Load() != 1 {
		t.Fatalf("penalties %v, hits %d; want none and 1", pens, hits.Load())
	}
}

// Without a shared budget nothing changes: a Retry-After over MaxRetryAfter
// is handed back.
func TestWithoutSharedBudget429IsUnchanged(t *testing.T) {
	var hits atomic.Int32
	srv := server(t, &hits, []int{429, 200}, http.Header{"Retry-After": {"1 minute"}})
	p := testPolicy()
	p.MaxRetryAfter = 10 * time.Second
	_, err := newTestCaller(p, &recSleeper{}, nil).Do(context.Background(), "test.op", get(srv.URL))
	if !failure.Is(err, failure.KindRateLimited) || failure.RetryAfterOf(err) != time.Minute || hits.Load() != 1 {
		t.Fatalf("err = %v, hits %d", err, hits.Load())
	}
}

// A slot taken ahead with Reserve is spent by the next call on that budget
// and by nothing else: one Wait per request sent, never two.
func TestReserveHeldSlotIsSpentOnce(t *testing.T) {
	var hits atomic.Int32
	srv := server(t, &hits, []int{200}, nil)
	l := &fakeLimiter{}
	c := sharedCaller(testPolicy(), l, &recSleeper{}, nil)
	ctx, err := Reserve(context.Background(), l, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if waits, _ := l.state(); waits != 1 {
		t.Fatalf("Reserve waited %d times, want 1", waits)
	}
	if _, err := c.Do(ctx, "test.op", post(srv.URL)); err != nil {
		t.Fatal(err)
	}
	if waits, _ := l.state(); waits != 1 {
		t.Fatalf("the call took %d more slots, want 0 (it holds one)", waits-1)
	}
	// The held slot is spent: a second call through the same context takes
	// its own.
	if _, err := c.Do(ctx, "test.op", post(srv.URL)); err != nil {
		t.Fatal(err)
	}
	if waits, _ := l.state(); waits != 2 || hits.Load() != 2 {
		t.Fatalf("waits %d, sent %d; want 2 and 2", waits, hits.Load())
	}
	// A slot of another budget is not spent by this one.
	other := &fakeLimiter{}
	octx, err := Reserve(context.Background(), other, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Do(octx, "test.op", post(srv.URL)); err != nil {
		t.Fatal(err)
	}
	if waits, _ := l.state(); waits != 3 {
		t.Fatalf("waits %d, want 3: another budget's slot must not pay for this call", waits)
	}
	if ctx, err := Reserve(context.Background(), nil, time.Second); err != nil || ctx != context.Background() {
		t.Fatalf("nil budget: ctx changed or err %v", err)
	}
}

// Reserve keeps room before the deadline for the call, at most half the
// time left (a room as long as the try would refuse every slot forever).
func TestReserveKeepsRoomForTheCall(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	// The budget sees the deadline minus the room.
	dl := &deadlineLimiter{}
	if _, err := Reserve(ctx, dl, 10*time.Minute); err != nil {
		t.Fatal(err)
	}
	if left := time.Until(dl.deadline); left > 50*time.Minute+time.Second || left < 49*time.Minute {
		t.Fatalf("the budget saw %s before its deadline, want about 50m", left)
	}
	// A room longer than the try: half the time left, not a refusal.
	short, cancel2 := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel2()
	dl = &deadlineLimiter{}
	if _, err := Reserve(short, dl, 5*time.Second); err != nil {
		t.Fatalf("room longer than the try: %v, want a slot within the first half", err)
	}
	if left := time.Until(dl.deadline); left > time.Second+50*time.Millisecond || left < 500*time.Millisecond {
		t.Fatalf("the budget saw %s before its deadline, want about 1s", left)
	}
	// The budget's own refusal passes through as it is.
	l := &fakeLimiter{waitErr: failure.RateLimited("rate budget c2s", time.Minute, errors.New("beyond deadline"))}
	if _, err := Reserve(ctx, l, time.Second); failure.RetryAfterOf(err) != time.Minute {
		t.Fatalf("err = %v, want the budget's refusal with its wait", err)
	}
}

type deadlineLimiter struct {
	fakeLimiter
	deadline time.Time
}

func (d *deadlineLimiter) Wait(ctx context.Context) error {
	d.deadline, _ = ctx.Deadline()
	return nil
}
