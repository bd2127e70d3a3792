-- +goose Up
-- The notifications ledger is keyed by the event a message answers, not by
-- the text: (lead, run key, stage), where the run key is the run id of a
-- live run and the replay id of a --notify replay, and the stage is the
-- event notified (enriched | unresolved). A crash after a post followed by a
-- formatter or multiplier change finds the same row and never posts again.
-- The text hash stays as a column for audit and for recognising an earlier
-- post on the lead.
--
-- Statuses:
--   pending   no post in flight; the next attempt posts
--   posting   a post started (committed before sending) and its end is not
--             recorded: the next attempt reads the lead before posting
--   sent      the message is on the lead
--   uncertain a post may be on the lead and the lead shows no messages to
--             check: not retried; an operator confirms or reposts
--   repost    an operator asked to post once more; the next attempt posts
--             without checking
ALTER TABLE pipeline.notifications
    ADD COLUMN run_key    text,
    ADD COLUMN stage      text,
    ADD COLUMN reason     text,
    ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();

-- An old pending row counted an attempt before posting: the post may have
-- happened, so it is checked before posting again.
UPDATE pipeline.notifications n SET
    run_key = CASE WHEN n.replay_key <> '' THEN n.replay_key ELSE n.run_id END,
    stage = CASE WHEN EXISTS (SELECT 1 FROM pipeline.lead_stages s WHERE s.run_id = n.run_id AND s.stage = 'unresolved')
                 THEN 'unresolved' ELSE 'enriched' END,
    status = CASE WHEN n.status = 'sent' THEN 'sent' ELSE 'posting' END;

-- A formatter change could have left two rows for one event: keep the sent
-- one, else the newest.
DELETE FROM pipeline.notifications WHERE ctid IN (
    SELECT ctid FROM (
        SELECT ctid, row_number() OVER (PARTITION BY lead_id, run_key, stage
                                        ORDER BY (status = 'sent') DESC, created_at DESC) AS rn
        FROM pipeline.notifications) d
    WHERE d.rn > 1);

ALTER TABLE pipeline.notifications DROP CONSTRAINT notifications_pkey;
ALTER TABLE pipeline.notifications DROP COLUMN replay_key;
ALTER TABLE pipeline.notifications ALTER COLUMN run_key SET NOT NULL, ALTER COLUMN stage SET NOT NULL;
ALTER TABLE pipeline.notifications ADD PRIMARY KEY (lead_id, run_key, stage);
ALTER TABLE pipeline.notifications ADD CONSTRAINT notifications_status
    CHECK (status IN ('pending', 'posting', 'sent', 'uncertain', 'repost'));
-- Operators list what needs them; commands name a delivery by lead and run.
CREATE INDEX notifications_open ON pipeline.notifications (updated_at) WHERE status IN ('posting', 'uncertain', 'repost');
CREATE INDEX notifications_run ON pipeline.notifications (lead_id, run_id);

-- +goose Down
DROP INDEX IF EXISTS pipeline.notifications_run;
DROP INDEX IF EXISTS pipeline.notifications_open;
ALTER TABLE pipeline.notifications DROP CONSTRAINT notifications_status;
ALTER TABLE pipeline.notifications DROP CONSTRAINT notifications_pkey;
ALTER TABLE pipeline.notifications ADD COLUMN replay_key text NOT NULL DEFAULT '';
UPDATE pipeline.notifications SET
    replay_key = CASE WHEN run_key <> run_id THEN run_key ELSE '' END,
    status = CASE WHEN status = 'sent' THEN 'sent' ELSE 'pending' END;
DELETE FROM pipeline.notifications WHERE ctid IN (
    SELECT ctid FROM (
        SELECT ctid, row_number() OVER (PARTITION BY lead_id, message_hash, replay_key
                                        ORDER BY (status = 'sent') DESC, created_at DESC) AS rn
        FROM pipeline.notifications) d
    WHERE d.rn > 1);
ALTER TABLE pipeline.notifications DROP COLUMN run_key, DROP COLUMN stage, DROP COLUMN reason, DROP COLUMN updated_at;
ALTER TABLE pipeline.notifications ADD PRIMARY KEY (lead_id, message_hash, replay_key);
