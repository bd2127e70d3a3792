package c2s

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/leadflow/leadflow/pkg/backbone/failure"
	"github.com/leadflow/leadflow/pkg/clients/httpx/httpxtest"
	"github.com/leadflow/leadflow/pkg/contracts"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

const (
	secret = "Telefone 5511987650123 CPF 318.604.572-07"
)

// direct C2S: always healthy, serves the contract lead.
func directServer(t testing.TB, hits *atomic.Int32) *Client {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		switch r.Method {
		case "GET":
			_, _ = w.Write(contracts.Read("c2s/lead.json"))
		case "POST":
			w.WriteHeader(201)
		default:
			w.WriteHeader(200)
		}
	}))
	t.Cleanup(srv.Close)
	c, err := New(Config{BaseURL: srv.URL, Token: "tok", Policy: httpxtest.Policy(),
		Options: httpxtest.Options(&httpxtest.Sleeper{}, nil)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

type gwMode int

const (
	gwOK gwMode = iota
	gw500
	gw502
	gw503
	gw504
	gwTimeout
	gwDrop
	gwDown
	gwDNS
	gw404
	gw429
	gw422
)

// misbehave answers the way mode says, after reading the request in full
// (so a lost answer is a post that reached the upstream).
func misbehave(w http.ResponseWriter, r *http.Request, mode gwMode, release <-chan struct{}) bool {
	_, _ = io.ReadAll(r.Body)
	switch mode {
	case gw500:
		w.WriteHeader(500)
	case gw502:
		w.WriteHeader(502)
		_, _ = w.Write([]byte(`{"detail":"C2S error"}`))
	case gw503:
		w.WriteHeader(503)
		_, _ = w.Write([]byte(`{"detail":"busy"}`))
	case gw504:
		w.WriteHeader(504)
	case gwTimeout:
		select {
		case <-r.Context().Done():
		case <-release:
		}
	case gwDrop:
		if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
			_ = conn.Close()
		}
	case gw404:
		w.WriteHeader(404)
		_, _ = w.Write([]byte(`{"detail":"Lead not found"}`))
	case gw429:
		w.Header().Set("Retry-After", "1 minute")
		w.WriteHeader(429)
	case gw422:
		w.WriteHeader(422)
		_, _ = w.Write([]byte(`{"detail":"invalid"}`))
	default:
		return false
	}
	return true
}

// dnsFailure is a transport whose dial fails the way an unknown host does.
type dnsFailure struct{}

func (dnsFailure) RoundTrip(r *http.Request) (*http.Response, error) {
	return nil, &net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: r.URL.Hostname(), IsNotFound: true}}
}

func gatewayServer(t testing.TB, mode gwMode, hits *atomic.Int32) *Gateway {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if misbehave(w, r, mode, release) {
			return
		}
		if r.Method == "GET" {
			_, _ = w.Write(contracts.Read("c2s/lead.json"))
			return
		}
		w.WriteHeader(201)
	}))
	t.Cleanup(func() { close(release); srv.Close() })
	url := srv.URL
	var client *http.Client
	switch mode {
	case gwDown:
		srv.Close()
	case gwDNS:
		url, client = "http://gateway.invalid", &http.Client{Transport: dnsFailure{}}
	}
	p := httpxtest.Policy()
	p.MaxRetries = 0
	p.MaxRetryAfter = time.Second // 429s are handed back, not slept
	p.Timeout = 200 * time.Millisecond
	g, err := NewGateway(GatewayConfig{BaseURL: url, HTTPClient: client, Policy: p, Options: httpxtest.Options(&httpxtest.Sleeper{}, nil)})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// Expected outcomes of one operation through the route.
const (
	viaGateway = "gateway"   // the gateway answered 2xx
	viaDirect  = "direct"    // fell back to direct C2S, which answered 2xx
	uncertain  = "uncertain" // error, the outcome is unknown, no second call
	passed     = "passed"    // the gateway's 4xx/429 is returned as is
)

