-- Notifications out (CONTRACTS §8), written in the same transaction as the change they report
-- and relayed to `roomtape.notifications` after the commit. `notification_id` is fixed by the
-- transition (`recording.ready:EG_…`, `room.finished:<room>:<sid>`), so writing one twice is a
-- conflict that adds nothing. Relayed rows stay, with `relayed_at`, until the pruner removes them
-- after WEBHOOK_EVENTS_RETENTION: while they are kept, a late duplicate of a transition still
-- finds its id taken.
CREATE TABLE notification_outbox (
    id BIGSERIAL PRIMARY KEY,
    notification_id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    body JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    relayed_at TIMESTAMPTZ
);
-- What the relay takes, oldest first, and what the depth and age gauges read.
CREATE INDEX notification_outbox_unrelayed ON notification_outbox (id) WHERE relayed_at IS NULL;
-- What the pruner removes.
CREATE INDEX notification_outbox_relayed_at ON notification_outbox (relayed_at)
    WHERE relayed_at IS NOT NULL;
