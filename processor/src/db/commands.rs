//! `recording_commands`: what became of each start command, by its idempotency key.

use deadpool_postgres::{GenericClient, Object};
use tokio_postgres::Error;

use roomtape_shared::db::prepared;

/// What an earlier delivery of the same command got to.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    /// Not answered yet. The command was first seen at `first_seen_ms` (milliseconds since the
    /// epoch, the database's clock); `called`: a call to start it may have reached LiveKit, so
    /// it is only looked up, never called again.
    Calling { first_seen_ms: u64, called: bool },
    /// Finished; this is the reply it got.
    Done(serde_json::Value),
}

/// How long taking a command's lock may wait: longer than a holder legitimately keeps it (a start
/// waits at most its deadline for LiveKit), short enough that a stuck holder does not hold the
/// message waiting forever.
const LOCK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

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

    /// The command's lock and, when given, the lock of what it starts (`scope`: a room's
    /// composite, one participant of a room, a room's tracks), so two starts of one thing take
    /// turns while starts of different things do not wait on each other.
    pub async fn take_scoped(
        client: Object,
        message_id: &str,
        scope: Option<&str>,
    ) -> Result<Self, Error> {
        let mut keys = vec![format!("roomtape:command:{message_id}")];
        keys.extend(scope.map(|scope| format!("roomtape:room-start:{scope}")));
        Self::take_all(client, keys).await
    }

    /// Fails with `lock_not_available` (retried later) after waiting [`LOCK_TIMEOUT`] for a key.
    async fn take_all(client: Object, keys: Vec<String>) -> Result<Self, Error> {
        let mut lock = Self {
            client: Some(client),
            keys: Vec::with_capacity(keys.len()),
        };
        // A failure or a drop from here on closes the connection (see `Drop`), so the setting
        // never reaches the pool's other users.
        let set = format!("SET lock_timeout = '{}ms'", LOCK_TIMEOUT.as_millis());
        lock.client().batch_execute(&set).await?;
        for key in keys {
            // Pushed after it is held: release unlocks exactly what was taken.
            advisory(lock.client(), "pg_advisory_lock", &key).await?;
            lock.keys.push(key);
        }
        lock.client().batch_execute("RESET lock_timeout").await?;
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
        "SELECT state, reply, (extract(epoch FROM created_at) * 1000)::bigint, body_sha256,
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
                first_seen_ms: u64::try_from(row.get::<_, i64>(2)).unwrap_or_default(),
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

/// The database's clock, in milliseconds since the epoch: the one clock start deadlines and
/// stop times are measured on, whichever processor measures.
pub async fn now_ms(client: &impl GenericClient) -> Result<u64, Error> {
    let row = prepared::query_one(
        client,
        "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint",
        &[],
    )
    .await?;
    Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or_default())
}

/// Marks the command as about to call LiveKit, sent at the latest at `sent_at_ms`; committed
/// before the call is made.
pub async fn calling(
    client: &impl GenericClient,
    message_id: &str,
    room_name: &str,
    body_sha256: &[u8],
    sent_at_ms: u64,
) -> Result<(), Error> {
    prepared::execute(
        client,
        "INSERT INTO recording_commands (message_id, room_name, state, body_sha256, sent_at)
             VALUES ($1, $2, 'calling', $3, to_timestamp($4::float8 / 1000))
             ON CONFLICT (message_id) DO NOTHING",
        &[&message_id, &room_name, &body_sha256, &(sent_at_ms as f64)],
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

/// A command's reply, stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// Stored now; `called`: a call to start it may have reached LiveKit.
    Now { called: bool },
    /// It was already done (a stop cancelled it meanwhile): its reply stays.
    Earlier,
}

/// Stores the command's reply, unless it is done already.
pub async fn done(
    client: &impl GenericClient,
    message_id: &str,
    egress_id: Option<&str>,
    reply: &serde_json::Value,
) -> Result<Stored, Error> {
    let row = prepared::query_opt(
        client,
        "UPDATE recording_commands SET state = 'done', egress_id = $2, reply = $3, updated_at = now()
             WHERE message_id = $1 AND state = 'calling'
             RETURNING called_at IS NOT NULL",
        &[&message_id, &egress_id, reply],
    )
    .await?;
    Ok(row.map_or(Stored::Earlier, |row| Stored::Now { called: row.get(0) }))
}

/// A pending start a stop cancelled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cancelled {
    pub message_id: String,
    /// A call to start it may have reached LiveKit.
    pub called: bool,
}

/// A stop for the whole room, sent at the earliest at `sent_at_ms`: pending starts of it sent
/// before then are answered `reply` (cancelled), and so will be a start sent before then that
/// has not been seen yet. The room's row is written even when nothing is pending.
pub async fn stop_room(
    client: &impl GenericClient,
    room_name: &str,
    reply: &serde_json::Value,
    sent_at_ms: u64,
) -> Result<Vec<Cancelled>, Error> {
    let sent_at = sent_at_ms as f64;
    prepared::execute(
        client,
        "INSERT INTO room_stop_requests (room_name, requested_at)
             VALUES ($1, to_timestamp($2::float8 / 1000))
             ON CONFLICT (room_name) DO UPDATE
             SET requested_at = GREATEST(room_stop_requests.requested_at, EXCLUDED.requested_at)",
        &[&room_name, &sent_at],
    )
    .await?;
    let rows = prepared::query(
        client,
        "UPDATE recording_commands SET state = 'done', reply = $2, updated_at = now()
             WHERE room_name = $1 AND state = 'calling'
               AND (sent_at IS NULL OR sent_at < to_timestamp($3::float8 / 1000))
             RETURNING message_id, called_at IS NOT NULL",
        &[&room_name, reply, &sent_at],
    )
    .await?;
    Ok(rows
        .iter()
        .map(|row| Cancelled {
            message_id: row.get(0),
            called: row.get(1),
        })
        .collect())
}

/// Whether a stop for the room was sent after a start sent at the latest at `sent_at_ms`.
pub async fn stopped_since(
    client: &impl GenericClient,
    room_name: &str,
    sent_at_ms: u64,
) -> Result<bool, Error> {
    let sent_at = sent_at_ms as f64;
    let row = prepared::query_opt(
        client,
        "SELECT 1 FROM room_stop_requests
             WHERE room_name = $1 AND requested_at > to_timestamp($2::float8 / 1000)",
        &[&room_name, &sent_at],
    )
    .await?;
    Ok(row.is_some())
}
