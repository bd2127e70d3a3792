package clients

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/leadflow/leadflow/pkg/backbone/failure"
	"github.com/leadflow/leadflow/pkg/clients/httpx"
	"github.com/leadflow/leadflow/pkg/config"
	"github.com/leadflow/leadflow/pkg/contracts"
	"github.com/leadflow/leadflow/pkg/store"
	"github.com/leadflow/leadflow/pkg/store/budget"
	"github.com/leadflow/leadflow/pkg/testinfra"
)

const (
	c2sToken  = "c2s-secret-token-123"
	workToken = "work-secret-token-456"
	leadID    = "5f2c9a7e41b8d3c6a0e1f4b27d9c8e10"
)

func migratedPool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	ctx := context.Background()
	pool, err := store.Open(ctx, testinfra.NewDatabase(t), 4, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := store.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	return pool
}

// leadServer answers every request with the contract lead and counts hits.
func leadServer(t *testing.T, hits *atomic.Int32) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(contracts.Read("c2s/lead.json"))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func loader(env map[string]string) *config.Loader {
	base := map[string]string{
		"C2S_TOKEN": c2sToken, "WORK_API_KEY": workToken,
		"DIRETRIX_BASE_URL": "http://127.0.0.1:1", "DIRETRIX_USER": "dx-user", "DIRETRIX_PASS": "dx-pass",
	}
	for k, v := range env {
		base[k] = v
	}
	return config.FromMap(base)
}

// The gateway spends the C2S token too: a call through the gateway uses up
// the slot a direct call (in another process) would have had.
func TestC2SGatewayAndDirectShareOneBudget(t *testing.T) {
	pool := migratedPool(t)
	var gwHits, directHits atomic.Int32
	gw, direct := leadServer(t, &gwHits), leadServer(t, &directHits)
	l := loader(map[string]string{
		"C2S_BASE_URL": direct.URL, "C2S_GATEWAY_URL": gw.URL,
		"C2S_RATE": "0.001", "C2S_BURST": "1", // one call, then 1000 s
		"C2S_GATEWAY_RATE": "100", "C2S_GATEWAY_BURST": "100", // only without a shared budget
	})
	cfg := LoadC2S(l)
	if err := l.Err(); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	port, err := cfg.Port(reg, nil, WithPool(pool))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := port.GetLead(context.Background(), leadID); err != nil {
		t.Fatal(err)
	}
	// "Another process": its own client, same token, same database.
	dc, err := cfg.DirectClient(prometheus.NewRegistry(), nil, WithPool(pool))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err = dc.GetLead(ctx, leadID)
	if !failure.Is(err, failure.KindRateLimited) || !errors.Is(err, httpx.ErrLocalRate) || failure.RetryAfterOf(err) < 900*time.Second {
		t.Fatalf("direct call after the gateway call: %v; want held back by the shared budget", err)
	}
	if gwHits.Load() != 1 || directHits.Load() != 0 {
		t.Fatalf("gateway hits %d, direct hits %d; want 1 and 0", gwHits.Load(), directHits.Load())
	}
	rows, err := pool.Query(context.Background(), "SELECT name FROM pipeline.rate_budgets")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		names = append(names, n)
	}
	if len(names) != 1 || names[0] != budget.Name(BudgetC2S, c2sToken) || strings.Contains(names[0], c2sToken) {
		t.Fatalf("budget rows %q, want one %q", names, budget.Name(BudgetC2S, c2sToken))
	}
}

func TestBuildersPickTheCredentialsBudget(t *testing.T) {
	pool := migratedPool(t)
	l := loader(nil)
	c2sCfg, work, dir := LoadC2S(l), LoadWorkAPI(l), LoadDiretrix(l)
	if err := l.Err(); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	dc, err := c2sCfg.DirectClient(reg, nil, WithPool(pool))
	if err != nil {
		t.Fatal(err)
	}
	wc, err := work.Client(reg, nil, WithPool(pool))
	if err != nil {
		t.Fatal(err)
	}
	xc, err := dir.Client(reg, nil, WithPool(pool))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		caller       *httpx.Caller
		name, secret string
	}{
		{dc.Caller(), budget.Name("c2s", c2sToken), c2sToken},
		{wc.Caller(), budget.Name("workapi", workToken), workToken},
		{xc.Caller(), budget.Name("diretrix", "dx-user"), "dx-pass"},
	} {
		b, ok := tc.caller.Limiter().(*budget.Budget)
		if !ok {
			t.Fatalf("%s: limiter %T, want the shared budget", tc.caller.Name(), tc.caller.Limiter())
		}
		if b.Name() != tc.name || strings.Contains(b.Name(), tc.secret) {
			t.Fatalf("%s: budget %q, want %q", tc.caller.Name(), b.Name(), tc.name)
		}
	}
	// Defaults: 10/min for C2S, 0.5/s for the Work API.
	if got := dc.Caller().Limiter().(*budget.Budget).Interval(); got != 6*time.Second {
		t.Fatalf("C2S interval %s, want 6s (10/min)", got)
	}
	if got := wc.Caller().Limiter().(*budget.Budget).Interval(); got != 2*time.Second {
		t.Fatalf("Work API interval %s, want 2s", got)
	}
}

func TestNoSharedBudgetWithoutPoolOrWithRateZero(t *testing.T) {
	l := loader(map[string]string{"WORK_API_RATE": "0"})
	c2sCfg, work := LoadC2S(l), LoadWorkAPI(l)
	if err := l.Err(); err != nil {
		t.Fatal(err)
	}
	dc, err := c2sCfg.DirectClient(nil, nil) // no pool: process-local limiter
	if err != nil {
		t.Fatal(err)
	}
	if dc.Caller().Limiter() != nil {
		t.Fatal("shared budget without a pool")
	}
	// A pool that is never dialled: rate 0 must not even build a budget.
	pool, err := pgxpool.New(context.Background(), "postgres://nobody@127.0.0.1:1/none")
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	wc, err := work.Client(nil, nil, WithPool(pool))
	if err != nil {
		t.Fatal(err)
	}
	if wc.Caller().Limiter() != nil {
		t.Fatal("WORK_API_RATE=0 still built a shared budget")
	}
}

func TestNegativeRateRefused(t *testing.T) {
	l := loader(map[string]string{"C2S_RATE": "-1"})
	LoadC2S(l)
	if err := l.Err(); err == nil || !strings.Contains(err.Error(), "C2S_RATE") {
		t.Fatalf("err = %v, want C2S_RATE refused", err)
	}
}
