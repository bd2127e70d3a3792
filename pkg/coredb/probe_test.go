package coredb

import (
	"context"
	"testing"
	"time"
)

func TestProbeTiming(t *testing.T) {
	pool := newCoreDB(t)
	w := newTestWriter(pool)
	ctx := context.Background()
	persons := benchPersons(&testing.B{}, 2000)
	st := time.Now()
	for i := 0; i < 2000; i++ {
		w.WritePerson(ctx, persons[i], "x")
		if i%200 == 199 {
			t.Logf("%d: %v/op", i, time.Since(st)/200)
			st = time.Now()
		}
	}
	rows, _ := pool.Query(ctx, "select relname, n_live_tup, last_autoanalyze from pg_stat_user_tables")
	for rows.Next() {
		var a string
		var n int64
		var ts *time.Time
		rows.Scan(&a, &n, &ts)
		t.Log(a, n, ts)
	}
}
