package httpx

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/leadflow/leadflow/pkg/backbone/failure"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// recSleeper records requested waits instead of sleeping.
type recSleeper struct {
	mu    sync.Mutex
	waits []time.Duration
}

func (s *recSleeper) Sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.waits = append(s.waits, d)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *recSleeper) Waits() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.waits...)
}

var t0 = time.Date(2025, 11, 21, 13, 30, 0, 0, time.UTC)

func fixedNow() time.Time { return t0 }

func noJitter(d time.Duration) time.Duration { return d }

func testPolicy() Policy {
	return Policy{Timeout: 5 * time.Second, MaxRetries: 3, BackoffBase: 100 * time.Millisecond,
		BackoffMax: 250 * time.Millisecond, MaxRetryAfter: 2 * time.Minute}
}

func newTestCaller(p Policy, s *recSleeper, reg prometheus.Registerer) *Caller {
	return New("test", nil, p, Options{Sleep: s.Sleep, Now: fixedNow, Jitter: noJitter, Registerer: reg})
}

// server answers with the statuses in order, then repeats the last one.
func server(t *testing.T, hits *atomic.Int32, statuses []int, header http.Header) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := int(hits.Add(1)) - 1
		if n >= len(statuses) {
			n = len(statuses) - 1
		}
		if statuses[n] == http.StatusTooManyRequests {
			for k, v := range header {
				w.Header()[k] = v
			}
		}
		w.WriteHeader(statuses[n])
		_, _ = w.Write([]byte(`{}`))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func get(url string) func(ctx context.Context) (*http.Request, error) {
	return func(ctx context.Context) (*http.Request, error) {
		return http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	}
}

func TestRetries(t *testing.T) {
	cases := []struct {
		name     string
		method   string
		statuses []int
		hits     int32
		waits    []time.Duration
		kind     failure.Kind
		ok       bool
	}{
		{"5xx stops at limit", "GET", []int{500}, 4, []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 250 * time.Millisecond}, failure.KindTransient, false},
		{"recovers", "GET", []int{502, 200}, 2, []time.Duration{100 * time.Millisecond}, 0, true},
		{"404 not retried", "GET", []int{404}, 1, nil, failure.KindNotFound, false},
		{"400 not retried", "GET", []int{400}, 1, nil, failure.KindPermanent, false},
		{"401 not retried", "GET", []int{401}, 1, nil, failure.KindUnauthorized, false},
		{"POST 500 not resent", "POST", []int{500}, 1, nil, failure.KindUncertain, false},
		{"POST 503 resent", "POST", []int{503, 201}, 2, []time.Duration{100 * time.Millisecond}, 0, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var hits atomic.Int32
			srv := server(t, &hits, tc.statuses, nil)
			s := &recSleeper{}
			c := newTestCaller(testPolicy(), s, nil)
			_, err := c.Do(context.Background(), "test.op", func(ctx context.Context) (*http.Request, error) {
				return http.NewRequestWithContext(ctx, tc.method, srv.URL, strings.NewReader("{}"))
			})
			if tc.ok != (err == nil) {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if !tc.ok && failure.KindOf(err) != tc.kind {
				t.Fatalf("kind = %v, want %v (%v)", failure.KindOf(err), tc.kind, err)
			}
			if got := hits.Load(); got != tc.hits {
				t.Fatalf("hits = %d, want %d", got, tc.hits)
			}
			if got := s.Waits(); !equalDur(got, tc.waits) {
				t.Fatalf("waits = %v, want %v", got, tc.waits)
			}
		})
	}
}

