-- Who is in a room session right now: joined and not left. One definition for every count
-- (processor/src/store/rooms.rs).
CREATE FUNCTION room_present_count(name TEXT, sid TEXT) RETURNS INTEGER
LANGUAGE SQL STABLE AS $$
    SELECT count(*)::int FROM room_participants
    WHERE room_name = name AND room_sid = sid AND joined_at IS NOT NULL AND left_at IS NULL
$$;
