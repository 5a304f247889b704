//! `recording_commands`: what became of each start command, by its idempotency key.

use deadpool_postgres::{GenericClient, Object};
use tokio_postgres::Error;

use roomtape_shared::db::prepared;

/// What an earlier delivery of the same command got to.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    /// Not answered yet. The command was first seen at `first_seen` (seconds since the epoch);
    /// `called`: a call to start it may have reached LiveKit, so it is only looked up, never
    /// called again.
    Calling { first_seen: u64, called: bool },
    /// Finished; this is the reply it got.
    Done(serde_json::Value),
}

/// Session-level advisory locks on one connection: a command's, so deliveries of one command run
/// one at a time, and for a start also its room's, so two starts of one room take turns and the
/// second sees the first's recording. Always taken command first, then room, so two holders
/// never wait on each other. Released by [`CommandLock::release`]; if that fails, or the lock
/// is dropped without it (a panic), the connection is closed instead of going back to the pool,
/// which releases the locks too.
#[derive(Debug)]
pub struct CommandLock {
    client: Option<Object>,
    keys: Vec<String>,
}

impl CommandLock {
    /// The command's lock.
    pub async fn take(client: Object, message_id: &str) -> Result<Self, Error> {
        Self::take_all(client, vec![format!("roomtape:command:{message_id}")]).await
    }

    /// The command's lock and its room's.
    pub async fn take_with_room(
        client: Object,
        message_id: &str,
        room_name: &str,
    ) -> Result<Self, Error> {
        let keys = vec![
            format!("roomtape:command:{message_id}"),
            format!("roomtape:room-start:{room_name}"),
        ];
        Self::take_all(client, keys).await
    }

    async fn take_all(client: Object, keys: Vec<String>) -> Result<Self, Error> {
        let mut lock = Self {
            client: Some(client),
            keys: Vec::with_capacity(keys.len()),
        };
        for key in keys {
            // Pushed after it is held: release unlocks exactly what was taken.
            advisory(lock.client(), "pg_advisory_lock", &key).await?;
            lock.keys.push(key);
        }
        Ok(lock)
    }

    pub fn client(&self) -> &Object {
        // Only `release` and `drop` take it out, and both consume the lock.
        self.client.as_ref().expect("the lock holds its connection")
    }

    pub async fn release(mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        for key in self.keys.iter().rev() {
            if advisory(&client, "pg_advisory_unlock", key).await.is_err() {
                drop(Object::take(client));
                return;
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

/// `function` is `pg_advisory_lock` or `pg_advisory_unlock`.
async fn advisory(client: &impl GenericClient, function: &str, key: &str) -> Result<(), Error> {
    let sql = format!("SELECT {function}(hashtextextended($1, 0))");
    prepared::execute(client, &sql, &[&key]).await.map(drop)
}

/// What an earlier delivery of a command left, and the fingerprint of the body it came with.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    pub progress: Progress,
    /// `None` for commands stored before fingerprints were kept.
    pub body_sha256: Option<Vec<u8>>,
}

impl Seen {
    /// Whether a command with `fingerprint` may take this one's place.
    pub fn same_body(&self, fingerprint: &[u8]) -> bool {
        self.body_sha256
            .as_deref()
            .is_none_or(|seen| seen == fingerprint)
    }
}

pub async fn seen(client: &impl GenericClient, message_id: &str) -> Result<Option<Seen>, Error> {
    let row = prepared::query_opt(
        client,
        "SELECT state, reply, extract(epoch FROM created_at)::bigint, body_sha256,
                 called_at IS NOT NULL
             FROM recording_commands WHERE message_id = $1",
        &[&message_id],
    )
    .await?;
    Ok(row.map(|row| {
        let progress = match (
            row.get::<_, &str>(0),
            row.get::<_, Option<serde_json::Value>>(1),
        ) {
            ("done", Some(reply)) => Progress::Done(reply),
            _ => Progress::Calling {
                first_seen: u64::try_from(row.get::<_, i64>(2)).unwrap_or_default(),
                called: row.get(4),
            },
        };
        Seen {
            progress,
            body_sha256: row.get(3),
        }
    }))
}

pub async fn progress(
    client: &impl GenericClient,
    message_id: &str,
) -> Result<Option<Progress>, Error> {
    Ok(seen(client, message_id).await?.map(|seen| seen.progress))
}

/// Marks the command as about to call LiveKit; committed before the call is made.
pub async fn calling(
    client: &impl GenericClient,
    message_id: &str,
    room_name: &str,
    body_sha256: &[u8],
) -> Result<(), Error> {
    prepared::execute(
        client,
        "INSERT INTO recording_commands (message_id, room_name, state, body_sha256)
             VALUES ($1, $2, 'calling', $3)
             ON CONFLICT (message_id) DO NOTHING",
        &[&message_id, &room_name, &body_sha256],
    )
    .await
    .map(drop)
}

/// Marks that the start is being sent to LiveKit (`true`, committed before the call), or that
/// LiveKit's answer showed nothing was started (`false`).
pub async fn called(
    client: &impl GenericClient,
    message_id: &str,
    called: bool,
) -> Result<(), Error> {
    prepared::execute(
        client,
        "UPDATE recording_commands
             SET called_at = CASE WHEN $2 THEN now() END, updated_at = now()
             WHERE message_id = $1",
        &[&message_id, &called],
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