func equalDur(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestRetryAfterHonoured(t *testing.T) {
	cases := []struct {
		header string
		want   time.Duration
	}{
		{"7", 7 * time.Second},
		{"1 minute", time.Minute},
		{"30 seconds", 30 * time.Second},
		{t0.Add(45 * time.Second).Format(http.TimeFormat), 45 * time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.header, func(t *testing.T) {
			var hits atomic.Int32
			srv := server(t, &hits, []int{429, 200}, http.Header{"Retry-After": {tc.header}})
			s := &recSleeper{}
			c := newTestCaller(testPolicy(), s, nil)
			if _, err := c.Do(context.Background(), "test.op", get(srv.URL)); err != nil {
				t.Fatal(err)
			}
			if got := s.Waits(); len(got) != 1 || got[0] != tc.want {
				t.Fatalf("waits = %v, want [%v]", got, tc.want)
			}
			if hits.Load() != 2 {
				t.Fatalf("hits = %d", hits.Load())
			}
		})
	}
}

func TestRetryAfterOverCapReturned(t *testing.T) {
	var hits atomic.Int32
	srv := server(t, &hits, []int{429}, http.Header{"Retry-After": {"3 minutes"}})
	s := &recSleeper{}
	c := newTestCaller(testPolicy(), s, nil)
	_, err := c.Do(context.Background(), "test.op", get(srv.URL))
	if failure.KindOf(err) != failure.KindRateLimited || failure.RetryAfterOf(err) != 3*time.Minute {
		t.Fatalf("err = %v", err)
	}
	if hits.Load() != 1 || len(s.Waits()) != 0 {
		t.Fatalf("hits=%d waits=%v: must not sleep past the cap", hits.Load(), s.Waits())
	}
}

func TestBreakerOpensAndHalfOpens(t *testing.T) {
	var hits atomic.Int32
	var healthy atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if !healthy.Load() {
			w.WriteHeader(500)
		}
	}))
	defer srv.Close()
	p := testPolicy()
	p.MaxRetries = 5
	p.BreakerFailures = 3
	p.BreakerOpenFor = 30 * time.Millisecond
	reg := prometheus.NewRegistry()
	c := newTestCaller(p, &recSleeper{}, reg)

	_, err := c.Do(context.Background(), "test.op", get(srv.URL))
	if !errors.Is(err, ErrBreakerOpen) || failure.KindOf(err) != failure.KindTransient {
		t.Fatalf("err = %v, want breaker open", err)
	}
	if hits.Load() != 3 {
		t.Fatalf("hits = %d, want 3 (breaker stops the retries)", hits.Load())
	}
	if _, err := c.Do(context.Background(), "test.op", get(srv.URL)); !errors.Is(err, ErrBreakerOpen) || hits.Load() != 3 {
		t.Fatalf("open breaker let a call through: err=%v hits=%d", err, hits.Load())
	}
	waitState(t, c, "half-open")
	healthy.Store(true)
	if _, err := c.Do(context.Background(), "test.op", get(srv.URL)); err != nil {
		t.Fatalf("half-open probe: %v", err)
	}
	if c.BreakerState() != "closed" || hits.Load() != 4 {
		t.Fatalf("state=%s hits=%d", c.BreakerState(), hits.Load())
	}
	if v := counterValue(t, reg, "leadflow_upstream_breaker_transitions_total", map[string]string{"upstream": "test", "to": "open"}); v != 1 {
		t.Fatalf("open transitions = %v", v)
	}
	if v := counterValue(t, reg, "leadflow_upstream_calls_total", map[string]string{"upstream": "test", "outcome": "breaker_open"}); v != 2 {
		t.Fatalf("breaker_open calls = %v", v)
	}
}

