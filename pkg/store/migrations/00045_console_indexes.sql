-- +goose NO TRANSACTION
-- +goose Up
-- The operator's console counts stage outcomes of the last hour and day and
-- lists the latest runs every few seconds; without these it would scan the
-- whole trace (30 days of it). CONCURRENTLY: live writes are not blocked
-- while a large table is indexed.
CREATE INDEX CONCURRENTLY IF NOT EXISTS lead_stages_at ON pipeline.lead_stages (at);
CREATE INDEX CONCURRENTLY IF NOT EXISTS lead_runs_started ON pipeline.lead_runs (started_at DESC);

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS pipeline.lead_runs_started;
DROP INDEX CONCURRENTLY IF EXISTS pipeline.lead_stages_at;
