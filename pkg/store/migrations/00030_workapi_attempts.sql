-- +goose Up
-- Every Work API call that may be charged, recorded before it is made: a
-- call whose reply is lost still cost credits, so the ledger, not the
-- payload table, says how often a CPF was paid for.
CREATE TABLE pipeline.workapi_attempts (
    attempt_id  bigserial   PRIMARY KEY,
    cpf         text        NOT NULL,
    status      text        NOT NULL DEFAULT 'started',
        -- started (in flight, or its process died: counted as charged)
        -- answered | not_found | refused (charged, answered)
        -- lost (charged, reply lost) | not_charged (never reached, 429, credits, token)
    error       text,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
CREATE INDEX workapi_attempts_cpf ON pipeline.workapi_attempts (cpf, attempt_id DESC);

-- +goose Down
DROP TABLE IF EXISTS pipeline.workapi_attempts;