// waitState polls (no fixed sleep) until the breaker reaches state.
func waitState(t *testing.T, c *Caller, state string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for c.BreakerState() != state {
		if time.Now().After(deadline) {
			t.Fatalf("breaker stuck in %s, want %s", c.BreakerState(), state)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestNormalAnswersDoNotTripBreaker(t *testing.T) {
	for _, status := range []int{404, 400, 401, 422} {
		var hits atomic.Int32
		srv := server(t, &hits, []int{status}, nil)
		p := testPolicy()
		p.BreakerFailures = 2
		c := newTestCaller(p, &recSleeper{}, nil)
		for i := 0; i < 10; i++ {
			if _, err := c.Do(context.Background(), "test.op", get(srv.URL)); errors.Is(err, ErrBreakerOpen) {
				t.Fatalf("status %d opened the breaker", status)
			}
		}
		if hits.Load() != 10 || c.BreakerState() != "closed" {
			t.Fatalf("status %d: hits=%d state=%s", status, hits.Load(), c.BreakerState())
		}
	}
}

func TestCallerCancellationDoesNotTripBreaker(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)
	p := testPolicy()
	p.BreakerFailures = 1
	c := newTestCaller(p, &recSleeper{}, nil)
	for i := 0; i < 3; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		_, err := c.Do(ctx, "test.op", get(srv.URL))
		cancel()
		if failure.KindOf(err) != failure.KindTransient || errors.Is(err, ErrBreakerOpen) {
			t.Fatalf("err = %v", err)
		}
	}
	if c.BreakerState() != "closed" {
		t.Fatalf("state = %s", c.BreakerState())
	}
}

func TestPerAttemptTimeout(t *testing.T) {
	var hits atomic.Int32
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)
	p := testPolicy()
	p.Timeout = 20 * time.Millisecond
	p.MaxRetries = 2
	s := &recSleeper{}
	c := newTestCaller(p, s, nil)
	_, err := c.Do(context.Background(), "test.op", get(srv.URL))
	if failure.KindOf(err) != failure.KindTransient {
		t.Fatalf("err = %v", err)
	}
	if hits.Load() != 3 || len(s.Waits()) != 2 {
		t.Fatalf("hits=%d waits=%v: each attempt must time out and be retried", hits.Load(), s.Waits())
	}
}

func TestRateLimiterHolds(t *testing.T) {
	var hits atomic.Int32
	srv := server(t, &hits, []int{200}, nil)
	p := testPolicy()
	p.Rate, p.Burst = 1, 1
	s := &recSleeper{}
	c := newTestCaller(p, s, nil)
	for i := 0; i < 3; i++ {
		if _, err := c.Do(context.Background(), "test.op", get(srv.URL)); err != nil {
			t.Fatal(err)
		}
	}
	// Clock frozen: the 2nd call waits 1 s, the 3rd 2 s.
	if got := s.Waits(); !equalDur(got, []time.Duration{time.Second, 2 * time.Second}) {
		t.Fatalf("limiter waits = %v", got)
	}
}

func TestRateLimiterRefusesPastDeadline(t *testing.T) {
	var hits atomic.Int32
	srv := server(t, &hits, []int{200}, nil)
	p := testPolicy()
	p.Rate, p.Burst = 0.01, 1 // 100 s per token
	c := New("test", nil, p, Options{Sleep: (&recSleeper{}).Sleep, Jitter: noJitter})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := c.Do(ctx, "test.op", get(srv.URL)); err != nil {
		t.Fatal(err)
	}
	_, err := c.Do(ctx, "test.op", get(srv.URL))
	if !errors.Is(err, ErrLocalRate) || failure.KindOf(err) != failure.KindRateLimited || hits.Load() != 1 {
		t.Fatalf("err=%v hits=%d", err, hits.Load())
	}
}

