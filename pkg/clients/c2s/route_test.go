package c2s

import (
	"bytes"
	"context"
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
	gwTimeout
	gwDown
	gw404
	gw429
	gw422
)

func gatewayServer(t testing.TB, mode gwMode, hits *atomic.Int32) *Gateway {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		switch mode {
		case gwOK:
			if r.Method == "GET" {
				_, _ = w.Write(contracts.Read("c2s/lead.json"))
				return
			}
			w.WriteHeader(201)
		case gw500:
			w.WriteHeader(500)
		case gw502:
			w.WriteHeader(502)
			_, _ = w.Write([]byte(`{"detail":"C2S error"}`))
		case gwTimeout:
			select {
			case <-r.Context().Done():
			case <-release:
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
		}
	}))
	t.Cleanup(func() { close(release); srv.Close() })
	url := srv.URL
	if mode == gwDown {
		srv.Close()
	}
	p := httpxtest.Policy()
	p.MaxRetries = 0
	p.MaxRetryAfter = time.Second // 429s are handed back, not slept
	if mode == gwTimeout {
		p.Timeout = 30 * time.Millisecond
	}
	g, err := NewGateway(GatewayConfig{BaseURL: url, Policy: p, Options: httpxtest.Options(&httpxtest.Sleeper{}, nil)})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestRouting(t *testing.T) {
	cases := []struct {
		name     string
		mode     gwMode
		fallback bool
		kind     failure.Kind // when no fallback and an error is expected
		ok       bool
	}{
		{"gateway ok", gwOK, false, 0, true},
		{"gateway 500 falls back", gw500, true, 0, true},
		{"gateway 502 falls back", gw502, true, 0, true},
		{"gateway timeout falls back", gwTimeout, true, 0, true},
		{"gateway down falls back", gwDown, true, 0, true},
		{"gateway 404 passes through", gw404, false, failure.KindNotFound, false},
		{"gateway 429 passes through", gw429, false, failure.KindRateLimited, false},
		{"gateway 422 passes through", gw422, false, failure.KindPermanent, false},
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
				if tc.ok != (err == nil) || (!tc.ok && failure.KindOf(err) != tc.kind) {
					t.Fatalf("err = %v, want ok=%v kind=%v", err, tc.ok, tc.kind)
				}
				wantDirect := int32(0)
				wantRoute := RouteGateway
				if tc.fallback {
					wantDirect, wantRoute = 1, RouteDirect
				}
				if directHits.Load() != wantDirect {
					t.Fatalf("direct hits = %d, want %d", directHits.Load(), wantDirect)
				}
				if tc.mode != gwDown && gwHits.Load() != 1 {
					t.Fatalf("gateway hits = %d", gwHits.Load())
				}
				if op.name == "post_message" && route != wantRoute {
					t.Fatalf("route = %q, want %q", route, wantRoute)
				}
				n := httpxtest.CounterValue(reg, "leadflow_c2s_gateway_fallback_total", map[string]string{"op": op.name})
				if (n == 1) != tc.fallback {
					t.Fatalf("fallback counter = %v", n)
				}
				if tc.fallback != strings.Contains(logs.String(), "falling back") {
					t.Fatalf("fallback log: %q", logs.String())
				}
				if strings.Contains(logs.String(), "5511987650123") || strings.Contains(logs.String(), "318.604") {
					t.Fatalf("log leaks personal data: %s", logs.String())
				}
			})
		}
	}
}

var errWrongLead = failure.Permanent("test", nil)

func TestBreakerOpenFallsBack(t *testing.T) {
	var gwHits, directHits atomic.Int32
	p, _ := NewRoute(directServer(t, &directHits), gatewayServer(t, gw502, &gwHits), RouteOptions{})
	for i := 0; i < 8; i++ { // breaker opens after 5 failures
		if route, err := p.PostMessage(context.Background(), leadID, "x"); err != nil || route != RouteDirect {
			t.Fatalf("call %d: %s %v", i, route, err)
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
