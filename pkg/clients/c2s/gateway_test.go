package c2s

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/leadflow/leadflow/pkg/backbone/failure"
	"github.com/leadflow/leadflow/pkg/clients/httpx"
	"github.com/leadflow/leadflow/pkg/clients/httpx/httpxtest"
	"github.com/leadflow/leadflow/pkg/contracts"
)

// fakeGateway speaks gateway/API.md: FastAPI-style {"detail": ...} errors.
type fakeGateway struct {
	mu      sync.Mutex
	hits    atomic.Int32
	status  int
	retry   string
	created int // status for add message, 200 or 201
	method  string
	path    string
	body    string
}

func (f *fakeGateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.hits.Add(1)
	b, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.method, f.path, f.body = r.Method, r.URL.Path, string(b)
	status, retry, created := f.status, f.retry, f.created
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if status != 0 {
		if retry != "" {
			w.Header().Set("Retry-After", retry)
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(`{"detail":"upstream said phone 5511987650123 is bad"}`))
		return
	}
	switch {
	case r.Method == "GET" && r.URL.Path == "/":
		_, _ = w.Write([]byte(`{"status":"ok"}`))
	case r.Method == "GET" && r.URL.Path == "/leads/"+leadID:
		_, _ = w.Write(contracts.Read("c2s/lead.json"))
	case r.Method == "GET":
		w.WriteHeader(404)
		_, _ = w.Write([]byte(`{"detail":"Lead not found"}`))
	case r.Method == "POST" && r.URL.Path == "/leads/"+leadID+"/messages":
		if created == 0 {
			created = 201
		}
		w.WriteHeader(created)
		_, _ = w.Write([]byte(`{"success":true}`))
	case r.Method == "PATCH" && r.URL.Path == "/leads/"+leadID:
		_, _ = w.Write([]byte(`{"success":true}`))
	default:
		w.WriteHeader(422)
		_, _ = w.Write([]byte(`{"detail":[{"msg":"field required"}]}`))
	}
}

func (f *fakeGateway) set(status int, retry string) {
	f.mu.Lock()
	f.status, f.retry = status, retry
	f.mu.Unlock()
}

