package c2s

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/leadflow/leadflow/pkg/backbone/failure"
	"github.com/leadflow/leadflow/pkg/clients/httpx"
	"github.com/leadflow/leadflow/pkg/clients/httpx/httpxtest"
	"github.com/leadflow/leadflow/pkg/contracts"
	"github.com/prometheus/client_golang/prometheus"
)

const token = "c2s-TOKEN-s3cr3t"

// fakeC2S serves the contract files and records what it received.
type fakeC2S struct {
	mu     sync.Mutex
	hits   atomic.Int32
	status int // when non-zero, every call answers this with retryAfter
	retry  string
	last   struct {
		method, path, auth, authn string
		body                      []byte
	}
}

func (f *fakeC2S) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.hits.Add(1)
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.last.method, f.last.path, f.last.body = r.Method, r.URL.Path, body
	f.last.auth, f.last.authn = r.Header.Get("Authorization"), r.Header.Get("Authentication")
	status, retry := f.status, f.retry
	f.mu.Unlock()
	if status != 0 {
		if retry != "" {
			w.Header().Set("Retry-After", retry)
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(`{"error":"nope"}`))
		return
	}
	switch {
	case r.Method == "GET" && r.URL.Path == "/integration/leads/"+leadID:
		_, _ = w.Write(contracts.Read("c2s/lead.json"))
	case r.Method == "GET" && strings.HasPrefix(r.URL.Path, "/integration/leads/"):
		w.WriteHeader(404)
	case r.Method == "POST" && r.URL.Path == "/integration/leads/"+leadID+"/create_message":
		w.WriteHeader(201)
	case r.Method == "PATCH" && r.URL.Path == "/integration/leads/"+leadID:
		_, _ = w.Write(contracts.Read("c2s/lead.json"))
	case r.Method == "POST" && strings.HasSuffix(r.URL.Path, "subscribe"):
		var req map[string]string
		_ = json.Unmarshal(body, &req)
		if req["hook_action"] == "on_close_lead" { // pretend C2S rejects it
			w.WriteHeader(422)
			_, _ = w.Write([]byte(`{"success":false,"msg":"hook_action not found"}`))
			return
		}
		_, _ = w.Write([]byte(`{"success":true,"message":"Subscribed successfully"}`))
	default:
		w.WriteHeader(400)
	}
}

func (f *fakeC2S) set(status int, retry string) {
	f.mu.Lock()
	f.status, f.retry = status, retry
	f.mu.Unlock()
}

func newClient(t testing.TB, f http.Handler, p httpx.Policy, s *httpxtest.Sleeper, reg prometheus.Registerer) (*Client, *httptest.Server) {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	c, err := New(Config{BaseURL: srv.URL + "/", Token: token, Policy: p, Options: httpxtest.Options(s, reg)})
	if err != nil {
		t.Fatal(err)
	}
	return c, srv
}

func TestNewValidates(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Fatal("missing token accepted")
	}
	if _, err := New(Config{Token: "x", BaseURL: "ftp://x"}); err == nil {
		t.Fatal("bad base URL accepted")
	}
	c, err := New(Config{Token: "x"})
	if err != nil || c.base != DefaultBaseURL || c.Caller().Policy() != httpx.C2SPolicy() {
		t.Fatalf("defaults: %v %+v", err, c)
	}
}

func TestGetLeadContract(t *testing.T) {
	f := &fakeC2S{}
	c, _ := newClient(t, f, httpxtest.Policy(), &httpxtest.Sleeper{}, nil)
	l, err := c.GetLead(context.Background(), leadID)
	if err != nil {
		t.Fatal(err)
	}
	if l.ID != leadID || l.Customer != helena {
		t.Fatalf("lead = %+v", l)
	}
	if f.last.auth != "Bearer "+token || f.last.authn != "Bearer "+token {
		t.Fatalf("auth headers = %q / %q", f.last.auth, f.last.authn)
	}
}

func TestCreateMessageContract(t *testing.T) {
	var want struct{ LeadID, Body string }
	if err := json.Unmarshal(contracts.Read("c2s/create_message_request.json"), &want); err != nil {
		t.Fatal(err)
	}
	f := &fakeC2S{}
	c, _ := newClient(t, f, httpxtest.Policy(), &httpxtest.Sleeper{}, nil)
	if err := c.CreateMessage(context.Background(), want.LeadID, want.Body); err != nil {
		t.Fatal(err)
	}
	var got, exp any
	_ = json.Unmarshal(f.last.body, &got)
	_ = json.Unmarshal(contracts.Read("c2s/create_message_request.json"), &exp)
	if f.last.method != "POST" || !reflect.DeepEqual(got, exp) {
		t.Fatalf("sent %s %s", f.last.method, f.last.body)
	}
}

