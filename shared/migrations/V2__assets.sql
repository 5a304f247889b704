-- One row per finished file of a recording, created when it is ready (CONTRACTS §5).
CREATE TABLE assets (
    id               BIGSERIAL PRIMARY KEY,
    egress_id        TEXT NOT NULL,
    recording_id     BIGINT NOT NULL REFERENCES recordings (id) ON DELETE CASCADE,
    stream_id        TEXT,
    user_id          TEXT,
    room_name        TEXT NOT NULL,
    storage_bucket   TEXT NOT NULL,
    storage_key      TEXT NOT NULL,
    playback_url     TEXT NOT NULL,
    file_size_bytes  BIGINT NOT NULL CHECK (file_size_bytes >= 0),
    duration_seconds DOUBLE PRECISION CHECK (duration_seconds >= 0),
    content_type     TEXT,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (egress_id, storage_key)
);

CREATE INDEX assets_stream_id_idx ON assets (stream_id);
