-- +goose Up
-- A run's first trace step ("received") is read from the run itself instead
-- of a pipeline.lead_stages row: ingest writes one row less per webhook. The
-- run keeps what that step held (when it was received, the trace id);
-- runs started before this migration keep their lead_stages row and have no
-- received_at. pipeline.lead_steps is the whole trace, both kinds together.
ALTER TABLE pipeline.lead_runs ADD COLUMN received_at timestamptz, ADD COLUMN trace_id text;

CREATE VIEW pipeline.lead_steps AS
    SELECT event_id, run_id, lead_id, stage, outcome, detail, error, at
    FROM pipeline.lead_stages
    UNION ALL
    SELECT 'received:' || run_id, run_id, lead_id, 'received', source,
        jsonb_build_object('replay_id', replay_id)
            || CASE WHEN trace_id IS NOT NULL THEN jsonb_build_object('trace_id', trace_id) ELSE '{}'::jsonb END,
        NULL, received_at
    FROM pipeline.lead_runs r
    WHERE received_at IS NOT NULL
      -- a run started before this migration and started again after it (a
      -- C2S retry across the deploy) keeps its one received row
      AND NOT EXISTS (SELECT 1 FROM pipeline.lead_stages s
          WHERE s.lead_id = r.lead_id AND s.run_id = r.run_id AND s.stage = 'received');

-- +goose Down
DROP VIEW IF EXISTS pipeline.lead_steps;
ALTER TABLE pipeline.lead_runs DROP COLUMN IF EXISTS received_at, DROP COLUMN IF EXISTS trace_id;
