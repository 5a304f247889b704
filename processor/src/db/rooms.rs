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

use roomtape_shared::db::notifications::FinishedRoom;
use roomtape_shared::db::prepared;

/// Locks the rows of `rooms` (name, sid of its first event), creating a room that is new
/// (active, for that sid). In name order, so two writers never wait on each other. No rooms:
/// no statement.
pub async fn lock(client: &impl GenericClient, rooms: &[(&str, &str)]) -> Result<(), Error> {
    if rooms.is_empty() {
        return Ok(());
    }
    let mut sorted = rooms.to_vec();
    sorted.sort_unstable();
    sorted.dedup_by_key(|(name, _)| *name);
    let (names, sids): (Vec<&str>, Vec<&str>) = sorted.into_iter().unzip();
    prepared::execute(
        client,
        "INSERT INTO rooms (room_name, room_sid, status)
             SELECT name, sid, 'active' FROM unnest($1::text[], $2::text[]) AS r(name, sid)
             ORDER BY name
             ON CONFLICT (room_name) DO UPDATE SET updated_at = now()",
        &[&names, &sids],
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
/// reopen it; an older session's late events never take over. Returns the session when this
/// ended it (it was not already finished), for `room.finished`.
pub async fn finished(
    client: &impl GenericClient,
    name: &str,
    sid: &str,
    at: Option<DateTime<Utc>>,
) -> Result<Option<FinishedRoom>, Error> {
    // `old` is the row as it was before this statement (the lock keeps other writers out).
    let row = prepared::query_opt(
        client,
        "UPDATE rooms AS r SET
                 started_at = CASE WHEN r.room_sid = $2 THEN r.started_at END,
                 room_sid = $2, status = 'finished', finished_at = COALESCE($3, now()),
                 participant_count = 0, max_participants = room_peak($1, $2), updated_at = now()
             FROM rooms AS old
             WHERE r.room_name = $1 AND old.room_name = $1
               AND (r.room_sid = $2
                    OR $3::timestamptz IS NULL
                    OR GREATEST(r.started_at, r.finished_at) IS NULL
                    OR GREATEST(r.started_at, r.finished_at) < $3)
             RETURNING r.started_at, r.finished_at, r.max_participants,
                       old.status = 'finished' AND old.room_sid = $2 AS already",
        &[&name, &sid, &at],
    )
    .await?;
    Ok(row
        .filter(|row| !row.get::<_, bool>(3))
        .map(|row| FinishedRoom {
            room_name: name.to_owned(),
            room_sid: sid.to_owned(),
            started_at: row.get(0),
            finished_at: row.get(1),
            max_participants: row.get(2),
        }))
}

/// What a batch says of one participant of a room session: when it joined, when it left
/// (either may be unknown).
#[derive(Debug, Clone, PartialEq)]
pub struct Presence {
    pub room_name: String,
    pub room_sid: String,
    pub participant_sid: String,
    pub identity: String,
    pub joined_at: Option<DateTime<Utc>>,
    pub left_at: Option<DateTime<Utc>>,
}

/// Records joins and leaves (rooms locked; one entry per participant of a session) and moves
/// each session's counts by the change in who is present, all in one statement. The earliest
/// join and leave seen win, so the result is the same in any order and duplicates count once.
/// While a session is live, `max_participants` is the highest count applied; once it has
/// finished, late events recompute its true peak. Sessions that are not their room's current
/// one change only `room_participants` (their `room_started` counts them).
pub async fn presence(client: &impl GenericClient, batch: &[Presence]) -> Result<(), Error> {
    let column = |field: fn(&Presence) -> &str| batch.iter().map(field).collect::<Vec<&str>>();
    let names = column(|p| &p.room_name);
    let sids = column(|p| &p.room_sid);
    let participants = column(|p| &p.participant_sid);
    let identities = column(|p| &p.identity);
    let joins: Vec<Option<DateTime<Utc>>> = batch.iter().map(|p| p.joined_at).collect();
    let leaves: Vec<Option<DateTime<Utc>>> = batch.iter().map(|p| p.left_at).collect();
    // `before` and the upsert both read the snapshot from before the statement, and the room
    // locks keep every other writer of these rows out. Returns each session's room and whether
    // it is live.
    let rows = prepared::query(
        client,
        "WITH batch AS (
                 SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[],
                                      $5::timestamptz[], $6::timestamptz[])
                     AS b(room_name, room_sid, participant_sid, identity, joined_at, left_at)
             ), before AS (
                 -- A look-up per participant (LATERAL … LIMIT 1): a join would be planned once,
                 -- on a table still small, as a scan of all of it.
                 SELECT b.room_name, b.room_sid, count(*) FILTER (WHERE rp.present) AS n
                 FROM batch b CROSS JOIN LATERAL (
                     SELECT p.joined_at IS NOT NULL AND p.left_at IS NULL AS present
                     FROM room_participants p
                     WHERE p.room_name = b.room_name AND p.room_sid = b.room_sid
                       AND p.participant_sid = b.participant_sid
                     LIMIT 1
                 ) rp
                 GROUP BY b.room_name, b.room_sid
             ), after AS (
                 INSERT INTO room_participants AS rp
                     (room_name, room_sid, participant_sid, identity, joined_at, left_at)
                 SELECT room_name, room_sid, participant_sid, identity, joined_at, left_at
                 FROM batch ORDER BY room_name, room_sid, participant_sid
                 ON CONFLICT (room_name, room_sid, participant_sid) DO UPDATE SET
                     identity = COALESCE(rp.identity, EXCLUDED.identity),
                     joined_at = LEAST(rp.joined_at, EXCLUDED.joined_at),
                     left_at = LEAST(rp.left_at, EXCLUDED.left_at)
                 RETURNING rp.room_name, rp.room_sid,
                           rp.joined_at IS NOT NULL AND rp.left_at IS NULL AS present
             ), changes AS (
                 SELECT a.room_name, a.room_sid,
                        (count(*) FILTER (WHERE a.present) - COALESCE(min(b.n), 0))::int AS change
                 FROM after a LEFT JOIN before b USING (room_name, room_sid)
                 GROUP BY a.room_name, a.room_sid
             )
             UPDATE rooms AS r SET
                 participant_count = CASE WHEN r.status = 'active'
                     THEN GREATEST(r.participant_count + c.change, 0) ELSE 0 END,
                 max_participants = CASE WHEN r.status = 'active'
                     THEN GREATEST(r.max_participants, r.participant_count + c.change)
                     ELSE r.max_participants END,
                 updated_at = now()
             FROM changes c
             WHERE r.room_name = c.room_name AND r.room_sid = c.room_sid
               AND r.room_name = ANY($1)
             RETURNING r.room_name, r.room_sid, r.status = 'active'",
        &[&names, &sids, &participants, &identities, &joins, &leaves],
    )
    .await?;
    let (finished_names, finished_sids): (Vec<&str>, Vec<&str>) = rows
        .iter()
        .filter(|row| !row.get::<_, bool>(2))
        .map(|row| (row.get::<_, &str>(0), row.get::<_, &str>(1)))
        .unzip();
    if finished_names.is_empty() {
        return Ok(());
    }
    // A statement's functions read the snapshot from before it: the true peak of a finished
    // session is recomputed in a statement of its own, which sees this batch's rows (a late
    // join and its leave arriving together would otherwise not count).
    prepared::execute(
        client,
        "UPDATE rooms AS r SET max_participants = room_peak(r.room_name, r.room_sid)
             FROM unnest($1::text[], $2::text[]) AS b(room_name, room_sid)
             WHERE r.room_name = b.room_name AND r.room_sid = b.room_sid
               AND r.room_name = ANY($1)",
        &[&finished_names, &finished_sids],
    )
    .await
    .map(drop)
}
