-- When a recording.stop for a whole room last arrived: a start for that room sent before it, and
-- still waiting (in the queue, or retrying LiveKit), is cancelled instead of carried out.
CREATE TABLE room_stop_requests (
    room_name    TEXT PRIMARY KEY,
    requested_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
