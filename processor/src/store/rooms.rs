//! `rooms` and `room_participants`: room sessions and who is in them.
//!
//! A room session is its `sid`; a new sid under the same name starts the counts afresh. Every
//! writer of a room first takes its `rooms` row lock ([`lock`]) and only then reads or writes
//! participants, so writers of one room take turns and each statement after the lock sees
//! every earlier writer's participants. Under that lock `participant_count` moves by the change
//! a batch makes to who is present (never a recount of the room), and is counted afresh only
//! when a session starts. Who is present: joined and not left (`room_present_count`).

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use tokio_postgres::Error;

use roomtape_shared::db::prepared;

/// Locks the room's row, creating it (active, for `sid`) if the room is new.
pub async fn lock(client: &impl GenericClient, name: &str, sid: &str) -> Result<(), Error> {
    prepared::execute(
        client,
        "INSERT INTO rooms (room_name, room_sid, status) VALUES ($1, $2, 'active')
             ON CONFLICT (room_name) DO UPDATE SET updated_at = now()",
        &[&name, &sid],
    )
    .await
    .map(drop)
}

/// Marks the room active for session `sid` (row locked). A new session counts who is already
/// known to be in it (its joins may have been handled before its `room_started`); a late
/// `room_started` of a session already seen changes nothing but a missing start time.
pub async fn started(
    client: &impl GenericClient,
    name: &str,
    sid: &str,
    at: Option<DateTime<Utc>>,
) -> Result<(), Error> {
    prepared::execute(
        client,
        "UPDATE rooms AS r SET
                 room_sid = $2, status = 'active', started_at = $3, finished_at = NULL,
                 participant_count = present.n, max_participants = present.n, updated_at = now()
             FROM room_present_count($1, $2) AS present(n)
             WHERE r.room_name = $1 AND r.room_sid IS DISTINCT FROM $2
               AND ($3::timestamptz IS NULL
                    OR GREATEST(r.started_at, r.finished_at) IS NULL
                    OR $3 >= GREATEST(r.started_at, r.finished_at))",
        &[&name, &sid, &at],
    )
    .await?;
    prepared::execute(
        client,
        "UPDATE rooms SET started_at = COALESCE(started_at, $3)
             WHERE room_name = $1 AND room_sid = $2",
        &[&name, &sid, &at],
    )
    .await
    .map(drop)
}

/// Marks session `sid` finished (row locked): no viewers, and the true peak from join and leave
/// times. A `room_finished` later than anything the row knows of its own session (a newer
/// session whose start is not seen yet) takes the row over, so its late `room_started` cannot
/// reopen it; an older session's late events never take over.
pub async fn finished(
    client: &impl GenericClient,
    name: &str,
    sid: &str,
    at: Option<DateTime<Utc>>,
) -> Result<(), Error> {
    prepared::execute(
        client,
        "UPDATE rooms AS r SET
                 started_at = CASE WHEN r.room_sid = $2 THEN r.started_at END,
                 room_sid = $2, status = 'finished', finished_at = COALESCE($3, now()),
                 participant_count = 0, max_participants = room_peak($1, $2), updated_at = now()
             WHERE r.room_name = $1
               AND (r.room_sid = $2
                    OR $3::timestamptz IS NULL
                    OR GREATEST(r.started_at, r.finished_at) IS NULL
                    OR GREATEST(r.started_at, r.finished_at) < $3)",
        &[&name, &sid, &at],
    )
    .await
    .map(drop)
}

/// What a batch says of one participant: when it joined, when it left (either may be unknown).
#[derive(Debug, Clone, PartialEq)]
pub struct Presence {
    pub participant_sid: String,
    pub identity: String,
    pub joined_at: Option<DateTime<Utc>>,
    pub left_at: Option<DateTime<Utc>>,
}

/// Records the joins and leaves of session `sid` (row locked; one entry per participant) and
/// moves the counts by the change in who is present. The earliest join and leave seen win, so
/// the result is the same in any order and duplicates count once. While the session is live,
/// `max_participants` is the highest count applied; once it has finished, late events
/// recompute its true peak.
pub async fn presence(
    client: &impl GenericClient,
    name: &str,
    sid: &str,
    participants: &[Presence],
) -> Result<(), Error> {
    let sids: Vec<&str> = participants
        .iter()
        .map(|p| p.participant_sid.as_str())
        .collect();
    let identities: Vec<&str> = participants.iter().map(|p| p.identity.as_str()).collect();
    let joins: Vec<Option<DateTime<Utc>>> = participants.iter().map(|p| p.joined_at).collect();
    let leaves: Vec<Option<DateTime<Utc>>> = participants.iter().map(|p| p.left_at).collect();
    // One statement: `before` and the upsert both read the snapshot from before it, and the
    // room lock keeps every other writer of these rows out.
    let row = prepared::query_one(
        client,
        "WITH batch AS (
                 SELECT * FROM unnest($3::text[], $4::text[], $5::timestamptz[], $6::timestamptz[])
                     AS b(participant_sid, identity, joined_at, left_at)
             ), before AS (
                 SELECT count(*) FILTER (WHERE rp.joined_at IS NOT NULL AND rp.left_at IS NULL) AS n
                 FROM room_participants rp JOIN batch USING (participant_sid)
                 WHERE rp.room_name = $1 AND rp.room_sid = $2
             ), after AS (
                 INSERT INTO room_participants AS rp
                     (room_name, room_sid, participant_sid, identity, joined_at, left_at)
                 SELECT $1, $2, participant_sid, identity, joined_at, left_at FROM batch
                 ON CONFLICT (room_name, room_sid, participant_sid) DO UPDATE SET
                     identity = COALESCE(rp.identity, EXCLUDED.identity),
                     joined_at = LEAST(rp.joined_at, EXCLUDED.joined_at),
                     left_at = LEAST(rp.left_at, EXCLUDED.left_at)
                 RETURNING rp.joined_at IS NOT NULL AND rp.left_at IS NULL AS present
             )
             SELECT ((SELECT count(*) FILTER (WHERE present) FROM after)
                     - (SELECT n FROM before))::int",
        &[&name, &sid, &sids, &identities, &joins, &leaves],
    )
    .await?;
    let change: i32 = row.get(0);
    prepared::execute(
        client,
        "UPDATE rooms SET
                 participant_count = CASE WHEN status = 'active'
                     THEN GREATEST(participant_count + $3, 0) ELSE 0 END,
                 max_participants = CASE WHEN status = 'active'
                     THEN GREATEST(max_participants, participant_count + $3)
                     ELSE room_peak($1, $2) END,
                 updated_at = now()
             WHERE room_name = $1 AND room_sid = $2",
        &[&name, &sid, &change],
    )
    .await
    .map(drop)
}
