//! `roomtape simulate`: plays one realistic recording into a running deployment, the way LiveKit
//! would. The embedded test video is written to the default storage profile's bucket where an
//! egress would have put it, LiveKit's webhooks for that room and its egress are signed and
//! posted to the ingestor, and the recording's row is watched until the processor has verified
//! the file and marked it `ready`; then the row and a link that plays it are printed.

mod events;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use deadpool_postgres::Pool;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use reqwest::Url;
use roomtape_shared::auth::WebhookSigner;
use roomtape_shared::config::{
    ingestor_url, AmqpSettings, ApiKeys, ConfigError, DatabaseSettings, Env, StorageProfile,
    StorageProfiles,
};
use roomtape_shared::db::{self, recordings};
use roomtape_shared::queue::topology::{self, DEAD_QUEUE, EVENTS_QUEUE};
use roomtape_shared::storage::{ObjectStore, StorageError};
use serde_json::{json, Value};

use crate::error::{CliError, EXIT_OK, EXIT_REFUSED};
use crate::output::{self, Output};
use events::Story;

/// The recording: 4 s of test pattern and a 440 Hz tone, H.264 + AAC, made by
/// `cli/assets/make-test-video.sh`.
const VIDEO: &[u8] = include_bytes!("../assets/test-video.mp4");
/// Its length, as ffprobe reports it.
const VIDEO_DURATION: Duration = Duration::from_secs(4);
const VIDEO_CONTENT_TYPE: &str = "video/mp4";
/// Where LiveKit posts webhooks, under `ROOMTAPE_INGESTOR_URL`.
const WEBHOOK_PATH: &str = "webhooks/livekit";
const WEBHOOK_CONTENT_TYPE: &str = "application/webhook+json";
/// How long one request to the ingestor, or reaching RabbitMQ, may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the recording's row is read while waiting.
const POLL_EVERY: Duration = Duration::from_millis(200);
/// How long the printed link plays the recording.
const LINK_LIFETIME: Duration = Duration::from_secs(3600);
/// SQLSTATE undefined_table: the processor has not migrated this database yet.
const UNDEFINED_TABLE: &str = "42P01";
/// How much of the ingestor's answer a refusal quotes.
const MAX_QUOTED_BODY: usize = 500;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Needs LIVEKIT_API_KEY/LIVEKIT_API_SECRET (the pair the ingestor verifies), ROOMTAPE_INGESTOR_URL (default http://127.0.0.1:8080), the default storage profile (S3_*; the bucket must exist), DATABASE_URL and AMQP_URL.\nExit status: 0 ready; 1 the ingestor refused a webhook, or the recording was not ready within --timeout (the reason, its status and the dead-letter count are printed); 2 bad settings or no such bucket; 3 a service could not be reached."
)]
pub struct SimulateArgs {
    /// The LiveKit room to simulate (default: simulate-<random>).
    #[arg(long, value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub room: Option<String>,
}

/// Everything the command needs from the environment, read before anything is done.
struct Setup {
    signer: WebhookSigner,
    webhook_url: Url,
    profiles: StorageProfiles,
    database: DatabaseSettings,
}

impl Setup {
    fn from_env(env: &Env) -> Result<Self, CliError> {
        let signer = WebhookSigner::for_keys(&ApiKeys::from_env(env)?)
            .ok_or_else(|| ConfigError::Missing("LIVEKIT_API_KEY".into()))?;
        let mut base = ingestor_url(env)?;
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let webhook_url = base
            .join(WEBHOOK_PATH)
            .map_err(|e| ConfigError::invalid("ROOMTAPE_INGESTOR_URL", e))?;
        Ok(Self {
            signer,
            webhook_url,
            profiles: StorageProfiles::from_env(env)?,
            database: DatabaseSettings::from_env(env)?,
        })
    }
}

