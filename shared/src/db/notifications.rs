//! `notification_outbox` (migration V17): the notifications of CONTRACTS §8, each written in the
//! same transaction as the change it reports, and taken from there by the processors' relay
//! after the commit. A notification is written only when a change really happened (the
//! recording's status moved, the row was deleted, the room's session ended), and its id is
//! fixed by what happened (`recording.ready:EG_…`), so a transition reported twice is a
//! conflict that adds nothing: duplicate or late events, replays, reconciliation and racing
//! processors never add a second one.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde_json::{json, Value};
use tokio_postgres::Error;

use super::assets;
use super::prepared;
use super::recordings::{self, Applied, RecordingDetails, Standing, Status};

/// The notification types of CONTRACTS §8; each is also the routing key on the exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    RecordingStarted,
    RecordingReady,
    RecordingFailed,
    RecordingStopped,
    RecordingDeleted,
    RoomFinished,
}

impl Kind {
    pub const ALL: [Self; 6] = [
        Self::RecordingStarted,
        Self::RecordingReady,
        Self::RecordingFailed,
        Self::RecordingStopped,
        Self::RecordingDeleted,
        Self::RoomFinished,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::RecordingStarted => "recording.started",
            Self::RecordingReady => "recording.ready",
            Self::RecordingFailed => "recording.failed",
            Self::RecordingStopped => "recording.stopped",
            Self::RecordingDeleted => "recording.deleted",
            Self::RoomFinished => "room.finished",
        }
    }
}

/// What a recording's move from `before` (`None`: it was just created) to `after` reports, if
/// anything: it became active, ready, failed (or aborted), or `stopped` with nothing more to do
/// (an output that ends without a file). A refresh of the same status reports nothing.
pub fn transition(before: Option<Standing>, after: Standing) -> Option<Kind> {
    let kind = match after.status {
        Status::Active => Kind::RecordingStarted,
        Status::Ready => Kind::RecordingReady,
        Status::Failed | Status::Aborted => Kind::RecordingFailed,
        Status::Stopped if after.processed => Kind::RecordingStopped,
        Status::Starting | Status::Stopping | Status::Stopped => return None,
    };
    let repeated = before.is_some_and(|b| match kind {
        // One type for both: whichever final status came first was told.
        Kind::RecordingFailed => b.status.is_final(),
        // `stopped` while files were awaited, then settled as a stream: told once settled.
        Kind::RecordingStopped => b == after,
        _ => b.status == after.status,
    });
    (!repeated).then_some(kind)
}

/// Writes the notification an applied update makes, if it made one (see [`transition`]): the
/// recording as the API shows it after the change, from the update's own row. Its assets are
/// read only for `recording.ready`: they are written by the update that makes a recording ready,
/// and nothing moves a recording after that, so any other transition has none.
pub async fn recording_moved(client: &impl GenericClient, applied: &Applied) -> Result<(), Error> {
    let Some(kind) = transition(applied.before, applied.after) else {
        return Ok(());
    };
    let recording = &applied.recording;
    let assets = match applied.after.status {
        Status::Ready => assets::of_recording(client, &recording.egress_id).await?,
        _ => Vec::new(),
    };
    let details = RecordingDetails {
        recording: recording.clone(),
        assets,
    };
    notify_details(client, kind, &details).await
}

/// Writes `kind` about `egress_id`'s recording, whose `data` is the recording with its files
/// as `GET /api/v1/recordings/{egress_id}` shows it, stamped with its `updated_at`.
pub async fn recording_changed(
    client: &impl GenericClient,
    kind: Kind,
    egress_id: &str,
) -> Result<(), Error> {
    match recordings::details(client, egress_id).await? {
        Some(details) => notify_details(client, kind, &details).await,
        None => Ok(()),
    }
}

async fn notify_details(
    client: &impl GenericClient,
    kind: Kind,
    details: &RecordingDetails,
) -> Result<(), Error> {
    let at = details.recording.updated_at;
    let data = serde_json::to_value(details).unwrap_or(Value::Null);
    let id = format!("{}:{}", kind.as_str(), details.recording.egress_id);
    insert(client, &id, kind, at, data).await
}

/// Who deleted a recording, as `recording.deleted` says (`by`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeletedBy {
    Api,
    Cli,
    Retention,
}

impl DeletedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Cli => "cli",
            Self::Retention => "retention",
        }
    }
}

/// Writes `recording.deleted`, in the transaction that removed the recording's rows.
pub async fn recording_deleted(
    client: &impl GenericClient,
    egress_id: &str,
    room_name: &str,
    by: DeletedBy,
) -> Result<(), Error> {
    let at = Utc::now();
    let data = json!({
        "egress_id": egress_id,
        "room_name": room_name,
        "deleted_at": at,
        "by": by.as_str(),
    });
    let id = format!("{}:{egress_id}", Kind::RecordingDeleted.as_str());
    insert(client, &id, Kind::RecordingDeleted, at, data).await
}

