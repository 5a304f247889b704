-- One row per LiveKit event id processed: the dedupe record (CONTRACTS §5).
CREATE TABLE webhook_events (
    event_id     TEXT PRIMARY KEY,
    event        TEXT NOT NULL,
    created_at   TIMESTAMPTZ,
    processed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    payload      JSONB NOT NULL
);