/// Uploads, posts the webhooks, waits for `ready` (at most `timeout`) and prints the outcome.
pub async fn run(
    args: &SimulateArgs,
    env: &Env,
    timeout: Duration,
    out: &mut Output<'_>,
) -> Result<u8, CliError> {
    let setup = Setup::from_env(env)?;
    let profile = setup.profiles.default_profile();
    let store = ObjectStore::new(&setup.profiles);
    let pool = db::pool(&setup.database)?;
    // Before anything is written: a database we cannot read would leave us blind.
    read_row(&pool, "").await?;

    let story = Story::new(
        args.room.as_deref(),
        profile,
        VIDEO.len(),
        VIDEO_DURATION,
        unix_now(),
    );
    let webhooks = story.webhooks();
    let steps = output::progress(1 + webhooks.len() as u64, "simulate");

    steps.set_message(format!("uploading s3://{}/{}", profile.bucket, story.key));
    upload(&store, profile, &story.key).await?;
    steps.inc(1);

    let http = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .map_err(|e| CliError::IngestorUnreachable(setup.webhook_url.to_string(), e))?;
    for (posted, (name, body)) in webhooks.into_iter().enumerate() {
        steps.set_message(format!("posting {name}"));
        if let Err(error) = post(&http, &setup, name, body).await {
            steps.abandon();
            if posted == 0 {
                // Nothing refers to the file: leave the bucket as it was.
                let _ = store.delete(profile, &story.key).await;
            }
            return Err(error);
        }
        steps.inc(1);
    }
    steps.finish_and_clear();

    let started = Instant::now();
    let spinner = spinner(&story.egress_id);
    let (row, missing_table) = loop {
        let (row, missing_table) = read_row(&pool, &story.egress_id).await?;
        let status = status_of(row.as_ref());
        spinner.set_message(format!(
            "waiting for {} to be ready: {status} ({:.1} s)",
            story.egress_id,
            started.elapsed().as_secs_f64()
        ));
        let left = timeout.saturating_sub(started.elapsed());
        if ["ready", "failed", "aborted"].contains(&status.as_str()) || left.is_zero() {
            break (row, missing_table);
        }
        tokio::time::sleep(left.min(POLL_EVERY)).await;
    };
    spinner.finish_and_clear();
    let waited = started.elapsed();

    match row {
        Some(row) if row["status"] == "ready" => {
            let key = row["storage_key"].as_str().unwrap_or(&story.key).to_owned();
            let link = store
                .presigned_get(profile, &key, LINK_LIFETIME)
                .await
                .map_err(CliError::Storage)?;
            print_ready(out, &story, &row, &link, waited);
            Ok(EXIT_OK)
        }
        row => {
            let queues = queue_counts(env).await;
            let stuck = Stuck {
                story: &story,
                row: row.as_ref(),
                missing_table,
                queues,
                waited,
            };
            if out.json {
                out.json_value(&stuck.json());
                Ok(EXIT_REFUSED)
            } else {
                Err(CliError::NotReady {
                    egress_id: story.egress_id.clone(),
                    room: story.room.clone(),
                    reason: stuck.reason(),
                })
            }
        }
    }
}

/// Writes the video where the egress would have; a bucket that is not there is the operator's to
/// create.
async fn upload(store: &ObjectStore, profile: &StorageProfile, key: &str) -> Result<(), CliError> {
    let no_bucket = || CliError::NoBucket {
        bucket: profile.bucket.clone(),
        profile: profile.name.clone(),
        endpoint: profile.endpoint.to_string(),
    };
    // Some S3 servers (s3s-fs) make the bucket on a PUT into one that is not there: ask first.
    if !store
        .bucket_exists(profile)
        .await
        .map_err(CliError::Storage)?
    {
        return Err(no_bucket());
    }
    match store
        .put(profile, key, VIDEO.to_vec(), VIDEO_CONTENT_TYPE)
        .await
    {
        Ok(()) => Ok(()),
        // A PUT finds nothing to be missing but the bucket.
        Err(StorageError::NotFound { .. }) => Err(no_bucket()),
        Err(error) => Err(CliError::Storage(error)),
    }
}

