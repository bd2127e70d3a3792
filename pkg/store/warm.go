package store

import (
	"context"
	"errors"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// WarmLead is the lead id of warm-up rows, which are always rolled back.
// C2S lead ids are hexadecimal, so it is never a real lead's.
const WarmLead = "leadflow-warm-up"

// WarmCPF is the CPF of warm-up rows (000.000.001-91, valid check digits,
// the usual test number). A real row with it is at most locked for the
// length of a warm-up transaction, never changed.
const WarmCPF = "00000000191"

// Batcher is a DB that also sends batches: a pool or a transaction.
type Batcher interface {
	DB
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// Warmer runs a package's hot statements inside tx, which the caller rolls
// back. Each package that owns statements offers one, built on the same SQL
// and the same Go argument types as its real path, so the two cannot drift.
type Warmer func(ctx context.Context, tx pgx.Tx) error

// Warmup warms every new connection of a pool before the pool hands it
// out (Open's AfterConnect): at start-up, and whenever the pool opens one
// later (after an idle close, a connection's end of life, a burst).
//
// Opening a connection is not enough for the first work on it to run as
// fast as the rest, and neither is preparing its statements: a backend's
// first execution of a statement also loads the catalog entries of its
// tables, indexes and constraints, plans it and sets up the executor, and
// pgx builds its encoding plans per connection. A cold connection pays that
// while a lead waits, and on a small machine its neighbours wait too.
type Warmup struct {
	mu      sync.RWMutex
	warmers []Warmer
}

// Add registers warmers; connections opened from now on run them.
func (w *Warmup) Add(warmers ...Warmer) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.warmers = append(w.warmers, warmers...)
}

func (w *Warmup) list() []Warmer {
	if w == nil {
		return nil
	}
	w.mu.RLock()
	defer w.mu.RUnlock()
	return w.warmers
}

// warmedKey marks, in a connection's custom data, that it ran the warmers.
const warmedKey = "leadflow.warmed"

// afterConnect is the pool's AfterConnect. A warmer's error is not the
// connection's: it is rolled back and the connection is used cold (Warm
// reports such errors at start-up). Only a connection left unusable is
// refused.
func (w *Warmup) afterConnect(ctx context.Context, conn *pgx.Conn) error {
	warmers := w.list()
	if len(warmers) == 0 {
		return nil
	}
	_, err := run(ctx, conn, warmers)
	return err
}

// run runs warmers on conn in a transaction it rolls back, then releases
// every session advisory lock (a warmer's survive the rollback; a new
// connection holds no other). It returns the warmers' error, and err when
// the connection cannot be used after.
func run(ctx context.Context, conn *pgx.Conn, warmers []Warmer) (warmErr, err error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err, err
	}
	for _, w := range warmers {
		if warmErr = w(ctx, tx); warmErr != nil {
			break
		}
	}
	if err = tx.Rollback(ctx); err != nil {
		return errors.Join(warmErr, err), err
	}
	if _, err = conn.Exec(ctx, `SELECT pg_advisory_unlock_all()`); err != nil {
		return errors.Join(warmErr, err), err
	}
	conn.PgConn().CustomData()[warmedKey] = true
	return warmErr, nil
}

// Warm opens n of pool's connections now, rather than on the first
// requests (n is capped at the pool's size), and makes sure each ran
// warmup's warmers, including connections the pool opened before they were
// registered (migrations, the pool's minimum). Services call it before they
// report ready. A warmer's error fails the start-up: a statement that
// cannot run here would fail on the first lead too.
func Warm(ctx context.Context, pool *pgxpool.Pool, n int, warmup *Warmup) error {
	n = min(n, int(pool.Config().MaxConns))
	conns := make([]*pgxpool.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Release()
		}
	}()
	for range n { // n distinct connections: each backend warms its own caches
		c, err := pool.Acquire(ctx)
		if err != nil {
			return err
		}
		conns = append(conns, c)
	}
	warmers := warmup.list()
	if len(warmers) == 0 {
		return nil
	}
	for _, c := range conns {
		if c.Conn().PgConn().CustomData()[warmedKey] == true {
			continue
		}
		if warmErr, err := run(ctx, c.Conn(), warmers); warmErr != nil {
			if err != nil {
				// Unusable (a lock or an aborted transaction may remain):
				// not given back to the pool.
				_ = c.Conn().Close(context.WithoutCancel(ctx))
			}
			return Classify("warm-up", warmErr)
		}
	}
	return nil
}
