-- room_peak and room_present_count in PL/pgSQL, same results: a SQL function called from a
-- statement's SET or FROM is planned again at every call (PostgreSQL before 18), which made
-- `room_finished` cost ~0.3 ms of planning; PL/pgSQL keeps the plan for the session.
CREATE OR REPLACE FUNCTION room_peak(name TEXT, sid TEXT) RETURNS INTEGER
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (SELECT COALESCE(max(running), 0)::int FROM (
        SELECT sum(change) OVER (ORDER BY at, change ROWS UNBOUNDED PRECEDING) AS running
        FROM (
            SELECT joined_at AS at, 1 AS change FROM room_participants
            WHERE room_name = name AND room_sid = sid AND joined_at IS NOT NULL
            UNION ALL
            SELECT left_at, -1 FROM room_participants
            WHERE room_name = name AND room_sid = sid AND joined_at IS NOT NULL
              AND left_at IS NOT NULL
        ) AS changes
    ) AS counts);
END $$;

CREATE OR REPLACE FUNCTION room_present_count(name TEXT, sid TEXT) RETURNS INTEGER
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (SELECT count(*)::int FROM room_participants
        WHERE room_name = name AND room_sid = sid AND joined_at IS NOT NULL AND left_at IS NULL);
END $$;

-- The usage ledger's trigger (V22) runs only when it has something to write: a row that is
-- final, inserted or becoming so, and every delete. Before, every status change of every
-- recording called it (~20 µs each) to find that most had nothing to note.
DROP TRIGGER recording_usage_note ON recordings;
CREATE TRIGGER recording_usage_note_insert
    AFTER INSERT ON recordings
    FOR EACH ROW WHEN (recording_status_rank(NEW.status) >= 4)
    EXECUTE FUNCTION recording_usage_note();
CREATE TRIGGER recording_usage_note_update
    AFTER UPDATE OF status ON recordings
    FOR EACH ROW WHEN (recording_status_rank(NEW.status) >= 4 AND recording_status_rank(OLD.status) < 4)
    EXECUTE FUNCTION recording_usage_note();
CREATE TRIGGER recording_usage_note_delete
    AFTER DELETE ON recordings
    FOR EACH ROW EXECUTE FUNCTION recording_usage_note();
