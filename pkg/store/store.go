// Package store opens the Postgres pool and applies the product's
// migrations (pressly/goose, embedded in every binary) under an advisory
// lock, so services starting together migrate once.
package store

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/leadflow/leadflow/pkg/contracts"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrationLockID is the advisory lock key held while migrating
// (hashtext('leadflow.migrations')).
const migrationLockID int64 = 0x1eadf10e

// PingAfterIdle is how long a connection may sit idle in the pool before it
// is pinged (one extra round trip) on its way out. pgxpool's default pings
// after one second, so every lead after a quiet second paid a ping in every
// stage, and the first webhook after a start paid one on top of its work.
// Connections die while idle mostly at the hands of proxies and NAT tables,
// whose idle timeouts are minutes; the pool closes connections idle for 5
// minutes anyway. A connection that died sooner (a Postgres restart) fails
// its statement, which is a transient error: the stage's one retry layer
// (or C2S's retry of the webhook) runs it again on a new connection.
const PingAfterIdle = time.Minute

// pings counts the liveness pings (leadflow_postgres_pings_total).
var pings atomic.Int64

// shouldPing is the pools' pgxpool.Config.ShouldPing.
func shouldPing(_ context.Context, p pgxpool.ShouldPingParams) bool {
	if p.IdleDuration <= PingAfterIdle {
		return false
	}
	pings.Add(1)
	return true
}

// Session is how a pool's sessions run.
type Session struct {
	// AppName is the sessions' application_name (pg_stat_activity, the
	// server's log lines), unless the URL sets one: the service, so
	// operators and the bench can tell whose backends do what.
	AppName string
	// AsyncCommit sets synchronous_commit=off: only for writes that a retry
	// always redoes.
	AsyncCommit bool
	// GenericPlans sets plan_cache_mode=force_generic_plan: each prepared
	// statement is planned once per connection, instead of five times
	// (Postgres's custom plans) before its generic plan is tried, and once
	// again after every ANALYZE of a table it reads. For a pool that runs
	// only the pipeline's fixed key look-ups and writes, whose plans do not
	// depend on the values; not for the console's filters.
	GenericPlans bool
}

// Open connects a pool and checks the server answers.
// asyncCommit sets synchronous_commit=off on every session. A warmup, when
// given, warms every connection the pool opens before it is handed out.
func Open(ctx context.Context, url string, maxConns int32, asyncCommit bool, warmup ...*Warmup) (*pgxpool.Pool, error) {
	return OpenWith(ctx, url, maxConns, Session{AsyncCommit: asyncCommit}, warmup...)
}

// OpenWith is Open with the session's settings.
func OpenWith(ctx context.Context, url string, maxConns int32, session Session, warmup ...*Warmup) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse DATABASE_URL: %w", err)
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	cfg.MaxConnIdleTime = 5 * time.Minute
	cfg.ConnConfig.Tracer = queryTracer{} // spans inside a trace (tracing.go)
	// A couple of connections stay open through quiet periods, so the
	// first request after one does not wait for a new connection.
	cfg.MinConns = min(cfg.MaxConns, 2)
	cfg.ShouldPing = shouldPing
	// Every implicit transaction reads each statement's own snapshot,
	// whatever the server's default: a write that takes an advisory lock
	// and then reads (coredb's, grouped or not) must see what the lock's
	// previous holder committed.
	cfg.ConnConfig.RuntimeParams["default_transaction_isolation"] = "read committed"
	if _, set := cfg.ConnConfig.RuntimeParams["application_name"]; !set && session.AppName != "" {
		cfg.ConnConfig.RuntimeParams["application_name"] = session.AppName
	}
	if session.AsyncCommit {
		cfg.ConnConfig.RuntimeParams["synchronous_commit"] = "off"
	}
	if session.GenericPlans {
		cfg.ConnConfig.RuntimeParams["plan_cache_mode"] = "force_generic_plan"
	}
	if len(warmup) > 0 && warmup[0] != nil {
		cfg.AfterConnect = warmup[0].afterConnect
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres unreachable: %w", err)
	}
	return pool, nil
}

// coreSchema applies ../shared/contracts/db/schema.sql verbatim: every
// statement in it is IF NOT EXISTS, so production tables are left as they are.
func coreSchema(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, string(contracts.Read("db/schema.sql")))
	return err
}

// Migrate applies every pending migration. It is idempotent and safe when
// several processes start at once (a Postgres session advisory lock).
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(migrationLockID))
	if err != nil {
		return err
	}
	sqlFS, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return err
	}
	provider, err := goose.NewProvider(goose.DialectPostgres, db, sqlFS,
		goose.WithSessionLocker(locker),
		goose.WithGoMigrations(goose.NewGoMigration(1, &goose.GoFunc{RunTx: coreSchema}, nil)),
		goose.WithTableName("pipeline_goose_version"),
		// Migrations written on parallel branches may land with a lower
		// number than one already applied; each is still applied once.
		goose.WithAllowOutofOrder(true),
	)
	if err != nil {
		return err
	}
	if _, err := provider.Up(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}
