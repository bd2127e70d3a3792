-- +goose Up
-- These jsonb columns hold raw documents that no query compares, sorts or
-- searches (the trace's detail, a stage's decided event, a webhook as
-- received, a paid Work API answer, a replay's selector). ANALYZE still
-- sampled and sorted them for statistics nobody reads: about 0.3x of an
-- ANALYZE of the whole database after a load (docs/BENCHMARKS.md, fifth
-- session), and every autoanalyze of these tables. The other columns keep
-- their statistics. SET STATISTICS takes only a SHARE UPDATE EXCLUSIVE lock:
-- reads and writes go on while it runs.
ALTER TABLE pipeline.lead_stages ALTER COLUMN detail SET STATISTICS 0;
ALTER TABLE pipeline.run_outcomes ALTER COLUMN event SET STATISTICS 0;
ALTER TABLE pipeline.webhook_receipts ALTER COLUMN payload SET STATISTICS 0;
ALTER TABLE pipeline.workapi_payloads ALTER COLUMN payload SET STATISTICS 0;
ALTER TABLE pipeline.replays ALTER COLUMN selector SET STATISTICS 0;

-- +goose Down
ALTER TABLE pipeline.lead_stages ALTER COLUMN detail SET STATISTICS -1;
ALTER TABLE pipeline.run_outcomes ALTER COLUMN event SET STATISTICS -1;
ALTER TABLE pipeline.webhook_receipts ALTER COLUMN payload SET STATISTICS -1;
ALTER TABLE pipeline.workapi_payloads ALTER COLUMN payload SET STATISTICS -1;
ALTER TABLE pipeline.replays ALTER COLUMN selector SET STATISTICS -1;
