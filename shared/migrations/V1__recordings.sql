-- One row per LiveKit egress (CONTRACTS §5). Status only moves forward; see processor/store.
CREATE TABLE recordings (
    id                BIGSERIAL PRIMARY KEY,
    egress_id         TEXT NOT NULL UNIQUE,
    room_name         TEXT NOT NULL,
    room_sid          TEXT,
    status            TEXT NOT NULL CHECK (status IN
                        ('starting', 'active', 'stopping', 'stopped', 'ready', 'failed', 'aborted')),
    layout            TEXT,
    file_format       TEXT,
    audio_only        BOOLEAN NOT NULL DEFAULT FALSE,
    started_at        TIMESTAMPTZ,
    ended_at          TIMESTAMPTZ,
    duration_seconds  DOUBLE PRECISION CHECK (duration_seconds >= 0),
    file_size_bytes   BIGINT CHECK (file_size_bytes >= 0),
    storage_provider  TEXT,
    storage_bucket    TEXT,
    storage_key       TEXT,
    file_url          TEXT,
    is_processed      BOOLEAN NOT NULL DEFAULT FALSE,
    error             TEXT,
    metadata          JSONB NOT NULL DEFAULT '{}'::jsonb,
    stream_id         TEXT,
    user_id           TEXT,
    -- EgressInfo.updatedAt (ns) of the last applied update: the tie-breaker between events.
    egress_updated_ns BIGINT NOT NULL DEFAULT 0,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX recordings_room_name_idx ON recordings (room_name);
CREATE INDEX recordings_unfinished_idx ON recordings (updated_at)
    WHERE status IN ('starting', 'active', 'stopping', 'stopped');
