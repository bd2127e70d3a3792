// Package budget is a rate budget shared by every process and replica that
// spends one upstream credential. An upstream such as C2S counts requests
// per token, not per process: ingest, resolver and notifier (and their
// replicas) therefore draw from one budget, kept in Postgres
// (pipeline.rate_budgets, one row per budget).
//
// The algorithm is GCRA (generic cell rate algorithm) with queueing. With
// emission interval T = 1/rate and tolerance τ = (burst-1)·T, the row keeps
// one timestamp, the theoretical arrival time (tat). A reservation is one
// UPDATE that moves tat to greatest(tat, now) + T and returns
// allowed_at = new tat - T - τ together with the database clock; the caller
// sleeps allowed_at - db_now and then sends. Every waiting caller holds its
// own slot, and consecutive slots are at least T apart, so all processes
// together never send more than rate·t + burst requests in any window of
// length t. All arithmetic runs on the database clock: application clock
// skew does not matter.
//
// Penalize (after an upstream 429 with Retry-After d) moves tat so that no
// new slot starts before now + d, and records the pause: a caller that
// reserved earlier and wakes inside the pause gives up its slot and
// reserves again behind it, so every process backs off.
package budget

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/leadflow/leadflow/pkg/backbone/failure"
	"github.com/leadflow/leadflow/pkg/store"
)

// MaxPenalty caps one Penalize: a broken Retry-After must not stop an
// upstream for days.
const MaxPenalty = time.Hour

// ErrBeyondDeadline is wrapped (as failure.KindRateLimited, with the wait as
// RetryAfter) when the caller's deadline comes before the next free slot.
// No slot is taken.
var ErrBeyondDeadline = errors.New("rate budget: next slot is after the deadline")

// Config describes one budget.
type Config struct {
	// Upstream names the upstream ("c2s", "workapi", "diretrix"). It
	// prefixes the budget's name and is the metrics label.
	Upstream string
	// Credential is what the upstream counts requests against (a token, an
	// account). Only the first 12 hex digits of its SHA-256 are kept.
	Credential string
	// Rate is the sustained rate in requests per second (> 0).
	Rate float64
	// Burst is how many requests may go back to back after a quiet period
	// (>= 1).
	Burst int
	// Registerer receives the metrics; nil = unregistered. Registering the
	// same metrics twice reuses the existing collectors.
	Registerer prometheus.Registerer
}

// Budget is one process's handle on a shared budget. It is safe for
// concurrent use; any number of handles (in any number of processes) may
// share a name.
type Budget struct {
	pool      *pgxpool.Pool
	name      string
	upstream  string
	emission  int64 // T, microseconds
	tolerance int64 // τ, microseconds
	ready     atomic.Bool
	waited    prometheus.Observer
	throttled prometheus.Counter

	// onReserved, when set (tests), runs after each reservation and before
	// the wait.
	onReserved func(Reservation)
}

// Name is the budget name for an upstream credential: upstream + ":" + the
// first 12 hex digits of SHA-256(credential). It never contains the
// credential; an operator can recompute it with
// `printf %s "$TOKEN" | sha256sum | cut -c1-12`.
func Name(upstream, credential string) string {
	sum := sha256.Sum256([]byte(credential))
	return upstream + ":" + hex.EncodeToString(sum[:])[:12]
}

// New returns a handle on the budget for c. The row is created on first use.
func New(pool *pgxpool.Pool, c Config) (*Budget, error) {
	switch {
	case pool == nil:
		return nil, errors.New("budget: a pool is required")
	case c.Upstream == "" || strings.ContainsAny(c.Upstream, ": "):
		return nil, errors.New("budget: upstream must be a plain name")
	case c.Credential == "":
		return nil, errors.New("budget: credential is required")
	case !(c.Rate > 0) || math.IsInf(c.Rate, 0):
		return nil, errors.New("budget: rate must be positive")
	case c.Burst < 1:
		return nil, errors.New("budget: burst must be at least 1")
	}
	t := int64(math.Round(1e6 / c.Rate))
	if t < 1 {
		t = 1
	}
	m := metricsFor(c.Registerer)
	// The series exist from the start, so dashboards and alerts see zero.
	m.wait.WithLabelValues(c.Upstream)
	m.throttled.WithLabelValues(c.Upstream)
	return &Budget{
		pool:      pool,
		name:      Name(c.Upstream, c.Credential),
		upstream:  c.Upstream,
		emission:  t,
		tolerance: int64(c.Burst-1) * t,
		waited:    m.wait.WithLabelValues(c.Upstream),
		throttled: m.throttled.WithLabelValues(c.Upstream),
	}, nil
}

// Name is the budget's row name (upstream and credential hash).
func (b *Budget) Name() string { return b.name }

