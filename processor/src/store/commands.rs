//! `recording_commands`: what became of each start command, by its idempotency key.

use deadpool_postgres::{GenericClient, Object};
use tokio_postgres::Error;

use roomtape_shared::db::prepared;

/// What an earlier delivery of the same command got to.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    /// LiveKit may or may not have started an egress: ask it before calling again. The command
    /// was first seen at this time (seconds since the epoch).
    Calling { first_seen: u64 },
    /// Finished; this is the reply it got.
    Done(serde_json::Value),
}

/// A command's session-level advisory lock and the connection holding it, so deliveries of one
/// command run one at a time. Released by [`CommandLock::release`]; if that fails, or the lock
/// is dropped without it (a panic), the connection is closed instead of going back to the pool,
/// which releases the lock too.
#[derive(Debug)]
pub struct CommandLock {
    client: Option<Object>,
    message_id: String,
}

impl CommandLock {
    pub async fn take(client: Object, message_id: &str) -> Result<Self, Error> {
        lock(&client, message_id).await?;
        Ok(Self {
            client: Some(client),
            message_id: message_id.to_owned(),
        })
    }

    pub fn client(&self) -> &Object {
        // Only `release` and `drop` take it out, and both consume the lock.
        self.client.as_ref().expect("the lock holds its connection")
    }

    pub async fn release(mut self) {
        if let Some(client) = self.client.take() {
            if unlock(&client, &self.message_id).await.is_err() {
                drop(Object::take(client));
            }
        }
    }
}

impl Drop for CommandLock {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            drop(Object::take(client));
        }
    }
}

async fn lock(client: &impl GenericClient, message_id: &str) -> Result<(), Error> {
    prepared::execute(
        client,
        "SELECT pg_advisory_lock(hashtextextended('roomtape:command:' || $1, 0))",
        &[&message_id],
    )
    .await
    .map(drop)
}

async fn unlock(client: &impl GenericClient, message_id: &str) -> Result<(), Error> {
    prepared::execute(
        client,
        "SELECT pg_advisory_unlock(hashtextextended('roomtape:command:' || $1, 0))",
        &[&message_id],
    )
    .await
    .map(drop)
}

pub async fn progress(
    client: &impl GenericClient,
    message_id: &str,
) -> Result<Option<Progress>, Error> {
    let row = prepared::query_opt(
        client,
        "SELECT state, reply, extract(epoch FROM created_at)::bigint
             FROM recording_commands WHERE message_id = $1",
        &[&message_id],
    )
    .await?;
    Ok(row.map(|row| {
        match (
            row.get::<_, &str>(0),
            row.get::<_, Option<serde_json::Value>>(1),
        ) {
            ("done", Some(reply)) => Progress::Done(reply),
            _ => Progress::Calling {
                first_seen: u64::try_from(row.get::<_, i64>(2)).unwrap_or_default(),
            },
        }
    }))
}

/// Marks the command as about to call LiveKit; committed before the call is made.
pub async fn calling(
    client: &impl GenericClient,
    message_id: &str,
    room_name: &str,
) -> Result<(), Error> {
    prepared::execute(
        client,
        "INSERT INTO recording_commands (message_id, room_name, state) VALUES ($1, $2, 'calling')
             ON CONFLICT (message_id) DO NOTHING",
        &[&message_id, &room_name],
    )
    .await
    .map(drop)
}

/// Stores the command's reply; `false` if it was already done (a stop cancelled it meanwhile).
pub async fn done(
    client: &impl GenericClient,
    message_id: &str,
    egress_id: Option<&str>,
    reply: &serde_json::Value,
) -> Result<bool, Error> {
    let updated = prepared::execute(
        client,
        "UPDATE recording_commands SET state = 'done', egress_id = $2, reply = $3, updated_at = now()
             WHERE message_id = $1 AND state = 'calling'",
        &[&message_id, &egress_id, reply],
    )
    .await?;
    Ok(updated == 1)
}

/// A stop for the whole room: pending starts of it are answered `reply` (cancelled), and a start
/// sent before now that has not been seen yet will be refused when it arrives. Returns the ids
/// of the starts it cancelled.
pub async fn stop_room(
    client: &impl GenericClient,
    room_name: &str,
    reply: &serde_json::Value,
) -> Result<Vec<String>, Error> {
    prepared::execute(
        client,
        "INSERT INTO room_stop_requests (room_name) VALUES ($1)
             ON CONFLICT (room_name) DO UPDATE SET requested_at = now()",
        &[&room_name],
    )
    .await?;
    let rows = prepared::query(
        client,
        "UPDATE recording_commands SET state = 'done', reply = $2, updated_at = now()
             WHERE room_name = $1 AND state = 'calling'
             RETURNING message_id",
        &[&room_name, reply],
    )
    .await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// Whether a stop for the room arrived at or after `sent_at` (seconds since the epoch).
pub async fn stopped_since(
    client: &impl GenericClient,
    room_name: &str,
    sent_at: u64,
) -> Result<bool, Error> {
    let sent_at = sent_at as f64;
    let row = prepared::query_opt(
        client,
        "SELECT 1 FROM room_stop_requests
             WHERE room_name = $1 AND requested_at >= to_timestamp($2)",
        &[&room_name, &sent_at],
    )
    .await?;
    Ok(row.is_some())
}
