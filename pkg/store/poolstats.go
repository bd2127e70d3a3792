package store

import (
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// PoolCollector exports pgxpool.Stat() at scrape time: connections in use,
// idle and open, and the cumulative time spent waiting for one; and the
// process's Postgres round trips, statements and liveness pings (all its
// pools).
type PoolCollector struct {
	pool                                             *pgxpool.Pool
	acquired, idle, total, wait, trips, stmts, pings *prometheus.Desc
}

// NewPoolCollector reads pool's statistics.
func NewPoolCollector(pool *pgxpool.Pool) *PoolCollector {
	return &PoolCollector{
		pool:     pool,
		acquired: prometheus.NewDesc("leadflow_pgxpool_acquired_conns", "Postgres pool connections in use.", nil, nil),
		idle:     prometheus.NewDesc("leadflow_pgxpool_idle_conns", "Postgres pool connections idle.", nil, nil),
		total:    prometheus.NewDesc("leadflow_pgxpool_total_conns", "Postgres pool connections open.", nil, nil),
		wait: prometheus.NewDesc("leadflow_pgxpool_acquire_wait_seconds_total",
			"Cumulative time spent waiting to acquire a Postgres connection.", nil, nil),
		trips: prometheus.NewDesc("leadflow_postgres_round_trips_total",
			"Round trips to Postgres by this process (a statement, or a batch of them).", nil, nil),
		stmts: prometheus.NewDesc("leadflow_postgres_statements_total",
			"Statements sent to Postgres by this process (each statement of a batch counts).", nil, nil),
		pings: prometheus.NewDesc("leadflow_postgres_pings_total",
			"Liveness pings sent before handing out a connection idle longer than store.PingAfterIdle (each one more round trip, not in leadflow_postgres_round_trips_total).", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *PoolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.acquired
	ch <- c.idle
	ch <- c.total
	ch <- c.wait
	ch <- c.trips
	ch <- c.stmts
	ch <- c.pings
}

// Collect implements prometheus.Collector.
func (c *PoolCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.pool.Stat()
	ch <- prometheus.MustNewConstMetric(c.acquired, prometheus.GaugeValue, float64(st.AcquiredConns()))
	ch <- prometheus.MustNewConstMetric(c.idle, prometheus.GaugeValue, float64(st.IdleConns()))
	ch <- prometheus.MustNewConstMetric(c.total, prometheus.GaugeValue, float64(st.TotalConns()))
	// Only acquisitions that had to wait count (EmptyAcquireWaitTime).
	ch <- prometheus.MustNewConstMetric(c.wait, prometheus.CounterValue, st.EmptyAcquireWaitTime().Seconds())
	ch <- prometheus.MustNewConstMetric(c.trips, prometheus.CounterValue, float64(roundTrips.Load()))
	ch <- prometheus.MustNewConstMetric(c.stmts, prometheus.CounterValue, float64(statements.Load()))
	ch <- prometheus.MustNewConstMetric(c.pings, prometheus.CounterValue, float64(pings.Load()))
}