func newGatewayClient(t testing.TB, h http.Handler, p httpx.Policy, s *httpxtest.Sleeper) *Gateway {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c, err := NewGateway(GatewayConfig{BaseURL: srv.URL, Policy: p, Options: httpxtest.Options(s, nil)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestGatewayNewValidates(t *testing.T) {
	if _, err := NewGateway(GatewayConfig{}); err == nil {
		t.Fatal("empty URL accepted")
	}
	c, err := NewGateway(GatewayConfig{BaseURL: "http://gw:8000/"})
	if err != nil || c.base != "http://gw:8000" || c.Caller().Policy() != httpx.GatewayPolicy() {
		t.Fatalf("%v %+v", err, c)
	}
}

func TestContract(t *testing.T) {
	f := &fakeGateway{}
	c := newGatewayClient(t, f, httpxtest.Policy(), &httpxtest.Sleeper{})
	ctx := context.Background()
	if err := c.Health(ctx); err != nil {
		t.Fatal(err)
	}
	l, err := c.GetLead(ctx, leadID)
	if err != nil || l.ID != leadID || l.Customer.Phone != "5511987650123" || l.Customer.Email != "helena.duarte@example.com" {
		t.Fatalf("lead %+v %v", l, err)
	}
	for _, status := range []int{200, 201} {
		f.mu.Lock()
		f.created = status
		f.mu.Unlock()
		if err := c.AddMessage(ctx, leadID, "olá\nmundo"); err != nil {
			t.Fatalf("add message (%d): %v", status, err)
		}
		if f.method != "POST" || f.body != `{"message":"olá\nmundo"}` {
			t.Fatalf("sent %s %s", f.method, f.body)
		}
	}
	if err := c.UpdateLead(ctx, leadID, map[string]any{"status": "x"}); err != nil {
		t.Fatal(err)
	}
	if f.method != "PATCH" || f.body != `{"data":{"type":"lead","attributes":{"status":"x"}}}` {
		t.Fatalf("sent %s %s", f.method, f.body)
	}
}

func TestGatewayErrorMapping(t *testing.T) {
	cases := []struct {
		status int
		retry  string
		kind   failure.Kind
		hits   int32
		after  time.Duration
	}{
		{404, "", failure.KindNotFound, 1, 0},
		{422, "", failure.KindPermanent, 1, 0},
		{401, "", failure.KindUnauthorized, 1, 0},
		{429, "30", failure.KindRateLimited, 4, 30 * time.Second},
		{502, "", failure.KindTransient, 4, 0},
		{500, "", failure.KindTransient, 4, 0},
	}
	for _, tc := range cases {
		t.Run(http.StatusText(tc.status), func(t *testing.T) {
			f := &fakeGateway{}
			f.set(tc.status, tc.retry)
			s := &httpxtest.Sleeper{}
			c := newGatewayClient(t, f, httpxtest.Policy(), s)
			_, err := c.GetLead(context.Background(), leadID)
			if failure.KindOf(err) != tc.kind || failure.RetryAfterOf(err) != tc.after || f.hits.Load() != tc.hits {
				t.Fatalf("err=%v hits=%d, want %v after %v hits %d", err, f.hits.Load(), tc.kind, tc.after, tc.hits)
			}
			if strings.Contains(err.Error(), "5511987650123") {
				t.Fatalf("detail (personal data) leaked: %v", err)
			}
			if tc.status == 429 && (len(s.Waits()) != 3 || s.Waits()[0] != 30*time.Second) {
				t.Fatalf("Retry-After not honoured: %v", s.Waits())
			}
		})
	}
}

func TestBreaker(t *testing.T) {
	f := &fakeGateway{}
	p := httpxtest.Policy()
	p.MaxRetries = 1
	p.BreakerFailures = 2
	p.BreakerOpenFor = 20 * time.Millisecond
	c := newGatewayClient(t, f, p, &httpxtest.Sleeper{})
	for i := 0; i < 5; i++ {
		if _, err := c.GetLead(context.Background(), "ffffffffffffffffffffffffffffffff"); failure.KindOf(err) != failure.KindNotFound {
			t.Fatal(err)
		}
	}
	f.set(502, "")
	if _, err := c.GetLead(context.Background(), leadID); failure.KindOf(err) != failure.KindTransient || c.Caller().BreakerState() != "open" {
		t.Fatalf("breaker not open after 2 failures: %v %s", err, c.Caller().BreakerState())
	}
	_, err := c.GetLead(context.Background(), leadID)
	if !errors.Is(err, httpx.ErrBreakerOpen) || f.hits.Load() != 7 {
		t.Fatalf("err=%v hits=%d, want open breaker to stop calls at 5+2", err, f.hits.Load())
	}
	f.set(0, "")
	for deadline := time.Now().Add(5 * time.Second); c.Caller().BreakerState() != "half-open"; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("never half-opened")
		}
	}
	if err := c.Health(context.Background()); err != nil || c.Caller().BreakerState() != "closed" {
		t.Fatalf("probe %v state %s", err, c.Caller().BreakerState())
	}
}

func TestGatewayRateLimiterHolds(t *testing.T) {
	p := httpxtest.Policy()
	p.Rate, p.Burst = 1, 1
	s := &httpxtest.Sleeper{}
	c := newGatewayClient(t, &fakeGateway{}, p, s)
	for i := 0; i < 2; i++ {
		if err := c.Health(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if w := s.Waits(); len(w) != 1 || w[0] != time.Second {
		t.Fatalf("waits = %v", w)
	}
}

func TestGatewayBadLeadIDNeverSent(t *testing.T) {
	f := &fakeGateway{}
	c := newGatewayClient(t, f, httpxtest.Policy(), &httpxtest.Sleeper{})
	_, err := c.GetLead(context.Background(), "../x")
	err2 := c.AddMessage(context.Background(), "a/b", "x")
	err3 := c.UpdateLead(context.Background(), "", nil)
	for _, e := range []error{err, err2, err3} {
		if failure.KindOf(e) != failure.KindPermanent {
			t.Fatal(e)
		}
	}
	if f.hits.Load() != 0 {
		t.Fatal("bad id sent")
	}
}

func BenchmarkGatewayGetLead(b *testing.B) {
	c := newGatewayClient(b, &fakeGateway{}, httpxtest.Policy(), &httpxtest.Sleeper{})
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if _, err := c.GetLead(ctx, leadID); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "calls/s")
}
