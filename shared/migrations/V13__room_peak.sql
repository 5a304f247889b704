-- The true peak of concurrent viewers of a room session, from join and leave times: a join
-- counts +1 at joined_at, a leave -1 at left_at (a leave whose join was never seen counts
-- neither), a leave before a join at the same instant. Used once a session has finished, so
-- events that arrived far out of order cannot leave rooms.max_participants low.
CREATE FUNCTION room_peak(name TEXT, sid TEXT) RETURNS INTEGER
LANGUAGE SQL STABLE AS $$
    SELECT COALESCE(max(running), 0)::int FROM (
        SELECT sum(change) OVER (ORDER BY at, change ROWS UNBOUNDED PRECEDING) AS running
        FROM (
            SELECT joined_at AS at, 1 AS change FROM room_participants
            WHERE room_name = name AND room_sid = sid AND joined_at IS NOT NULL
            UNION ALL
            SELECT left_at, -1 FROM room_participants
            WHERE room_name = name AND room_sid = sid AND joined_at IS NOT NULL
              AND left_at IS NOT NULL
        ) AS changes
    ) AS counts
$$;
