-- Room lifecycle and viewer counts from room and participant events (CONTRACTS §5).
CREATE TABLE rooms (
    room_name         TEXT PRIMARY KEY,
    room_sid          TEXT,
    status            TEXT NOT NULL CHECK (status IN ('active', 'finished')),
    started_at        TIMESTAMPTZ,
    finished_at       TIMESTAMPTZ,
    participant_count INTEGER NOT NULL DEFAULT 0 CHECK (participant_count >= 0),
    max_participants  INTEGER NOT NULL DEFAULT 0 CHECK (max_participants >= 0),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);
