package store

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/leadflow/leadflow/pkg/testinfra"
)

// The collector counts a query as one round trip and one statement, and a
// batch as one round trip carrying each of its statements.
func TestPoolCollectorCountsRoundTripsAndStatements(t *testing.T) {
	ctx := context.Background()
	pool, err := Open(ctx, testinfra.NewDatabase(t), 2, false)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewPoolCollector(pool))
	read := func() (trips, stmts float64) {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			switch mf.GetName() {
			case "leadflow_postgres_round_trips_total":
				trips = mf.GetMetric()[0].GetCounter().GetValue()
			case "leadflow_postgres_statements_total":
				stmts = mf.GetMetric()[0].GetCounter().GetValue()
			}
		}
		return trips, stmts
	}
	t0, s0 := read()
	var one int
	if err := pool.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		t.Fatal(err)
	}
	b := &pgx.Batch{}
	b.Queue("SELECT 1")
	b.Queue("SELECT 2")
	b.Queue("SELECT 3")
	if err := pool.SendBatch(ctx, b).Close(); err != nil {
		t.Fatal(err)
	}
	t1, s1 := read()
	// Other goroutines of this test binary do not use Postgres meanwhile.
	if t1-t0 != 2 || s1-s0 != 4 {
		t.Fatalf("round trips +%v, statements +%v; want +2 and +4", t1-t0, s1-s0)
	}
}

// A pool pings a connection on its way out only after it sat idle longer
// than PingAfterIdle (pgxpool's own default, one second, cost every lead
// after a quiet second a round trip per stage), and counts each ping.
func TestPoolPingsOnlyLongIdleConnections(t *testing.T) {
	ctx := context.Background()
	pool, err := Open(ctx, testinfra.NewDatabase(t), 1, false)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	should := pool.Config().ShouldPing
	if should == nil {
		t.Fatal("Open left pgxpool's default ShouldPing (ping after 1 s idle)")
	}
	before := pings.Load()
	for _, idle := range []time.Duration{0, 2 * time.Second, 30 * time.Second, PingAfterIdle} {
		if should(ctx, pgxpool.ShouldPingParams{IdleDuration: idle}) {
			t.Errorf("a connection idle for %v is pinged; want no ping up to %v", idle, PingAfterIdle)
		}
	}
	if !should(ctx, pgxpool.ShouldPingParams{IdleDuration: PingAfterIdle + time.Second}) {
		t.Errorf("a connection idle for longer than %v is not pinged", PingAfterIdle)
	}
	if n := pings.Load() - before; n != 1 {
		t.Errorf("pings counted %d, want 1", n)
	}
}