func TestUpdateLead(t *testing.T) {
	f := &fakeC2S{}
	c, _ := newClient(t, f, httpxtest.Policy(), &httpxtest.Sleeper{}, nil)
	if err := c.UpdateLead(context.Background(), leadID, map[string]any{"description": "x"}); err != nil {
		t.Fatal(err)
	}
	if f.last.method != "PATCH" || string(f.last.body) != `{"data":{"type":"lead","attributes":{"description":"x"}}}` {
		t.Fatalf("sent %s %s", f.last.method, f.last.body)
	}
}

func TestSubscribe(t *testing.T) {
	f := &fakeC2S{}
	c, _ := newClient(t, f, httpxtest.Policy(), &httpxtest.Sleeper{}, nil)
	hook := "https://leadflow.example/api/v1/webhooks/c2s?token=HOOKSECRET"
	if err := c.Subscribe(context.Background(), hook, ActionCreate); err != nil {
		t.Fatal(err)
	}
	var sent map[string]string
	_ = json.Unmarshal(f.last.body, &sent)
	if f.last.path != "/integration/leads/subscribe" || sent["hook_url"] != hook || sent["hook_action"] != ActionCreate {
		t.Fatalf("sent %s %s", f.last.path, f.last.body)
	}
	if err := c.Unsubscribe(context.Background(), hook, ActionUpdate); err != nil || f.last.path != "/integration/leads/unsubscribe" {
		t.Fatalf("unsubscribe: %v %s", err, f.last.path)
	}
	err := c.Subscribe(context.Background(), hook, ActionClose)
	if failure.KindOf(err) != failure.KindPermanent || strings.Contains(err.Error(), "HOOKSECRET") {
		t.Fatalf("422: %v", err)
	}
	before := f.hits.Load()
	if err := c.Subscribe(context.Background(), hook, "on_everything"); failure.KindOf(err) != failure.KindPermanent || f.hits.Load() != before {
		t.Fatalf("unknown action: %v", err)
	}
}