func TestConcurrencyCap(t *testing.T) {
	var hits atomic.Int32
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		<-release
	}))
	defer srv.Close()
	p := testPolicy()
	p.MaxConcurrent = 1
	c := newTestCaller(p, &recSleeper{}, nil)
	done := make(chan error, 1)
	go func() {
		_, err := c.Do(context.Background(), "test.op", get(srv.URL))
		done <- err
	}()
	for deadline := time.Now().Add(5 * time.Second); hits.Load() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("first call never arrived")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	_, err := c.Do(ctx, "test.op", get(srv.URL))
	cancel()
	if err == nil || hits.Load() != 1 {
		t.Fatalf("second call passed the cap: err=%v hits=%d", err, hits.Load())
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestSecretsNeverInErrors(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	dead := srv.URL
	srv.Close() // connection refused from now on
	const token = "tok-SUPERSECRET-123"
	const phone = "11987650123"
	s := &recSleeper{}
	c := New("test", nil, testPolicy(), Options{Sleep: s.Sleep, Jitter: noJitter, Secrets: []string{token}})
	_, err := c.Do(context.Background(), "test.op", func(ctx context.Context) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, "GET", dead+"/Telefone/"+phone+"?token="+token, nil)
		if err == nil {
			req.Header.Set("Authorization", "Bearer "+token)
			req.SetBasicAuth("user", "pa55word")
		}
		return req, err
	})
	if err == nil || failure.KindOf(err) != failure.KindTransient {
		t.Fatalf("err = %v", err)
	}
	for _, secret := range []string{token, phone, "pa55word", "Bearer"} {
		if strings.Contains(err.Error(), secret) {
			t.Fatalf("error leaks %q: %v", secret, err)
		}
	}
	if len(s.Waits()) != 3 {
		t.Fatalf("connection errors must be retried, waits=%v", s.Waits())
	}
}

func TestScrubLiteralSecret(t *testing.T) {
	c := New("test", nil, testPolicy(), Options{Secrets: []string{"s3cr3t"}})
	base := errors.New("proxy said token=s3cr3t")
	err := c.scrub(base)
	if strings.Contains(err.Error(), "s3cr3t") || !errors.Is(err, base) {
		t.Fatalf("scrub = %v", err)
	}
}

func TestRedactURL(t *testing.T) {
	req, _ := http.NewRequest("GET", "https://u:p@x.example/api?token=abc&modulo=cpf", nil)
	got := RedactURL(req.URL, "token")
	if strings.Contains(got, "abc") || strings.Contains(got, "u:p") || !strings.Contains(got, "modulo=cpf") {
		t.Fatalf("RedactURL = %s", got)
	}
}

func TestDuplicateRegistrationSharesCounters(t *testing.T) {
	reg := prometheus.NewRegistry()
	var hits atomic.Int32
	srv := server(t, &hits, []int{404}, nil)
	a := New("dup", nil, testPolicy(), Options{Registerer: reg})
	b := New("dup", nil, testPolicy(), Options{Registerer: reg}) // must not panic
	_, _ = a.Do(context.Background(), "op", get(srv.URL))
	_, _ = b.Do(context.Background(), "op", get(srv.URL))
	if v := counterValue(t, reg, "leadflow_upstream_calls_total", map[string]string{"upstream": "dup", "outcome": "not_found"}); v != 2 {
		t.Fatalf("not_found calls = %v, want 2", v)
	}
}

func TestMetricsCountRetries(t *testing.T) {
	reg := prometheus.NewRegistry()
	var hits atomic.Int32
	srv := server(t, &hits, []int{500, 500, 200}, nil)
	c := newTestCaller(testPolicy(), &recSleeper{}, reg)
	if _, err := c.Do(context.Background(), "op", get(srv.URL)); err != nil {
		t.Fatal(err)
	}
	if v := counterValue(t, reg, "leadflow_upstream_retries_total", map[string]string{"upstream": "test"}); v != 2 {
		t.Fatalf("retries = %v", v)
	}
	if v := counterValue(t, reg, "leadflow_upstream_calls_total", map[string]string{"upstream": "test", "outcome": "ok"}); v != 1 {
		t.Fatalf("ok calls = %v", v)
	}
}

