-- One row per recording.start command (by AMQP message_id), so a command delivered twice, even
-- after a crash between the Egress call and the commit, starts at most one egress.
-- state: 'calling' is written before LiveKit is called; 'done' holds the reply to re-send.
CREATE TABLE recording_commands (
    message_id  TEXT PRIMARY KEY,
    room_name   TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('calling', 'done')),
    egress_id   TEXT,
    reply       JSONB,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