/// A room session that ended, as `room.finished` carries it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FinishedRoom {
    pub room_name: String,
    pub room_sid: String,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: DateTime<Utc>,
    /// The true peak of concurrent viewers (`room_peak`).
    pub max_participants: i32,
}

/// Writes `room.finished`, in the transaction that marked the session finished.
pub async fn room_finished(client: &impl GenericClient, room: &FinishedRoom) -> Result<(), Error> {
    let data = serde_json::to_value(room).unwrap_or(Value::Null);
    let kind = Kind::RoomFinished;
    let id = format!("{}:{}:{}", kind.as_str(), room.room_name, room.room_sid);
    insert(client, &id, kind, room.finished_at, data).await
}

/// Adds the notification unless one with its id was written before.
async fn insert(
    client: &impl GenericClient,
    notification_id: &str,
    kind: Kind,
    at: DateTime<Utc>,
    data: Value,
) -> Result<(), Error> {
    let body = json!({
        "type": kind.as_str(),
        "timestamp": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "data": data,
    });
    prepared::execute(
        client,
        "INSERT INTO notification_outbox (notification_id, type, body) VALUES ($1, $2, $3)
             ON CONFLICT (notification_id) DO NOTHING",
        &[&notification_id, &kind.as_str(), &body],
    )
    .await
    .map(drop)
}

/// A notification waiting to be relayed.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    pub id: i64,
    pub notification_id: String,
    pub kind: String,
    pub body: Value,
}

/// Up to `limit` notifications not relayed yet, oldest first, locked for the caller's
/// transaction; rows another relay holds are skipped, so any number of relays share the work.
pub async fn take_unrelayed(
    client: &impl GenericClient,
    limit: i64,
) -> Result<Vec<Pending>, Error> {
    let rows = prepared::query(
        client,
        "SELECT id, notification_id, type, body FROM notification_outbox
             WHERE relayed_at IS NULL ORDER BY id LIMIT $1
             FOR UPDATE SKIP LOCKED",
        &[&limit],
    )
    .await?;
    Ok(rows
        .iter()
        .map(|row| Pending {
            id: row.get(0),
            notification_id: row.get(1),
            kind: row.get(2),
            body: row.get(3),
        })
        .collect())
}

/// Marks notifications relayed; they stay (their ids guard against a late duplicate) until
/// pruned after `WEBHOOK_EVENTS_RETENTION`.
pub async fn mark_relayed(client: &impl GenericClient, ids: &[i64]) -> Result<(), Error> {
    prepared::execute(
        client,
        "UPDATE notification_outbox SET relayed_at = now() WHERE id = ANY($1)",
        &[&ids],
    )
    .await
    .map(drop)
}

/// How many notifications wait to be relayed, and how long the oldest has waited (seconds).
pub async fn backlog(client: &impl GenericClient) -> Result<(i64, f64), Error> {
    let row = prepared::query_one(
        client,
        "SELECT count(*),
                COALESCE(extract(epoch FROM now() - min(created_at)), 0)::float8
             FROM notification_outbox WHERE relayed_at IS NULL",
        &[],
    )
    .await?;
    Ok((row.get(0), row.get(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(status: Status, processed: bool) -> Standing {
        Standing { status, processed }
    }

    #[test]
    fn only_real_transitions_are_reported() {
        use Status::*;
        let cases = [
            (None, at(Starting, false), None),
            (None, at(Active, false), Some(Kind::RecordingStarted)),
            (
                Some(at(Starting, false)),
                at(Active, false),
                Some(Kind::RecordingStarted),
            ),
            (Some(at(Active, false)), at(Active, false), None),
            (Some(at(Active, false)), at(Stopping, false), None),
            (Some(at(Stopping, false)), at(Stopped, false), None),
            (
                Some(at(Stopped, false)),
                at(Ready, true),
                Some(Kind::RecordingReady),
            ),
            (Some(at(Ready, true)), at(Ready, true), None),
            (
                Some(at(Stopped, false)),
                at(Failed, false),
                Some(Kind::RecordingFailed),
            ),
            (
                Some(at(Active, false)),
                at(Aborted, false),
                Some(Kind::RecordingFailed),
            ),
            (
                Some(at(Active, false)),
                at(Stopped, true),
                Some(Kind::RecordingStopped),
            ),
            (
                Some(at(Stopped, false)),
                at(Stopped, true),
                Some(Kind::RecordingStopped),
            ),
            (Some(at(Stopped, true)), at(Stopped, true), None),
        ];
        for (before, after, expected) in cases {
            assert_eq!(
                transition(before, after),
                expected,
                "{before:?} → {after:?}"
            );
        }
    }

    #[test]
    fn types_are_the_contract_names() {
        let names: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "recording.started",
                "recording.ready",
                "recording.failed",
                "recording.stopped",
                "recording.deleted",
                "room.finished"
            ]
        );
    }
}