func counterValue(t *testing.T, g prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if want, ok := labels[lp.GetName()]; ok && want != lp.GetValue() {
					continue next
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

func TestParseRetryAfter(t *testing.T) {
	cases := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"120", 120 * time.Second, true},
		{" 1.5 ", 1500 * time.Millisecond, true},
		{"1 minute", time.Minute, true},
		{"2 Minutes", 2 * time.Minute, true},
		{"30 seconds", 30 * time.Second, true},
		{"30s", 30 * time.Second, true},
		{"1m30s", 90 * time.Second, true},
		{"1 hour", time.Hour, true},
		{t0.Add(10 * time.Second).Format(http.TimeFormat), 10 * time.Second, true},
		{t0.Add(-10 * time.Second).Format(http.TimeFormat), 0, true},
		{"", 0, false},
		{"-5", 0, false},
		{"soon", 0, false},
		{"3 fortnights", 0, false},
	}
	for _, tc := range cases {
		got, ok := ParseRetryAfter(tc.in, t0)
		if got != tc.want || ok != tc.ok {
			t.Errorf("ParseRetryAfter(%q) = %v,%v want %v,%v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestBackoffIsCappedFullJitter(t *testing.T) {
	c := New("test", nil, testPolicy(), Options{})
	for retry := 0; retry < 40; retry++ {
		if d := c.backoff(retry); d < 0 || d > 250*time.Millisecond {
			t.Fatalf("backoff(%d) = %v out of [0, max]", retry, d)
		}
	}
}

func BenchmarkCaller(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"ok":true}`))
	}))
	defer srv.Close()
	p := testPolicy()
	p.BreakerFailures = 5
	c := New("bench", nil, p, Options{})
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if _, err := c.Do(context.Background(), "op", get(srv.URL)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "calls/s")
}

// outcomeServer misbehaves in one way on every request.
func outcomeServer(t *testing.T, hits *atomic.Int32, mode string) string {
	t.Helper()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		_, _ = io.ReadAll(r.Body) // the request reached the upstream in full
		switch mode {
		case "hang":
			select {
			case <-r.Context().Done():
			case <-release:
			}
		case "drop":
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				_ = conn.Close()
			}
		case "500":
			w.WriteHeader(500)
		case "502":
			w.WriteHeader(502)
		case "503":
			w.WriteHeader(503)
		case "504":
			w.WriteHeader(504)
		default:
			w.WriteHeader(201)
		}
	}))
	t.Cleanup(func() { close(release); srv.Close() })
	if mode == "refused" {
		srv.Close()
	}
	return srv.URL
}

// dnsFailure is a transport whose dial fails the way an unknown host does.
type dnsFailure struct{}

func (dnsFailure) RoundTrip(r *http.Request) (*http.Response, error) {
	return nil, &net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: r.URL.Hostname(), IsNotFound: true}}
}

// TestPostOutcome: a POST (or PATCH) that may have reached the upstream and
// lost its answer is uncertain and sent once; one that provably never got
// there is transient and may be resent; reads are always transient.
func TestPostOutcome(t *testing.T) {
	cases := []struct {
		method, mode string
		unsent       []int // nil = the default
		kind         failure.Kind
		hits         int32 // -1: the upstream cannot count (refused, DNS)
		sends        int   // attempts (waits + 1)
	}{
		{"POST", "hang", nil, failure.KindUncertain, 1, 1},
		{"POST", "drop", nil, failure.KindUncertain, 1, 1},
		{"POST", "500", nil, failure.KindUncertain, 1, 1},
		{"POST", "502", nil, failure.KindUncertain, 1, 1},
		{"POST", "504", nil, failure.KindUncertain, 1, 1},
		{"PATCH", "502", nil, failure.KindUncertain, 1, 1},
		{"POST", "503", nil, failure.KindTransient, 4, 4},                               // the default: 503 = refused before acting
		{"POST", "503", []int{http.StatusTooManyRequests}, failure.KindUncertain, 1, 1}, // direct C2S: a 5xx is a 5xx
		{"POST", "refused", nil, failure.KindTransient, -1, 4},
		{"POST", "dns", nil, failure.KindTransient, -1, 4},
		{"GET", "hang", nil, failure.KindTransient, 4, 4},
		{"GET", "drop", nil, failure.KindTransient, 4, 4},
		{"GET", "502", nil, failure.KindTransient, 4, 4},
	}
	for _, tc := range cases {
		name := tc.method + " " + tc.mode
		if tc.unsent != nil {
			name += " (unsent statuses " + fmt.Sprint(tc.unsent) + ")"
		}
		t.Run(name, func(t *testing.T) {
			var hits atomic.Int32
			url := "http://upstream.invalid"
			var client *http.Client
			if tc.mode == "dns" {
				client = &http.Client{Transport: dnsFailure{}}
			} else {
				url = outcomeServer(t, &hits, tc.mode)
			}
			p := testPolicy()
			p.Timeout = 50 * time.Millisecond
			s := &recSleeper{}
			c := New("test", client, p, Options{Sleep: s.Sleep, Now: fixedNow, Jitter: noJitter, UnsentStatuses: tc.unsent})
			_, err := c.Do(context.Background(), "test.post", func(ctx context.Context) (*http.Request, error) {
				return http.NewRequestWithContext(ctx, tc.method, url, strings.NewReader(`{"message":"x"}`))
			})
			if failure.KindOf(err) != tc.kind {
				t.Fatalf("kind = %v (%v), want %v", failure.KindOf(err), err, tc.kind)
			}
			if tc.hits >= 0 && hits.Load() != tc.hits {
				t.Fatalf("the upstream saw %d requests, want %d", hits.Load(), tc.hits)
			}
			if got := len(s.Waits()) + 1; got != tc.sends {
				t.Fatalf("%d attempts, want %d", got, tc.sends)
			}
			if tc.kind == failure.KindUncertain && !strings.Contains(err.Error(), "test.post") {
				t.Fatalf("the uncertain error lost its op: %v", err)
			}
		})
	}
}

// TestUncertainTripsBreaker: lost answers to posts count as failures.
func TestUncertainTripsBreaker(t *testing.T) {
	var hits atomic.Int32
	url := outcomeServer(t, &hits, "502")
	p := testPolicy()
	p.BreakerFailures = 2
	c := newTestCaller(p, &recSleeper{}, nil)
	post := func(ctx context.Context) (*http.Request, error) {
		return http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader("{}"))
	}
	for i := 0; i < 2; i++ {
		if _, err := c.Do(context.Background(), "test.post", post); !failure.Is(err, failure.KindUncertain) {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	_, err := c.Do(context.Background(), "test.post", post)
	if !errors.Is(err, ErrBreakerOpen) || !failure.Is(err, failure.KindTransient) || hits.Load() != 2 {
		t.Fatalf("err = %v, hits = %d: an open breaker refuses without sending (transient, not uncertain)", err, hits.Load())
	}
}

// TestPostNotSentAfterCallerGaveUp: a POST whose caller is already gone is
// not sent, so it is not uncertain either.
func TestPostNotSentAfterCallerGaveUp(t *testing.T) {
	var hits atomic.Int32
	url := outcomeServer(t, &hits, "ok")
	c := newTestCaller(testPolicy(), &recSleeper{}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := c.Do(ctx, "test.post", func(ctx context.Context) (*http.Request, error) {
		return http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader("{}"))
	})
	if !failure.Is(err, failure.KindTransient) || hits.Load() != 0 {
		t.Fatalf("err = %v, hits = %d", err, hits.Load())
	}
}

func gaugeValue(t *testing.T, g prometheus.Gatherer, name, upstream string) (float64, bool) {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if mf.GetName() == name && len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == upstream {
				if m.GetHistogram() != nil {
					return float64(m.GetHistogram().GetSampleCount()), true
				}
				return m.GetGauge().GetValue(), true
			}
		}
	}
	return 0, false
}

// TestBreakerGaugeAndAttemptHistogram: the breaker's state is exported as a
// gauge (0 closed, 1 half-open, 2 open), every HTTP attempt is timed, and
// refused credentials are counted on the counter the client was given.
func TestBreakerGaugeAndAttemptHistogram(t *testing.T) {
	var status atomic.Int32
	status.Store(500)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(int(status.Load())) }))
	defer srv.Close()
	p := testPolicy()
	p.MaxRetries = 0
	p.BreakerFailures = 2
	p.BreakerOpenFor = time.Hour
	reg := prometheus.NewRegistry()
	unauth := prometheus.NewCounter(prometheus.CounterOpts{Name: "test_unauthorized_total"})
	o := Options{Registerer: reg, Sleep: (&recSleeper{}).Sleep, Unauthorized: unauth}
	c := New("test", nil, p, o)
	if v, ok := gaugeValue(t, reg, "leadflow_upstream_breaker_state", "test"); !ok || v != 0 {
		t.Fatalf("initial breaker state = %v (exported %v), want 0", v, ok)
	}
	if v, ok := gaugeValue(t, reg, "leadflow_upstream_request_seconds", "test"); !ok || v != 0 {
		t.Fatalf("attempt histogram before any call = %v (exported %v)", v, ok)
	}
	for i := 0; i < 2; i++ {
		_, _ = c.Do(context.Background(), "test.op", get(srv.URL))
	}
	if v, _ := gaugeValue(t, reg, "leadflow_upstream_breaker_state", "test"); v != 2 {
		t.Fatalf("breaker state after 2 failures = %v, want 2 (open)", v)
	}
	if v, _ := gaugeValue(t, reg, "leadflow_upstream_request_seconds", "test"); v != 2 {
		t.Fatalf("attempts timed = %v, want 2", v)
	}
	c2 := New("test2", nil, p, o)
	status.Store(401)
	if _, err := c2.Do(context.Background(), "test.op", get(srv.URL)); failure.KindOf(err) != failure.KindUnauthorized {
		t.Fatalf("err = %v", err)
	}
	if v := testutil.ToFloat64(unauth); v != 1 {
		t.Fatalf("unauthorized counted %v times, want 1", v)
	}
}

// Idle connections must be dropped before common servers drop them (60 s and
// more), so no call goes out on a connection the server is closing.
func TestDefaultClientDropsIdleConnectionsEarly(t *testing.T) {
	tr, ok := DefaultClient().Transport.(*http.Transport)
	if !ok {
		t.Fatalf("transport is a %T", DefaultClient().Transport)
	}
	if tr.IdleConnTimeout <= 0 || tr.IdleConnTimeout > 30*time.Second {
		t.Errorf("IdleConnTimeout = %v, want (0, 30s]", tr.IdleConnTimeout)
	}
	// A worker service keeps up to 64 handlers × 2 calls in flight to one
	// host: fewer idle slots close connections only to dial them again.
	if tr.MaxIdleConnsPerHost < 128 || (tr.MaxIdleConns != 0 && tr.MaxIdleConns < 128) {
		t.Errorf("MaxIdleConnsPerHost = %d, MaxIdleConns = %d: connections would not be reused under load",
			tr.MaxIdleConnsPerHost, tr.MaxIdleConns)
	}
}

// Under concurrent load the connections are reused: 128 calls at once, five
// times over, open no more connections than were ever in flight at once.
func TestDefaultClientReusesConnectionsUnderLoad(t *testing.T) {
	var conns atomic.Int64
	var mu sync.Mutex
	release := make(chan struct{})
	var arrived sync.WaitGroup
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		round := release
		mu.Unlock()
		arrived.Done()
		<-round
		w.WriteHeader(http.StatusNoContent)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	client := DefaultClient()
	const inFlight = 128
	for range 5 {
		arrived.Add(inFlight)
		var done sync.WaitGroup
		for range inFlight {
			done.Add(1)
			go func() {
				defer done.Done()
				res, err := client.Get(srv.URL)
				if err != nil {
					t.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
			}()
		}
		arrived.Wait() // all 128 in flight at once
		mu.Lock()
		close(release)
		release = make(chan struct{})
		mu.Unlock()
		done.Wait()
	}
	if n := conns.Load(); n != inFlight {
		t.Fatalf("%d connections opened for 5 rounds of %d concurrent calls, want %d (reused)", n, inFlight, inFlight)
	}
}
