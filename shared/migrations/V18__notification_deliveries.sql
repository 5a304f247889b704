-- Notifications to apps' HTTP endpoints (CONTRACTS §8, NOTIFY_ENDPOINTS): one row per
-- notification and endpoint, written by the relay in the transaction that relays the
-- notification, then tried by the endpoint's delivery workers until a 2xx (`delivered`) or the
-- end of NOTIFY_RETRY_DELAYS (`failed`, dead-lettered: kept for `roomtape notifications replay`).
-- A worker claims a row by counting the attempt and moving `next_attempt_at` past the attempt's
-- timeout (a lease), so no transaction stays open during the POST and a worker that dies
-- mid-attempt leaves the row to be tried again. Finished rows are pruned after
-- WEBHOOK_EVENTS_RETENTION; an outbox row is kept while a delivery of it remains.
CREATE TABLE notification_deliveries (
    id BIGSERIAL PRIMARY KEY,
    outbox_id BIGINT NOT NULL REFERENCES notification_outbox (id),
    endpoint TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    last_attempt_at TIMESTAMPTZ,
    last_status INTEGER,
    last_error TEXT,
    finished_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (outbox_id, endpoint)
);
-- What an endpoint's workers claim next.
CREATE INDEX notification_deliveries_due ON notification_deliveries (endpoint, next_attempt_at)
    WHERE status = 'pending';
-- What the pruner removes.
CREATE INDEX notification_deliveries_finished_at ON notification_deliveries (finished_at)
    WHERE finished_at IS NOT NULL;
-- What `?status=failed` and the replay read.
CREATE INDEX notification_deliveries_failed ON notification_deliveries (endpoint, id)
    WHERE status = 'failed';
