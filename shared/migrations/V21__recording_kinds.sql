-- What each recording records (CONTRACTS §4 "Kinds of recording", §5): `kind` is LiveKit's
-- egress request it came from (`room_composite`, `participant`, `track_composite`, `track`, or
-- `web` for a web egress started elsewhere); a participant recording names its `identity`, a
-- track composite its `audio_track_id` and/or `video_track_id`, a track recording its `track_id`.
ALTER TABLE recordings
    ADD COLUMN kind TEXT NOT NULL DEFAULT 'room_composite'
        CHECK (kind IN ('room_composite', 'participant', 'track_composite', 'track', 'web')),
    ADD COLUMN identity TEXT,
    ADD COLUMN audio_track_id TEXT,
    ADD COLUMN video_track_id TEXT,
    ADD COLUMN track_id TEXT;

-- Rows written before this column: their kind is in the egress events still kept
-- (`WEBHOOK_EVENTS_RETENTION`); those whose events were pruned stay `room_composite`.
UPDATE recordings r
    SET kind = e.kind, identity = e.identity, audio_track_id = e.audio_track_id,
        video_track_id = e.video_track_id, track_id = e.track_id
    FROM (
        SELECT DISTINCT ON (egress_id) egress_id,
               CASE WHEN info ? 'participant' THEN 'participant'
                    WHEN info ? 'trackComposite' THEN 'track_composite'
                    WHEN info ? 'track' THEN 'track'
                    WHEN info ? 'web' THEN 'web'
                    ELSE 'room_composite' END AS kind,
               info -> 'participant' ->> 'identity' AS identity,
               NULLIF(info -> 'trackComposite' ->> 'audioTrackId', '') AS audio_track_id,
               NULLIF(info -> 'trackComposite' ->> 'videoTrackId', '') AS video_track_id,
               info -> 'track' ->> 'trackId' AS track_id
        FROM (SELECT payload -> 'egressInfo' ->> 'egressId' AS egress_id, created_at,
                     payload -> 'egressInfo' AS info
              FROM webhook_events WHERE payload ? 'egressInfo') AS events
        ORDER BY egress_id, created_at
    ) AS e
    WHERE r.egress_id = e.egress_id;

-- Lists filter by kind and by identity; `already_recording` looks for the same subject among
-- a room's unfinished recordings (the room's index finds those).
CREATE INDEX recordings_kind_idx ON recordings (kind) WHERE kind <> 'room_composite';
CREATE INDEX recordings_identity_idx ON recordings (identity) WHERE identity IS NOT NULL;
