-- Who is in which room session, so rooms.participant_count is right whatever order joins and
-- leaves arrive in, and duplicates count once.
CREATE TABLE room_participants (
    room_name       TEXT NOT NULL,
    room_sid        TEXT NOT NULL DEFAULT '',
    participant_sid TEXT NOT NULL,
    identity        TEXT,
    joined_at       TIMESTAMPTZ,
    left_at         TIMESTAMPTZ,
    PRIMARY KEY (room_name, room_sid, participant_sid)
);