// TestRouting is the fallback rule of gateway/API.md for each error class:
// reads and PATCH fall back on any transient failure; a post falls back only
// when it provably never reached the gateway (refused, DNS failure, 503
// before forwarding) and is uncertain otherwise (500/502/504, timeout,
// dropped connection), with no second post by either route.
func TestRouting(t *testing.T) {
	cases := []struct {
		name             string
		mode             gwMode
		get, post, patch string
		kind             failure.Kind // of a passed error
	}{
		{"gateway ok", gwOK, viaGateway, viaGateway, viaGateway, 0},
		{"gateway refused", gwDown, viaDirect, viaDirect, viaDirect, 0},
		{"gateway DNS failure", gwDNS, viaDirect, viaDirect, viaDirect, 0},
		{"gateway 503 before forwarding", gw503, viaDirect, viaDirect, viaDirect, 0},
		{"gateway 500", gw500, viaDirect, uncertain, viaDirect, 0},
		{"gateway 502", gw502, viaDirect, uncertain, viaDirect, 0},
		{"gateway 504", gw504, viaDirect, uncertain, viaDirect, 0},
		{"gateway timeout after send", gwTimeout, viaDirect, uncertain, viaDirect, 0},
		{"gateway drops the connection after send", gwDrop, viaDirect, uncertain, viaDirect, 0},
		{"gateway 404 passes through", gw404, passed, passed, passed, failure.KindNotFound},
		{"gateway 429 passes through", gw429, passed, passed, passed, failure.KindRateLimited},
		{"gateway 422 passes through", gw422, passed, passed, passed, failure.KindPermanent},
	}
	ops := []struct {
		name string
		run  func(p *Route) (string, error)
	}{
		{"get_lead", func(p *Route) (string, error) {
			l, err := p.GetLead(context.Background(), leadID)
			if err == nil && l.ID != leadID {
				return "", errWrongLead
			}
			return "", err
		}},
		{"post_message", func(p *Route) (string, error) { return p.PostMessage(context.Background(), leadID, secret) }},
		{"update_lead", func(p *Route) (string, error) {
			return "", p.UpdateLead(context.Background(), leadID, map[string]any{"x": 1})
		}},
	}
	for _, tc := range cases {
		for _, op := range ops {
			want := map[string]string{"get_lead": tc.get, "post_message": tc.post, "update_lead": tc.patch}[op.name]
			t.Run(tc.name+"/"+op.name, func(t *testing.T) {
				var gwHits, directHits atomic.Int32
				var logs bytes.Buffer
				logger := zerolog.New(&logs)
				reg := prometheus.NewRegistry()
				p, err := NewRoute(directServer(t, &directHits), gatewayServer(t, tc.mode, &gwHits), RouteOptions{Logger: &logger, Registerer: reg})
				if err != nil {
					t.Fatal(err)
				}
				route, err := op.run(p)
				switch want {
				case viaGateway, viaDirect:
					if err != nil {
						t.Fatalf("err = %v, want success %s", err, want)
					}
				case uncertain:
					r, ok := UncertainRoute(err)
					if !errors.Is(err, ErrUncertain) || failure.KindOf(err) != failure.KindUncertain || !ok || r != RouteGateway {
						t.Fatalf("err = %v, want an uncertain post via the gateway", err)
					}
					if !failure.ShouldNack(err) {
						t.Fatal("an uncertain post must not be dead-lettered by the router on its own")
					}
				case passed:
					if failure.KindOf(err) != tc.kind || errors.Is(err, ErrUncertain) {
						t.Fatalf("err = %v, want kind %v", err, tc.kind)
					}
				}
				wantDirect := int32(0)
				if want == viaDirect {
					wantDirect = 1
				}
				if directHits.Load() != wantDirect {
					t.Fatalf("direct hits = %d, want %d", directHits.Load(), wantDirect)
				}
				if tc.mode != gwDown && tc.mode != gwDNS && gwHits.Load() != 1 {
					t.Fatalf("gateway hits = %d, want exactly 1", gwHits.Load())
				}
				if op.name == "post_message" {
					wantRoute := RouteGateway
					if want == viaDirect {
						wantRoute = RouteDirect
					}
					if route != wantRoute {
						t.Fatalf("route = %q, want %q", route, wantRoute)
					}
					n := httpxtest.CounterValue(reg, "leadflow_c2s_uncertain_posts_total", map[string]string{"route": RouteGateway})
					if (n == 1) != (want == uncertain) {
						t.Fatalf("uncertain counter = %v", n)
					}
				}
				n := httpxtest.CounterValue(reg, "leadflow_c2s_gateway_fallback_total", map[string]string{"op": op.name})
				if (n == 1) != (want == viaDirect) {
					t.Fatalf("fallback counter = %v", n)
				}
				if (want == viaDirect) != strings.Contains(logs.String(), "falling back") {
					t.Fatalf("fallback log: %q", logs.String())
				}
				if strings.Contains(logs.String(), "5511987650123") || strings.Contains(logs.String(), "318.604") {
					t.Fatalf("log leaks personal data: %s", logs.String())
				}
			})
		}
	}
}