func TestSubscribeSuccessFalse(t *testing.T) {
	srv := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"success":false}`))
	})
	c, _ := newClient(t, srv, httpxtest.Policy(), &httpxtest.Sleeper{}, nil)
	if err := c.Subscribe(context.Background(), "https://x.example/h", ActionCreate); failure.KindOf(err) != failure.KindPermanent {
		t.Fatalf("err = %v", err)
	}
}

func TestErrorMapping(t *testing.T) {
	cases := []struct {
		status int
		retry  string
		kind   failure.Kind
		hits   int32
		after  time.Duration
	}{
		{404, "", failure.KindNotFound, 1, 0},
		{401, "", failure.KindUnauthorized, 1, 0},
		{403, "", failure.KindUnauthorized, 1, 0},
		{400, "", failure.KindPermanent, 1, 0},
		{422, "", failure.KindPermanent, 1, 0},
		{429, "1 minute", failure.KindRateLimited, 4, time.Minute},
		{500, "", failure.KindTransient, 4, 0},
		{503, "", failure.KindTransient, 4, 0},
	}
	for _, tc := range cases {
		t.Run(http.StatusText(tc.status), func(t *testing.T) {
			f := &fakeC2S{}
			f.set(tc.status, tc.retry)
			s := &httpxtest.Sleeper{}
			c, _ := newClient(t, f, httpxtest.Policy(), s, nil)
			_, err := c.GetLead(context.Background(), leadID)
			if failure.KindOf(err) != tc.kind || failure.RetryAfterOf(err) != tc.after {
				t.Fatalf("err = %v, want %v after %v", err, tc.kind, tc.after)
			}
			if f.hits.Load() != tc.hits {
				t.Fatalf("hits = %d, want %d", f.hits.Load(), tc.hits)
			}
			if strings.Contains(err.Error(), token) || strings.Contains(err.Error(), "nope") {
				t.Fatalf("error leaks token or body: %v", err)
			}
			if tc.status == 429 {
				for _, w := range s.Waits() {
					if w != time.Minute {
						t.Fatalf("waits = %v, want Retry-After 1m each", s.Waits())
					}
				}
			}
		})
	}
}

func TestBadLeadIDNeverSent(t *testing.T) {
	f := &fakeC2S{}
	c, _ := newClient(t, f, httpxtest.Policy(), &httpxtest.Sleeper{}, nil)
	for _, id := range []string{"", "../admin", "a/b", "x?y=1", "a b"} {
		_, err := c.GetLead(context.Background(), id)
		err2 := c.CreateMessage(context.Background(), id, "hi")
		err3 := c.UpdateLead(context.Background(), id, nil)
		for _, e := range []error{err, err2, err3} {
			if failure.KindOf(e) != failure.KindPermanent || !errors.Is(e, ErrBadLeadID) {
				t.Fatalf("id %q: %v", id, e)
			}
		}
	}
	if f.hits.Load() != 0 {
		t.Fatalf("bad ids reached the server %d times", f.hits.Load())
	}
}

func TestGetLeadBadBody(t *testing.T) {
	for body, kind := range map[string]failure.Kind{`<html>`: failure.KindTransient, `{"data":{}}`: failure.KindPermanent} {
		c, _ := newClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte(body))
		}), httpxtest.Policy(), &httpxtest.Sleeper{}, nil)
		if _, err := c.GetLead(context.Background(), leadID); failure.KindOf(err) != kind {
			t.Fatalf("body %s: err = %v, want %v", body, err, kind)
		}
	}
}

// TestCreateMessageOutcome: C2S does not deduplicate. A 5xx after the post
// was sent leaves it uncertain (c2s/API.md) and it is never resent; only a
// 429 proves C2S did not act.
func TestCreateMessageOutcome(t *testing.T) {
	for _, tc := range []struct {
		status int
		kind   failure.Kind
		hits   int32
	}{
		{500, failure.KindUncertain, 1},
		{502, failure.KindUncertain, 1},
		{503, failure.KindUncertain, 1},
		{504, failure.KindUncertain, 1},
		{429, failure.KindRateLimited, 4},
	} {
		f := &fakeC2S{}
		f.set(tc.status, "1")
		c, _ := newClient(t, f, httpxtest.Policy(), &httpxtest.Sleeper{}, nil)
		err := c.CreateMessage(context.Background(), leadID, "hello")
		if failure.KindOf(err) != tc.kind || f.hits.Load() != tc.hits {
			t.Fatalf("%d: err=%v hits=%d, want %v after %d sends", tc.status, err, f.hits.Load(), tc.kind, tc.hits)
		}
	}
}

func TestBreakerAndNotFound(t *testing.T) {
	f := &fakeC2S{}
	p := httpxtest.Policy()
	p.MaxRetries = 0
	p.BreakerFailures = 3
	p.BreakerOpenFor = 20 * time.Millisecond
	c, _ := newClient(t, f, p, &httpxtest.Sleeper{}, nil)
	for i := 0; i < 10; i++ { // unknown leads: normal answers
		if _, err := c.GetLead(context.Background(), "00000000000000000000000000000000"); failure.KindOf(err) != failure.KindNotFound {
			t.Fatalf("err = %v", err)
		}
	}
	if c.Caller().BreakerState() != "closed" {
		t.Fatal("404s opened the breaker")
	}
	f.set(502, "")
	for i := 0; i < 5; i++ {
		_, _ = c.GetLead(context.Background(), leadID)
	}
	if got := f.hits.Load(); got != 13 {
		t.Fatalf("hits = %d, want 10 + 3 before the breaker opened", got)
	}
	f.set(0, "")
	deadline := time.Now().Add(5 * time.Second)
	for c.Caller().BreakerState() != "half-open" {
		if time.Now().After(deadline) {
			t.Fatal("breaker never half-opened")
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := c.GetLead(context.Background(), leadID); err != nil || c.Caller().BreakerState() != "closed" {
		t.Fatalf("probe: %v, state %s", err, c.Caller().BreakerState())
	}
}

func TestRateLimiterHolds(t *testing.T) {
	f := &fakeC2S{}
	p := httpxtest.Policy()
	p.Rate, p.Burst = 1, 1
	s := &httpxtest.Sleeper{}
	c, _ := newClient(t, f, p, s, nil)
	for i := 0; i < 2; i++ {
		if _, err := c.GetLead(context.Background(), leadID); err != nil {
			t.Fatal(err)
		}
	}
	if w := s.Waits(); len(w) != 1 || w[0] != time.Second {
		t.Fatalf("waits = %v, want [1s]", w)
	}
}

func TestTokenNeverInTransportErrors(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()
	c, err := New(Config{BaseURL: srv.URL, Token: token, Policy: httpxtest.Policy(), Options: httpxtest.Options(&httpxtest.Sleeper{}, nil)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.GetLead(context.Background(), leadID)
	if failure.KindOf(err) != failure.KindTransient || strings.Contains(err.Error(), token) {
		t.Fatalf("err = %v", err)
	}
}

func BenchmarkGetLead(b *testing.B) {
	p := httpxtest.Policy()
	c, _ := newClient(b, &fakeC2S{}, p, &httpxtest.Sleeper{}, nil)
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
