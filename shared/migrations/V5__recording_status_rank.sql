-- The order recording statuses move in; an update applies only when it moves forward
-- (store/recordings.rs). ready, failed and aborted are final.
CREATE FUNCTION recording_status_rank(status TEXT) RETURNS INTEGER
LANGUAGE SQL IMMUTABLE STRICT AS $$
    SELECT CASE status
        WHEN 'starting' THEN 0
        WHEN 'active'   THEN 1
        WHEN 'stopping' THEN 2
        WHEN 'stopped'  THEN 3
        ELSE 4
    END
$$;
