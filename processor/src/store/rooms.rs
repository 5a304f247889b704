//! `rooms` and `room_participants`: room sessions and who is in them.
//!
//! A room session is its `sid`; a new sid under the same name starts the counts afresh.
//! `participant_count` is recomputed from `room_participants` after every change, so joins and
//! leaves may arrive in any order and duplicates count once.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use tokio_postgres::Error;

use roomtape_shared::db::prepared;

/// Marks the room active. A late `room_started` of a session already seen changes nothing
/// but a missing start time.
pub async fn started(
    client: &impl GenericClient,
    name: &str,
    sid: &str,
    at: Option<DateTime<Utc>>,
) -> Result<(), Error> {
    prepared::execute(
        client,
        // A new session starts from who is already known to be in it: its joins may have
        // been handled before its room_started.
        "INSERT INTO rooms AS r (room_name, room_sid, status, started_at, participant_count,
                 max_participants)
             SELECT $1, $2, 'active', $3, present.n, present.n
             FROM room_present_count($1, $2) AS present(n)
             ON CONFLICT (room_name) DO UPDATE SET
                 room_sid = EXCLUDED.room_sid, status = 'active', started_at = EXCLUDED.started_at,
                 finished_at = NULL, participant_count = EXCLUDED.participant_count,
                 max_participants = EXCLUDED.max_participants, updated_at = now()
             WHERE r.room_sid IS DISTINCT FROM EXCLUDED.room_sid
               AND (EXCLUDED.started_at IS NULL
                    OR GREATEST(r.started_at, r.finished_at) IS NULL
                    OR EXCLUDED.started_at >= GREATEST(r.started_at, r.finished_at))",
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

/// Marks this session of the room finished. A `room_finished` later than anything the row knows
/// of its own session (a newer session whose start is not seen yet) takes the row over, so its
/// late `room_started` cannot reopen it; an older session's late events never take over.
pub async fn finished(
    client: &impl GenericClient,
    name: &str,
    sid: &str,
    at: Option<DateTime<Utc>>,
) -> Result<(), Error> {
    prepared::execute(
        client,
        "INSERT INTO rooms AS r (room_name, room_sid, status, finished_at)
             VALUES ($1, $2, 'finished', $3)
             ON CONFLICT (room_name) DO UPDATE SET
                 started_at = CASE WHEN r.room_sid = EXCLUDED.room_sid THEN r.started_at END,
                 room_sid = EXCLUDED.room_sid, status = 'finished',
                 finished_at = COALESCE(EXCLUDED.finished_at, now()),
                 participant_count = 0, updated_at = now()
             WHERE r.room_sid = EXCLUDED.room_sid
                OR EXCLUDED.finished_at IS NULL
                OR GREATEST(r.started_at, r.finished_at) IS NULL
                OR GREATEST(r.started_at, r.finished_at) < EXCLUDED.finished_at",
        &[&name, &sid, &at],
    )
    .await
    .map(drop)
}

/// A participant joined (`left_at` = `None`) or left (`left_at` = `Some`).
#[derive(Debug, Clone)]
pub struct Presence<'a> {
    pub room_name: &'a str,
    pub room_sid: &'a str,
    pub participant_sid: &'a str,
    pub identity: &'a str,
    pub joined_at: Option<DateTime<Utc>>,
    pub left_at: Option<DateTime<Utc>>,
}

/// Records a join or leave and recomputes the room's counts.
pub async fn presence(client: &impl GenericClient, p: &Presence<'_>) -> Result<(), Error> {
    // Lock (or create) the room row first: concurrent joins then count one after the other.
    prepared::execute(
        client,
        "INSERT INTO rooms (room_name, room_sid, status) VALUES ($1, $2, 'active')
             ON CONFLICT (room_name) DO UPDATE SET updated_at = now()",
        &[&p.room_name, &p.room_sid],
    )
    .await?;
    prepared::execute(
        client,
        "INSERT INTO room_participants AS rp
                 (room_name, room_sid, participant_sid, identity, joined_at, left_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (room_name, room_sid, participant_sid) DO UPDATE SET
                 joined_at = COALESCE(rp.joined_at, EXCLUDED.joined_at),
                 left_at = COALESCE(rp.left_at, EXCLUDED.left_at)",
        &[
            &p.room_name,
            &p.room_sid,
            &p.participant_sid,
            &p.identity,
            &p.joined_at,
            &p.left_at,
        ],
    )
    .await?;
    prepared::execute(
        client,
        "UPDATE rooms SET
                 participant_count = CASE WHEN status = 'active' THEN present.n ELSE 0 END,
                 max_participants = GREATEST(max_participants, present.n),
                 updated_at = now()
             FROM room_present_count($1, $2) AS present(n)
             WHERE room_name = $1 AND room_sid = $2",
        &[&p.room_name, &p.room_sid],
    )
    .await
    .map(drop)
}