/// Posts one webhook as LiveKit does; anything but 2xx stops the simulation.
async fn post(
    http: &reqwest::Client,
    setup: &Setup,
    event: &'static str,
    body: String,
) -> Result<(), CliError> {
    let token = setup.signer.sign(body.as_bytes());
    let response = http
        .post(setup.webhook_url.clone())
        .header(CONTENT_TYPE, WEBHOOK_CONTENT_TYPE)
        .header(AUTHORIZATION, token)
        .body(body)
        .send()
        .await
        .map_err(|e| CliError::IngestorUnreachable(setup.webhook_url.to_string(), e))?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let mut body = response.text().await.unwrap_or_default().trim().to_owned();
    if body.len() > MAX_QUOTED_BODY {
        let mut cut = MAX_QUOTED_BODY;
        while !body.is_char_boundary(cut) {
            cut -= 1;
        }
        body.truncate(cut);
        body.push('…');
    }
    let hint = match status.as_u16() {
        401 => " (is LIVEKIT_API_KEY / LIVEKIT_API_SECRET the pair the ingestor verifies with?)",
        _ => "",
    };
    Err(CliError::IngestorRefused {
        url: setup.webhook_url.to_string(),
        event,
        status,
        body,
        hint,
    })
}

/// The recording's row, and whether the `recordings` table is missing (the processor has never
/// migrated this database), which is waited out like a missing row.
async fn read_row(pool: &Pool, egress_id: &str) -> Result<(Option<Value>, bool), CliError> {
    let client = pool
        .get()
        .await
        .map_err(|e| CliError::DatabaseUnavailable(Box::new(e)))?;
    match recordings::snapshot(&client, egress_id).await {
        Ok(row) => Ok((row, false)),
        Err(error) if error.code().map(|c| c.code()) == Some(UNDEFINED_TABLE) => Ok((None, true)),
        Err(error) => Err(CliError::DatabaseUnavailable(Box::new(error))),
    }
}

fn status_of(row: Option<&Value>) -> String {
    match row.and_then(|r| r["status"].as_str()) {
        Some(status) => status.to_owned(),
        None => "no recording row yet".to_owned(),
    }
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
struct Stuck<'a> {
    story: &'a Story,
    row: Option<&'a Value>,
    missing_table: bool,
    queues: QueueCounts,
    waited: Duration,
}

impl Stuck<'_> {
    fn reason(&self) -> String {
        let mut reason = match self.row {
            Some(row) => {
                let status = row["status"].as_str().unwrap_or("?");
                let error = row["error"].as_str().unwrap_or("none");
                let waited = format!("{:.1} s", self.waited.as_secs_f64());
                match status {
                    "failed" | "aborted" => format!("it is {status} after {waited} (error: {error})"),
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

    fn json(&self) -> Value {
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

fn print_ready(out: &mut Output<'_>, story: &Story, row: &Value, link: &Url, waited: Duration) {
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

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_video_is_a_small_faststart_mp4() {
        assert!(VIDEO.len() < 150 * 1024, "{} bytes", VIDEO.len());
        // ftyp first, then moov before mdat: browsers can start playing at once.
        assert_eq!(&VIDEO[4..8], b"ftyp");
        let boxes: Vec<&[u8]> = {
            let mut at = 0;
            let mut names = Vec::new();
            while at + 8 <= VIDEO.len() {
                let size =
                    u32::from_be_bytes([VIDEO[at], VIDEO[at + 1], VIDEO[at + 2], VIDEO[at + 3]]);
                names.push(&VIDEO[at + 4..at + 8]);
                at += size as usize;
            }
            names
        };
        let position = |name: &[u8]| boxes.iter().position(|b| *b == name);
        assert!(position(b"moov") < position(b"mdat"), "{boxes:?}");
    }

    #[test]
    fn the_webhook_url_is_under_the_ingestor_url() {
        let url = |base: &str| {
            let env = Env::from_pairs([
                ("ROOMTAPE_INGESTOR_URL", base),
                ("LIVEKIT_API_KEY", "devkey"),
                ("LIVEKIT_API_SECRET", "secret"),
                ("S3_ENDPOINT", "http://127.0.0.1:8014"),
                ("S3_BUCKET", "recordings"),
                ("S3_ACCESS_KEY_ID", "k"),
                ("S3_SECRET_ACCESS_KEY", "s"),
                ("DATABASE_URL", "postgres://roomtape@127.0.0.1/roomtape"),
            ]);
            match Setup::from_env(&env) {
                Ok(setup) => setup.webhook_url.to_string(),
                Err(error) => format!("{error}"),
            }
        };
        assert_eq!(
            url("http://127.0.0.1:8080"),
            "http://127.0.0.1:8080/webhooks/livekit"
        );
        assert_eq!(
            url("https://hooks.example.com/roomtape"),
            "https://hooks.example.com/roomtape/webhooks/livekit"
        );
    }
}
