-- +goose Up
-- The outcome a stage decided for a run, kept so that a redelivery that
-- would decide differently (an upstream answered otherwise the second
-- time) publishes the first decision again instead of a second outcome:
-- a run ends in exactly one outcome. The event holds the lead's contacts.
CREATE TABLE pipeline.run_outcomes (
    run_id     text        NOT NULL,
    stage      text        NOT NULL,
    event      jsonb       NOT NULL,
    decided_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, stage)
);

-- +goose Down
DROP TABLE IF EXISTS pipeline.run_outcomes;