// Upstream is the budget's upstream, its metrics label.
func (b *Budget) Upstream() string { return b.upstream }

// Interval is the emission interval T (1/rate), in whole microseconds.
func (b *Budget) Interval() time.Duration { return time.Duration(b.emission) * time.Microsecond }

// Reservation is one slot, on the database clock.
type Reservation struct {
	AllowedAt time.Time // earliest time the request may be sent
	DBNow     time.Time // database clock when the slot was reserved
	tat       time.Time // the budget's tat right after this reservation
}

// Delay is how long the holder must wait before sending.
func (r Reservation) Delay() time.Duration { return max(r.AllowedAt.Sub(r.DBNow), 0) }

// Slot is when the holder may send: the later of AllowedAt and DBNow.
func (r Reservation) Slot() time.Time {
	if r.AllowedAt.After(r.DBNow) {
		return r.AllowedAt
	}
	return r.DBNow
}

// Wait returns when one request may be sent. It takes a slot, sleeps until
// the slot (measured on the database clock) and returns nil. It returns
// ctx's error when ctx ends first (giving the slot back when nobody has
// reserved behind it). When ctx has a deadline before the next free slot it
// takes no slot and returns a failure.KindRateLimited error wrapping
// ErrBeyondDeadline, with the wait it would have needed as RetryAfter.
// Without a deadline it waits as long as the budget asks. A database error
// is returned as is (the caller does not send).
func (b *Budget) Wait(ctx context.Context) error {
	_, err := b.acquire(ctx)
	return err
}

// acquire is Wait returning the slot it was admitted at.
func (b *Budget) acquire(ctx context.Context) (Reservation, error) {
	start := time.Now()
	for {
		if err := ctx.Err(); err != nil {
			return Reservation{}, err
		}
		maxWait := time.Duration(-1)
		if dl, ok := ctx.Deadline(); ok {
			maxWait = max(time.Until(dl), 0)
		}
		r, err := b.reserve(ctx, maxWait)
		if err != nil {
			return r, err
		}
		if b.onReserved != nil {
			b.onReserved(r)
		}
		d := r.Delay()
		if d <= 0 {
			b.waited.Observe(time.Since(start).Seconds())
			return r, nil
		}
		if err := sleep(ctx, d); err != nil {
			b.giveBack(ctx, r)
			b.waited.Observe(time.Since(start).Seconds())
			return r, err
		}
		// A 429 may have paused the budget while we slept. A slot inside the
		// pause is void: reserve again, behind the pause.
		void, err := b.voided(ctx, r)
		if err != nil {
			return r, err
		}
		if !void {
			b.waited.Observe(time.Since(start).Seconds())
			return r, nil
		}
	}
}

const (
	// $2 = T, $3 = τ, $4 = the longest acceptable wait (-1 = any), all in
	// microseconds. The returned database clock is capped at new tat - T
	// (the greatest(tat, now) the slot was computed from), so that slots are
	// exact even though clock_timestamp() is read more than once.
	reserveSQL = `
UPDATE pipeline.rate_budgets
   SET tat = greatest(tat, clock_timestamp()) + $2::bigint * interval '1 microsecond'
 WHERE name = $1
   AND ($4::bigint < 0
        OR greatest(tat, clock_timestamp()) - $3::bigint * interval '1 microsecond'
           <= clock_timestamp() + $4::bigint * interval '1 microsecond')
RETURNING tat,
          tat - ($2::bigint + $3::bigint) * interval '1 microsecond',
          least(clock_timestamp(), tat - $2::bigint * interval '1 microsecond')`

	probeSQL = `
SELECT greatest(tat, clock_timestamp()) - $2::bigint * interval '1 microsecond', clock_timestamp()
  FROM pipeline.rate_budgets WHERE name = $1`

	ensureSQL = `INSERT INTO pipeline.rate_budgets (name) VALUES ($1) ON CONFLICT (name) DO NOTHING`

	// $2 = d, $3 = τ. After it, greatest(tat, now) - τ >= blocked_until.
	penalizeSQL = `
UPDATE pipeline.rate_budgets b
   SET blocked_until = greatest(b.blocked_until, p.until),
       tat = greatest(b.tat, p.until + $3::bigint * interval '1 microsecond')
  FROM (SELECT clock_timestamp() + $2::bigint * interval '1 microsecond' AS until) p
 WHERE b.name = $1`

	voidedSQL = `SELECT blocked_until > $2 FROM pipeline.rate_budgets WHERE name = $1`

	// Only the last slot can be handed back, and never into a pause.
	giveBackSQL = `
UPDATE pipeline.rate_budgets
   SET tat = tat - $3::bigint * interval '1 microsecond'
 WHERE name = $1 AND tat = $2
   AND tat - $3::bigint * interval '1 microsecond' >= blocked_until + $4::bigint * interval '1 microsecond'`
)

