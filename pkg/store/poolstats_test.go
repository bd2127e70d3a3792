package store

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
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
