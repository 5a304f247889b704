-- Usage that outlives deletion (`GET /api/v1/usage`, `roomtape usage`): one ledger row per
-- recording once it is final, with what it recorded and wrote, kept when the recording is
-- deleted (only `deleted_at` is set then). Triggers keep it, so every way a recording becomes
-- final or is deleted (the processor, the API, the CLI, retention) is counted the same.
-- Recordings deleted before this table existed are not in it.
CREATE TABLE recording_usage (
    egress_id TEXT PRIMARY KEY,
    room_name TEXT NOT NULL,
    kind TEXT NOT NULL,
    identity TEXT,
    stream_id TEXT,
    user_id TEXT,
    status TEXT NOT NULL,
    -- The storage profile its files are in (`metadata.storage_profile`), else its provider.
    storage_profile TEXT,
    -- When it counts: when it ended (else when it became final).
    recorded_at TIMESTAMPTZ NOT NULL,
    duration_seconds DOUBLE PRECISION NOT NULL DEFAULT 0,
    -- What it wrote to storage: a ready recording's files; 0 for one that failed.
    bytes_written BIGINT NOT NULL DEFAULT 0,
    deleted_at TIMESTAMPTZ
);
CREATE INDEX recording_usage_recorded_at_idx ON recording_usage (recorded_at);
CREATE INDEX recording_usage_room_idx ON recording_usage (room_name);

CREATE FUNCTION recording_usage_note() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        -- A recording deleted before it was final (`delete --force`) still recorded minutes.
        INSERT INTO recording_usage (egress_id, room_name, kind, identity, stream_id, user_id,
                status, storage_profile, recorded_at, duration_seconds, bytes_written)
            VALUES (OLD.egress_id, OLD.room_name, OLD.kind, OLD.identity, OLD.stream_id,
                OLD.user_id, OLD.status,
                COALESCE(OLD.metadata ->> 'storage_profile', OLD.storage_provider),
                COALESCE(OLD.ended_at, now()),
                COALESCE(OLD.duration_seconds,
                         EXTRACT(EPOCH FROM now() - OLD.started_at), 0),
                0)
            ON CONFLICT (egress_id) DO NOTHING;
        UPDATE recording_usage SET deleted_at = now()
            WHERE egress_id = OLD.egress_id AND deleted_at IS NULL;
        RETURN OLD;
    END IF;
    IF recording_status_rank(NEW.status) >= 4
       AND (TG_OP = 'INSERT' OR recording_status_rank(OLD.status) < 4) THEN
        INSERT INTO recording_usage (egress_id, room_name, kind, identity, stream_id, user_id,
                status, storage_profile, recorded_at, duration_seconds, bytes_written)
            VALUES (NEW.egress_id, NEW.room_name, NEW.kind, NEW.identity, NEW.stream_id,
                NEW.user_id, NEW.status,
                COALESCE(NEW.metadata ->> 'storage_profile', NEW.storage_provider),
                COALESCE(NEW.ended_at, now()), COALESCE(NEW.duration_seconds, 0),
                CASE WHEN NEW.status = 'ready' THEN COALESCE(NEW.file_size_bytes, 0) ELSE 0 END)
            ON CONFLICT (egress_id) DO NOTHING;
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER recording_usage_note
    AFTER INSERT OR UPDATE OF status OR DELETE ON recordings
    FOR EACH ROW EXECUTE FUNCTION recording_usage_note();

-- What is final already.
INSERT INTO recording_usage (egress_id, room_name, kind, identity, stream_id, user_id, status,
        storage_profile, recorded_at, duration_seconds, bytes_written)
    SELECT egress_id, room_name, kind, identity, stream_id, user_id, status,
           COALESCE(metadata ->> 'storage_profile', storage_provider),
           COALESCE(ended_at, updated_at), COALESCE(duration_seconds, 0),
           CASE WHEN status = 'ready' THEN COALESCE(file_size_bytes, 0) ELSE 0 END
    FROM recordings WHERE recording_status_rank(status) >= 4;