// reserve takes one slot in one statement, unless the slot would come more
// than maxWait (>= 0) from now.
func (b *Budget) reserve(ctx context.Context, maxWait time.Duration) (Reservation, error) {
	limit := int64(-1)
	if maxWait >= 0 {
		limit = maxWait.Microseconds()
	}
	for try := 0; ; try++ {
		if err := b.ensure(ctx); err != nil {
			return Reservation{}, err
		}
		var r Reservation
		err := b.pool.QueryRow(ctx, reserveSQL, b.name, b.emission, b.tolerance, limit).Scan(&r.tat, &r.AllowedAt, &r.DBNow)
		if err == nil {
			return r, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return Reservation{}, b.dbError("reserve", err)
		}
		if try >= 3 {
			return Reservation{}, fmt.Errorf("rate budget %s: reserve: no row after %d tries", b.upstream, try+1)
		}
		// Refused for the deadline, or the row is gone (deleted by hand).
		var next, now time.Time
		err = b.pool.QueryRow(ctx, probeSQL, b.name, b.tolerance).Scan(&next, &now)
		if errors.Is(err, pgx.ErrNoRows) {
			b.ready.Store(false)
			continue
		}
		if err != nil {
			return Reservation{}, b.dbError("probe", err)
		}
		wait := next.Sub(now)
		if maxWait < 0 || wait <= maxWait {
			continue // the slot freed up in between: reserve again
		}
		return Reservation{}, failure.RateLimited("rate budget "+b.upstream, wait, ErrBeyondDeadline)
	}
}

func (b *Budget) ensure(ctx context.Context) error {
	if b.ready.Load() {
		return nil
	}
	if _, err := b.pool.Exec(ctx, ensureSQL, b.name); err != nil {
		return b.dbError("create", err)
	}
	b.ready.Store(true)
	return nil
}

// Penalize stops every holder of the budget from sending for d (capped at
// MaxPenalty): no slot starts before now + d on the database clock, and
// slots reserved earlier that fall inside the pause are reserved again. It
// counts one throttle in leadflow_rate_budget_throttled_total. d <= 0 does
// nothing.
func (b *Budget) Penalize(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	d = min(d, MaxPenalty)
	for try := 0; try < 2; try++ {
		if err := b.ensure(ctx); err != nil {
			return err
		}
		tag, err := b.pool.Exec(ctx, penalizeSQL, b.name, d.Microseconds(), b.tolerance)
		if err != nil {
			return b.dbError("penalize", err)
		}
		if tag.RowsAffected() == 1 {
			b.throttled.Inc()
			return nil
		}
		b.ready.Store(false)
	}
	return fmt.Errorf("rate budget %s: penalize: row missing", b.upstream)
}

// voided reports whether r's slot fell inside a pause recorded after r was
// reserved (a slot reserved after a pause never starts inside it).
func (b *Budget) voided(ctx context.Context, r Reservation) (bool, error) {
	var void bool
	err := b.pool.QueryRow(ctx, voidedSQL, b.name, r.AllowedAt).Scan(&void)
	if errors.Is(err, pgx.ErrNoRows) {
		b.ready.Store(false)
		return false, nil
	}
	if err != nil {
		return false, b.dbError("check pause", err)
	}
	return void, nil
}

// giveBack returns an abandoned slot when it is still the last one, so a
// cancelled wait does not cost the others. Best effort.
func (b *Budget) giveBack(ctx context.Context, r Reservation) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	_, _ = b.pool.Exec(ctx, giveBackSQL, b.name, r.tat, b.emission, b.tolerance)
}

// dbError classifies a failed statement (pkg/store.Classify: server text
// redacted); the op names the budget's upstream, never its credential.
func (b *Budget) dbError(step string, err error) error {
	return store.Classify("rate budget "+b.upstream+": "+step, err)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

type metrics struct {
	wait      *prometheus.HistogramVec
	throttled *prometheus.CounterVec
}

func metricsFor(reg prometheus.Registerer) metrics {
	return metrics{
		wait: register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "leadflow_rate_budget_wait_seconds",
			Help:    "Time callers waited for a slot of a shared upstream rate budget (label: upstream).",
			Buckets: []float64{0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800},
		}, []string{"budget"})),
		throttled: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "leadflow_rate_budget_throttled_total",
			Help: "Upstream 429 answers that paused a shared rate budget (label: upstream).",
		}, []string{"budget"})),
	}
}

// register registers c on reg, or returns the collector already registered
// with the same description. It never panics; reg may be nil.
func register[T prometheus.Collector](reg prometheus.Registerer, c T) T {
	if reg == nil {
		return c
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(T); ok {
				return existing
			}
		}
	}
	return c
}
