//! `recording_commands`: what became of each start command, by its idempotency key.

use deadpool_postgres::{GenericClient, Object};
use tokio_postgres::Error;

use roomtape_shared::db::prepared;

/// What an earlier delivery of the same command got to.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    /// LiveKit may or may not have started an egress: ask it before calling again.
    Calling,
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
        "SELECT state, reply FROM recording_commands WHERE message_id = $1",
        &[&message_id],
    )
    .await?;
    Ok(row.map(|row| {
        match (
            row.get::<_, &str>(0),
            row.get::<_, Option<serde_json::Value>>(1),
        ) {
            ("done", Some(reply)) => Progress::Done(reply),
            _ => Progress::Calling,
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

pub async fn done(
    client: &impl GenericClient,
    message_id: &str,
    egress_id: Option<&str>,
    reply: &serde_json::Value,
) -> Result<(), Error> {
    prepared::execute(client,
            "UPDATE recording_commands SET state = 'done', egress_id = $2, reply = $3, updated_at = now()
             WHERE message_id = $1",
            &[&message_id, &egress_id, reply],
        )
        .await
        .map(drop)
}
