-- Lists filter by the app's stream and user (`GET /api/v1/recordings?stream_id=&user_id=`,
-- `roomtape recordings list --stream-id/--user-id`); most recordings name neither.
CREATE INDEX recordings_stream_id_idx ON recordings (stream_id) WHERE stream_id IS NOT NULL;
CREATE INDEX recordings_user_id_idx ON recordings (user_id) WHERE user_id IS NOT NULL;
