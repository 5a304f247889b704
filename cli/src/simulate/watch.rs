//! Watching for the outcome: the recording's row read until it is final or time is up, and
//! what is printed either way: the ready recording, or why it is not ready (its status and
//! error, and the messages waiting in the events and dead-letter queues).

use std::time::{Duration, Instant};

use deadpool_postgres::Pool;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use reqwest::Url;
use roomtape_shared::config::{AmqpSettings, Env};
use roomtape_shared::db::recordings::{self, Status};
use roomtape_shared::queue::topology::{self, DEAD_QUEUE, EVENTS_QUEUE};
use serde_json::{json, Value};

use super::events::Story;
use super::REQUEST_TIMEOUT;
use crate::error::CliError;
use crate::output::Output;

/// How often the recording's row is read while waiting.
const POLL_EVERY: Duration = Duration::from_millis(200);
/// How long the printed link plays the recording.
pub const LINK_LIFETIME: Duration = Duration::from_secs(3600);
/// SQLSTATE undefined_table: the processor has not migrated this database yet.
const UNDEFINED_TABLE: &str = "42P01";

/// What waiting came to.
pub struct Outcome {
    /// The recording's row, if it has one.
    pub row: Option<Value>,
    /// The `recordings` table was missing at the last look.
    pub missing_table: bool,
    pub waited: Duration,
}

/// Reads the recording's row until it is final (`ready`, `failed`, `aborted`) or `timeout` has
/// passed, with a spinner that shows its status.
pub async fn until_final(
    pool: &Pool,
    egress_id: &str,
    timeout: Duration,
) -> Result<Outcome, CliError> {
    let started = Instant::now();
    let spinner = spinner(egress_id);
    let (row, missing_table) = loop {
        let (row, missing_table) = read_row(pool, egress_id).await?;
        let status = status_of(row.as_ref());
        spinner.set_message(format!(
            "waiting for {egress_id} to be ready: {} ({:.1} s)",
            status.map_or("no recording row yet", Status::as_str),
            started.elapsed().as_secs_f64()
        ));
        let left = timeout.saturating_sub(started.elapsed());
        if status.is_some_and(Status::is_final) || left.is_zero() {
            break (row, missing_table);
        }
        tokio::time::sleep(left.min(POLL_EVERY)).await;
    };
    spinner.finish_and_clear();
    Ok(Outcome {
        row,
        missing_table,
        waited: started.elapsed(),
    })
}

/// The recording's row, and whether the `recordings` table is missing (the processor has never
/// migrated this database), which is waited out like a missing row.
pub async fn read_row(pool: &Pool, egress_id: &str) -> Result<(Option<Value>, bool), CliError> {
    let client = pool
        .get()
        .await
        .map_err(|e| CliError::DatabaseUnavailable(Box::new(e)))?;
    match recordings::find(&client, egress_id).await {
        Ok(recording) => Ok((recording.map(|r| json!(r)), false)),
        Err(error) if error.code().map(|c| c.code()) == Some(UNDEFINED_TABLE) => Ok((None, true)),
        Err(error) => Err(CliError::DatabaseUnavailable(Box::new(error))),
    }
}

/// The row's status; `None` without a row.
pub fn status_of(row: Option<&Value>) -> Option<Status> {
    row.and_then(|r| r["status"].as_str())
        .and_then(Status::parse)
}

/// Messages waiting in `roomtape.events` and in `roomtape.dead`, or why they could not be
/// counted.
struct QueueCounts {
    events: Result<u32, String>,
    dead: Result<u32, String>,
}

async fn queue_counts(env: &Env) -> QueueCounts {
    let connection = match AmqpSettings::from_env(env) {
        Ok(settings) => tokio::time::timeout(
            REQUEST_TIMEOUT,
            roomtape_shared::queue::connect(&settings, "roomtape-cli"),
        )
        .await
        .map_err(|_| "RabbitMQ did not answer".to_owned())
        .and_then(|c| c.map_err(|e| format!("cannot reach RabbitMQ: {e}"))),
        Err(error) => Err(error.to_string()),
    };
    let connection = match connection {
        Ok(connection) => connection,
        Err(reason) => {
            return QueueCounts {
                events: Err(reason.clone()),
                dead: Err(reason),
            }
        }
    };
    let counts = QueueCounts {
        events: ready_count(&connection, EVENTS_QUEUE).await,
        dead: ready_count(&connection, DEAD_QUEUE).await,
    };
    let _ = connection.close(200, "done".into()).await;
    counts
}

/// Messages ready in `queue`.
async fn ready_count(connection: &lapin::Connection, queue: &str) -> Result<u32, String> {
    topology::inspect(connection, queue)
        .await
        .map(|counts| counts.messages)
        .map_err(|e| format!("{queue} cannot be inspected: {e}"))
}

