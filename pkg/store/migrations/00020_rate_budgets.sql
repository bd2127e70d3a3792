-- +goose Up
-- Shared rate budgets (pkg/store/budget): one row per upstream credential,
-- spent by every process and replica that uses that credential. The state
-- of a generic cell rate algorithm (GCRA) is one timestamp; all arithmetic
-- runs on the database clock, so application clock skew does not matter.
CREATE TABLE IF NOT EXISTS pipeline.rate_budgets (
    -- '<upstream>:<12 hex of a SHA-256 of the credential>'; never the credential.
    name          text        PRIMARY KEY,
    -- Theoretical arrival time: the next reservation is allowed at
    -- greatest(tat, now) - tolerance.
    tat           timestamptz NOT NULL DEFAULT '-infinity',
    -- End of the latest pause an upstream 429 (Retry-After) asked for.
    blocked_until timestamptz NOT NULL DEFAULT '-infinity'
);

-- +goose Down
DROP TABLE IF EXISTS pipeline.rate_budgets;
