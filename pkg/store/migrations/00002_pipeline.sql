-- +goose Up
-- The product's own bookkeeping. Personal data here (raw payloads, contacts)
-- gets the same care as in core.*.
CREATE SCHEMA IF NOT EXISTS pipeline;

-- One row per C2S webhook event, keyed as C2S identifies an event.
CREATE TABLE pipeline.webhook_receipts (
    lead_id     text        NOT NULL,
    updated_key text        NOT NULL,          -- normalised updated_at
    action      text        NOT NULL,
    status      text        NOT NULL,          -- queued | ignored | recorded
    event_id    text,                          -- lead.received event, when queued
    payload     jsonb,                         -- the raw event
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (lead_id, updated_key)
);

-- One pass of a lead through the pipeline.
CREATE TABLE pipeline.lead_runs (
    run_id          text PRIMARY KEY,
    lead_id         text        NOT NULL,
    source          text        NOT NULL,
    replay_id       text,
    status          text        NOT NULL DEFAULT 'received',
    cpfs_processed  integer     NOT NULL DEFAULT 0,
    entities_stored integer     NOT NULL DEFAULT 0,
    error           text,
    started_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz
);
CREATE INDEX lead_runs_lead ON pipeline.lead_runs (lead_id, started_at DESC);

-- The trace: one row per stage outcome, keyed by the event that recorded it,
-- so redeliveries do not add rows. detail holds no personal data.
CREATE TABLE pipeline.lead_stages (
    event_id text PRIMARY KEY,
    run_id   text        NOT NULL,
    lead_id  text        NOT NULL,
    stage    text        NOT NULL,
    outcome  text        NOT NULL,
    detail   jsonb       NOT NULL DEFAULT '{}'::jsonb,
    error    text,
    at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX lead_stages_lead ON pipeline.lead_stages (lead_id, at);

-- What the product last resolved for a lead (on_update_lead compares).
CREATE TABLE pipeline.lead_contacts (
    lead_id    text PRIMARY KEY,
    phone      text,
    email      text,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Earlier resolutions: an identifier Diretrix already answered.
CREATE TABLE pipeline.identity_resolutions (
    kind        text        NOT NULL CHECK (kind IN ('phone', 'email')),
    value       text        NOT NULL,
    cpf         text        NOT NULL,
    source      text        NOT NULL,
    resolved_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, value)
);

-- Raw Work API payloads: re-deriving rows and messages costs no credits.
CREATE TABLE pipeline.workapi_payloads (
    cpf         text PRIMARY KEY,
    payload     jsonb       NOT NULL,
    fetched_at  timestamptz NOT NULL,
    fetch_count integer     NOT NULL DEFAULT 1
);

-- The notifications ledger: C2S does not deduplicate, this does.
CREATE TABLE pipeline.notifications (
    lead_id      text        NOT NULL,
    message_hash text        NOT NULL,
    replay_key   text        NOT NULL DEFAULT '',  -- replay id of a --notify replay
    run_id       text        NOT NULL,
    status       text        NOT NULL,             -- pending | sent
    route        text,
    attempts     integer     NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL DEFAULT now(),
    sent_at      timestamptz,
    PRIMARY KEY (lead_id, message_hash, replay_key)
);

-- Operator replays.
CREATE TABLE pipeline.replays (
    replay_id   text PRIMARY KEY,
    subject     text        NOT NULL,
    selector    jsonb       NOT NULL DEFAULT '{}'::jsonb,
    refresh     boolean     NOT NULL DEFAULT false,
    notify      boolean     NOT NULL DEFAULT false,
    selected    integer     NOT NULL DEFAULT 0,
    published   integer     NOT NULL DEFAULT 0,
    skipped     integer     NOT NULL DEFAULT 0,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);

-- +goose Down
DROP SCHEMA IF EXISTS pipeline CASCADE;