/// Why a recording is not ready, for people and for scripts.
pub struct Stuck<'a> {
    story: &'a Story,
    row: Option<&'a Value>,
    missing_table: bool,
    queues: QueueCounts,
    waited: Duration,
}

impl<'a> Stuck<'a> {
    /// What `outcome` says, and what the queues hold now.
    pub async fn of(story: &'a Story, outcome: &'a Outcome, env: &Env) -> Self {
        Self {
            story,
            row: outcome.row.as_ref(),
            missing_table: outcome.missing_table,
            queues: queue_counts(env).await,
            waited: outcome.waited,
        }
    }

    pub fn reason(&self) -> String {
        let mut reason = match self.row {
            Some(row) => {
                let status = row["status"].as_str().unwrap_or("?");
                let error = row["error"].as_str().unwrap_or("none");
                let waited = format!("{:.1} s", self.waited.as_secs_f64());
                match Status::parse(status) {
                    Some(Status::Failed | Status::Aborted) => {
                        format!("it is {status} after {waited} (error: {error})")
                    }
                    _ => format!("it is still {status} after {waited} (error: {error})"),
                }
            }
            None if self.missing_table => format!(
                "PostgreSQL has no recordings table after {:.1} s: roomtape-processor has not migrated this database; is it running?",
                self.waited.as_secs_f64()
            ),
            None => format!(
                "no recording row after {:.1} s: is roomtape-processor running?",
                self.waited.as_secs_f64()
            ),
        };
        let count = |count: &Result<u32, String>| match count {
            Ok(n) => n.to_string(),
            Err(why) => format!("unknown ({why})"),
        };
        reason.push_str(&format!(
            "; messages waiting in {EVENTS_QUEUE}: {}; dead letters in {DEAD_QUEUE}: {}",
            count(&self.queues.events),
            count(&self.queues.dead)
        ));
        if matches!(self.queues.dead, Ok(n) if n > 0) {
            reason.push_str(" (see roomtape dlq)");
        }
        reason
    }

    pub fn json(&self) -> Value {
        let count = |count: &Result<u32, String>| count.as_ref().ok().copied();
        json!({
            "ok": false,
            "room": self.story.room,
            "egress_id": self.story.egress_id,
            "status": self.row.and_then(|r| r["status"].as_str()),
            "error": self.row.and_then(|r| r["error"].as_str()),
            "waited_seconds": self.waited.as_secs_f64(),
            "events_waiting": count(&self.queues.events),
            "dead_letters": count(&self.queues.dead),
            "reason": self.reason(),
            "recording": self.row,
        })
    }
}

pub fn print_ready(out: &mut Output<'_>, story: &Story, row: &Value, link: &Url, waited: Duration) {
    let text = |name: &str| row[name].as_str().unwrap_or_default().to_owned();
    if out.json {
        out.json_value(&json!({
            "ok": true,
            "room": text("room_name"),
            "egress_id": text("egress_id"),
            "status": text("status"),
            "size_bytes": row["file_size_bytes"],
            "duration_seconds": row["duration_seconds"],
            "bucket": text("storage_bucket"),
            "key": text("storage_key"),
            "url": link.as_str(),
            "url_expires_in_seconds": LINK_LIFETIME.as_secs(),
            "public_url": row["file_url"],
            "waited_seconds": waited.as_secs_f64(),
            "recording": row,
        }));
        return;
    }
    out.check(
        true,
        "recording ready",
        format!("{} after {:.1} s", story.egress_id, waited.as_secs_f64()),
    );
    let size = match row["file_size_bytes"].as_i64() {
        Some(bytes) => format!("{bytes} bytes"),
        None => "unknown".to_owned(),
    };
    let duration = match row["duration_seconds"].as_f64() {
        Some(seconds) => format!("{seconds:.1} s"),
        None => "unknown".to_owned(),
    };
    let lines = [
        ("room", text("room_name")),
        ("egress id", text("egress_id")),
        ("status", text("status")),
        ("size", size),
        ("duration", duration),
        ("bucket", text("storage_bucket")),
        ("key", text("storage_key")),
        ("url", format!("{link}")),
        (
            "",
            "(presigned: plays for 1 h without credentials)".to_owned(),
        ),
        ("public url", text("file_url")),
        (
            "",
            "(the recording's file_url: plays only where the bucket allows public reads)"
                .to_owned(),
        ),
    ];
    for (label, value) in lines {
        out.line(format!("  {label:<11} {value}").trim_end());
    }
}

fn spinner(egress_id: &str) -> ProgressBar {
    let spinner = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg}") {
        spinner.set_style(style);
    }
    spinner.set_message(format!("waiting for {egress_id}"));
    spinner.enable_steady_tick(Duration::from_millis(100));
    spinner
}