// TestDirectPostOutcome: a direct create_message whose outcome is unknown is
// uncertain too (c2s/API.md: a timeout, a dropped connection or a 5xx after
// the request was sent), and is sent exactly once.
func TestDirectPostOutcome(t *testing.T) {
	for _, tc := range []struct {
		name string
		mode gwMode
		kind failure.Kind
		hits int32
	}{
		{"500", gw500, failure.KindUncertain, 1},
		{"502", gw502, failure.KindUncertain, 1},
		{"503", gw503, failure.KindUncertain, 1},
		{"504", gw504, failure.KindUncertain, 1},
		{"timeout", gwTimeout, failure.KindUncertain, 1},
		{"drop", gwDrop, failure.KindUncertain, 1},
		{"429", gw429, failure.KindRateLimited, 1},
		{"422", gw422, failure.KindPermanent, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var hits atomic.Int32
			release := make(chan struct{})
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				hits.Add(1)
				misbehave(w, r, tc.mode, release)
			}))
			t.Cleanup(func() { close(release); srv.Close() })
			pol := httpxtest.Policy()
			pol.Timeout = 200 * time.Millisecond
			pol.MaxRetryAfter = time.Second
			c, err := New(Config{BaseURL: srv.URL, Token: "tok", Policy: pol, Options: httpxtest.Options(&httpxtest.Sleeper{}, nil)})
			if err != nil {
				t.Fatal(err)
			}
			p, _ := NewRoute(c, nil, RouteOptions{})
			route, err := p.PostMessage(context.Background(), leadID, "x")
			if route != RouteDirect || failure.KindOf(err) != tc.kind || hits.Load() != tc.hits {
				t.Fatalf("route %s err %v hits %d, want %v after %d send(s)", route, err, hits.Load(), tc.kind, tc.hits)
			}
			if r, ok := UncertainRoute(err); (tc.kind == failure.KindUncertain) != (ok && r == RouteDirect) {
				t.Fatalf("uncertain route = %q, %v", r, ok)
			}
		})
	}
}

var errWrongLead = failure.Permanent("test", nil)

// TestBreakerOpenFallsBack: once the gateway's breaker is open, a post is
// refused without being sent, so it goes direct at once. Reads open it.
func TestBreakerOpenFallsBack(t *testing.T) {
	var gwHits, directHits atomic.Int32
	p, _ := NewRoute(directServer(t, &directHits), gatewayServer(t, gw502, &gwHits), RouteOptions{})
	for i := 0; i < 5; i++ { // breaker opens after 5 failures
		if _, err := p.GetLead(context.Background(), leadID); err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
	}
	for i := 0; i < 3; i++ {
		if route, err := p.PostMessage(context.Background(), leadID, "x"); err != nil || route != RouteDirect {
			t.Fatalf("post %d: %s %v", i, route, err)
		}
	}
	if gwHits.Load() != 5 || directHits.Load() != 8 {
		t.Fatalf("gateway hits %d (breaker must stop at 5), direct %d", gwHits.Load(), directHits.Load())
	}
}

func TestDirectOnly(t *testing.T) {
	var directHits atomic.Int32
	p, err := NewRoute(directServer(t, &directHits), nil, RouteOptions{})
	if err != nil || p.HasGateway() {
		t.Fatal(err)
	}
	route, err := p.PostMessage(context.Background(), leadID, "x")
	if err != nil || route != RouteDirect || directHits.Load() != 1 {
		t.Fatalf("%s %v %d", route, err, directHits.Load())
	}
	if _, err := NewRoute(nil, nil, RouteOptions{}); err == nil {
		t.Fatal("nil direct accepted")
	}
}

func TestCallerCancelDoesNotFallBack(t *testing.T) {
	var gwHits, directHits atomic.Int32
	p, _ := NewRoute(directServer(t, &directHits), gatewayServer(t, gwTimeout, &gwHits), RouteOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.PostMessage(ctx, leadID, "x"); err == nil || directHits.Load() != 0 {
		t.Fatalf("err=%v direct=%d", err, directHits.Load())
	}
}

func BenchmarkPostMessageViaGateway(b *testing.B) {
	var gwHits, directHits atomic.Int32
	p, _ := NewRoute(directServer(b, &directHits), gatewayServer(b, gwOK, &gwHits), RouteOptions{})
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if _, err := p.PostMessage(ctx, leadID, "mensagem"); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "calls/s")
}
