//! `roomtape doctor`: one line per check of the configuration and of every service roomtape
//! depends on, with what to fix when one fails. Exit status 1 when a check that is not
//! `--skip`ped fails. Every check has a deadline, so a service that hangs fails its line rather
//! than the whole run.

use std::future::Future;
use std::time::Duration;

use roomtape_shared::config::{
    ingestor_url, AmqpSettings, DatabaseSettings, Env, LiveKitSettings, StorageProfile,
    StorageProfiles, ThumbnailSettings,
};
use roomtape_shared::events::proto::ListEgressRequest;
use roomtape_shared::livekit::{EgressClient, EgressError};
use roomtape_shared::notify::{Attempt, NotifySettings};
use roomtape_shared::queue::topology::{COMMANDS_QUEUE, DEAD_QUEUE, EVENTS_QUEUE};
use roomtape_shared::queue::{self, topology, topology::QueueCounts};
use roomtape_shared::storage::{self, ObjectStore};
use roomtape_shared::{db, ffmpeg, Chain};
use serde_json::json;

use crate::error::{CliError, EXIT_OK, EXIT_REFUSED};
use crate::output::Output;

/// How long one check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(10);
/// What the storage checks write, read and delete.
const PROBE_KEY: &str = "roomtape-doctor/probe.txt";
const PROBE_BODY: &[u8] = b"roomtape doctor probe\n";

#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    /// Run a check but leave it out of the exit status (repeatable): settings, database,
    /// broker, storage, livekit, ffmpeg, ingestor, notify.
    #[arg(long, value_name = "CHECK")]
    skip: Vec<String>,
}

/// One line of the report.
#[derive(Debug, Clone, serde::Serialize)]
struct Check {
    /// The group `--skip` names (`storage`), and the line's own name (`storage default: put`).
    group: &'static str,
    name: String,
    ok: bool,
    detail: String,
    skipped: bool,
}

/// The report as it is being written.
#[derive(Debug, Default)]
struct Report {
    checks: Vec<Check>,
}

impl Report {
    fn pass(&mut self, group: &'static str, name: impl Into<String>, detail: impl Into<String>) {
        self.add(group, name, true, detail);
    }

    fn fail(&mut self, group: &'static str, name: impl Into<String>, detail: impl Into<String>) {
        self.add(group, name, false, detail);
    }

    fn add(
        &mut self,
        group: &'static str,
        name: impl Into<String>,
        ok: bool,
        detail: impl Into<String>,
    ) {
        self.checks.push(Check {
            group,
            name: name.into(),
            ok,
            detail: detail.into(),
            skipped: false,
        });
    }
}

pub async fn run(args: &DoctorArgs, env: &Env, out: &mut Output<'_>) -> Result<u8, CliError> {
    let mut report = Report::default();
    database(env, &mut report).await;
    broker(env, &mut report).await;
    storage_profiles(env, &mut report).await;
    livekit(env, &mut report).await;
    ffmpeg(env, &mut report).await;
    ingestor(env, &mut report).await;
    notify_endpoints(env, &mut report).await;
    for check in &mut report.checks {
        check.skipped = args
            .skip
            .iter()
            .any(|skip| skip == check.group || *skip == check.name);
    }
    let failed = report.checks.iter().filter(|c| !c.ok && !c.skipped).count();
    if out.json {
        out.json_value(&json!({"ok": failed == 0, "checks": report.checks}));
    } else {
        for check in &report.checks {
            let detail = if check.skipped && !check.ok {
                format!("{} (skipped)", check.detail)
            } else {
                check.detail.clone()
            };
            out.check(check.ok, &check.name, detail);
        }
        out.line(match failed {
            0 => "all checks passed".to_owned(),
            n => format!("{n} check(s) failed"),
        });
    }
    Ok(if failed == 0 { EXIT_OK } else { EXIT_REFUSED })
}

/// Runs `check` within the deadline; a timeout is an error naming it.
async fn within<T, E: std::error::Error + 'static>(
    check: impl Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(CHECK_TIMEOUT, check).await {
        Ok(result) => result.map_err(|error| Chain(&error).to_string()),
        Err(_) => Err(format!("no answer within {CHECK_TIMEOUT:?}")),
    }
}

async fn database(env: &Env, report: &mut Report) {
    let settings = match DatabaseSettings::from_env(env) {
        Ok(settings) => settings,
        Err(error) => return report.fail("database", "database", error.to_string()),
    };
    let (client, driver) = match within(db::connect(&settings)).await {
        Ok(pair) => pair,
        Err(error) => {
            let fix = "is PostgreSQL running, and DATABASE_URL and DATABASE_SCHEMA right?";
            return report.fail("database", "database", format!("{error}; {fix}"));
        }
    };
    let latest = db::latest_version();
    let schema = &settings.schema;
    match within(db::applied_version(&client)).await {
        Ok(version) if version >= latest => report.pass(
            "database",
            "database",
            format!("reachable; schema {schema} at V{version}"),
        ),
        Ok(version) => report.fail(
            "database",
            "database",
            format!("schema {schema} at V{version}, this build needs V{latest}: run `roomtape-processor migrate`"),
        ),
        Err(error) => report.fail("database", "database", error),
    }
    match within(db::session_kept(&client)).await {
        Ok(true) if db::transaction_pooler(&settings.config) => report.fail(
            "database",
            "database session",
            format!("{}; {TRANSACTION_POOLER_FIX}", TRANSACTION_POOLER_PORT),
        ),
        Ok(true) => report.pass("database", "database session", "kept between transactions"),
        Ok(false) => report.fail(
            "database",
            "database session",
            format!("not kept between transactions (a pooler in transaction mode?); {TRANSACTION_POOLER_FIX}"),
        ),
        Err(error) => report.fail("database", "database session", error),
    }
    drop(client);
    let _ = driver.await;
}

const TRANSACTION_POOLER_PORT: &str =
    "DATABASE_URL names port 6543 of Supabase's pooler, its transaction mode";
/// roomtape holds session advisory locks and reuses prepared statements, which a pooler in
/// transaction mode hands to other clients' transactions.
const TRANSACTION_POOLER_FIX: &str = "roomtape needs a direct connection or the pooler's session mode (Supabase: port 5432), since it holds session locks and prepared statements";

async fn broker(env: &Env, report: &mut Report) {
    let settings = match AmqpSettings::from_env(env) {
        Ok(settings) => settings,
        Err(error) => return report.fail("broker", "broker", error.to_string()),
    };
    let connection = match within(queue::connect(&settings, "roomtape-doctor")).await {
        Ok(connection) => connection,
        Err(error) => {
            let fix = "is RabbitMQ running, and AMQP_URL right (user, password, vhost)?";
            return report.fail("broker", "broker", format!("{error}; {fix}"));
        }
    };
    report.pass("broker", "broker", "reachable");
    let mut counts = Vec::new();
    for queue in [EVENTS_QUEUE, COMMANDS_QUEUE, DEAD_QUEUE] {
        counts.push((queue, within(topology::inspect(&connection, queue)).await));
    }
    let missing: Vec<&str> = counts
        .iter()
        .filter(|(_, declared)| declared.is_err())
        .map(|(queue, _)| *queue)
        .collect();
    if missing.is_empty() {
        report.pass("broker", "broker topology", "exchanges and queues declared");
    } else {
        let fix = "start roomtape-processor or roomtape-ingestor once: they declare it";
        report.fail(
            "broker",
            "broker topology",
            format!("missing {}; {fix}", missing.join(", ")),
        );
    }
    for (queue, declared) in &counts {
        let Ok(QueueCounts {
            messages,
            consumers,
        }) = declared
        else {
            continue;
        };
        match *queue {
            DEAD_QUEUE if *messages == 0 => report.pass("broker", "dead letters", "none"),
            DEAD_QUEUE => report.fail(
                "broker",
                "dead letters",
                format!("{messages} in {DEAD_QUEUE}; see `roomtape dlq list`, fix the cause, then `roomtape dlq replay`"),
            ),
            _ if *consumers > 0 => report.pass("broker", format!("consumers {queue}"), format!("{consumers} consuming, {messages} waiting")),
            _ => report.fail("broker", format!("consumers {queue}"), format!("nobody consumes it ({messages} waiting): is roomtape-processor running?")),
        }
    }
    let _ = connection.close(200, "checked".into()).await;
}

async fn storage_profiles(env: &Env, report: &mut Report) {
    let profiles = match StorageProfiles::from_env(env) {
        Ok(profiles) => profiles,
        Err(error) => return report.fail("storage", "storage", error.to_string()),
    };
    let objects = ObjectStore::new(&profiles);
    for profile in profiles.iter() {
        storage_profile(&objects, profile, report).await;
    }
}

/// PUT, HEAD, a ranged GET (what the recording probe reads), presigned GET and DELETE of a probe
/// object; the public URL if there is a base.
async fn storage_profile(objects: &ObjectStore, profile: &StorageProfile, report: &mut Report) {
    let name = |step: &str| format!("storage {} {step}", profile.name);
    let fix = format!(
        "check the endpoint, bucket {:?} and keys of storage profile {}",
        profile.bucket, profile.name
    );
    let put = objects.put(profile, PROBE_KEY, PROBE_BODY.to_vec(), "text/plain");
    if let Err(error) = within(put).await {
        return report.fail("storage", name("put"), format!("{error}; {fix}"));
    }
    report.pass(
        "storage",
        name("put"),
        format!("s3://{}/{PROBE_KEY}", profile.bucket),
    );
    match within(async { objects.head(profile, PROBE_KEY).await.0 }).await {
        Ok(object) => report.pass(
            "storage",
            name("head"),
            format!("{} bytes", object.size_bytes),
        ),
        Err(error) => report.fail("storage", name("head"), format!("{error}; {fix}")),
    }
    // What the processor's recording probe reads: ranges, not whole files.
    match within(objects.get_range(profile, PROBE_KEY, 9, 6)).await {
        Ok(read) if PROBE_BODY.get(9..15) == Some(read.bytes.as_slice()) => report.pass(
            "storage",
            name("ranged get"),
            "bytes 9-14 as written (the recording probe reads ranges)",
        ),
        Ok(read) => report.fail(
            "storage",
            name("ranged get"),
            format!(
                "asked for 6 bytes at 9, got {:?}: the recording probe cannot read this bucket's files",
                String::from_utf8_lossy(&read.bytes)
            ),
        ),
        Err(error) => report.fail("storage", name("ranged get"), format!("{error}; {fix}")),
    }
    let presigned =
        within(objects.presigned_get(profile, PROBE_KEY, Duration::from_secs(300))).await;
    match presigned {
        Ok(url) => {
            serves_probe(
                report,
                name("presigned get"),
                url.as_str(),
                "the presigned URL",
            )
            .await
        }
        Err(error) => report.fail("storage", name("presigned get"), error),
    }
    // The probe's key is a plain one: it always has a URL.
    if let (Some(_), Some(url)) = (
        &profile.public_base_url,
        storage::public_url(profile, PROBE_KEY),
    ) {
        serves_probe(
            report,
            name("public url"),
            url.as_str(),
            "S3_PUBLIC_BASE_URL (or the custom domain)",
        )
        .await;
    }
    match within(objects.delete(profile, PROBE_KEY)).await {
        Ok(()) => report.pass("storage", name("delete"), "probe removed"),
        Err(error) => report.fail("storage", name("delete"), format!("{error}; {fix}")),
    }
}

/// Whether `url` answers the probe's bytes.
async fn serves_probe(report: &mut Report, name: String, url: &str, what: &str) {
    let fetched =
        within(async { reqwest::get(url).await?.error_for_status()?.bytes().await }).await;
    match fetched {
        Ok(body) if body.as_ref() == PROBE_BODY => report.pass("storage", name, "serves the probe"),
        Ok(_) => report.fail(
            "storage",
            name,
            format!("{what} serves something else than the probe"),
        ),
        Err(error) => report.fail("storage", name, format!("{error}; check {what}")),
    }
}

async fn livekit(env: &Env, report: &mut Report) {
    let settings = match LiveKitSettings::from_env(env) {
        Ok(settings) => settings,
        Err(error) => return report.fail("livekit", "livekit", error.to_string()),
    };
    let url = settings.url.to_string();
    let client = match EgressClient::new(settings) {
        Ok(client) => client,
        Err(error) => return report.fail("livekit", "livekit", Chain(&error).to_string()),
    };
    let listed =
        tokio::time::timeout(CHECK_TIMEOUT, client.list(&ListEgressRequest::default())).await;
    match listed {
        Ok(Ok(egresses)) => report.pass("livekit", "livekit", format!("credentials accepted at {url} ({} egress(es))", egresses.len())),
        Ok(Err(EgressError::Unreachable { .. })) | Err(_) => report.fail(
            "livekit",
            "livekit",
            format!("no LiveKit server answers at {url} (the local set-up runs none; `--skip livekit` leaves this out)"),
        ),
        Ok(Err(error)) => report.fail(
            "livekit",
            "livekit",
            format!("{}; check LIVEKIT_API_KEY and LIVEKIT_API_SECRET", Chain(&error)),
        ),
    }
}

/// The ffmpeg the processor takes thumbnails with (of recordings it did not start), as this
/// machine runs it: run doctor where the processor runs (its container image has both).
async fn ffmpeg(env: &Env, report: &mut Report) {
    let settings = match ThumbnailSettings::from_env(env) {
        Ok(settings) => settings,
        Err(error) => return report.fail("ffmpeg", "ffmpeg", error.to_string()),
    };
    if !settings.enabled {
        return report.pass(
            "ffmpeg",
            "ffmpeg",
            "not needed: RECORDING_THUMBNAILS is off",
        );
    }
    match ffmpeg::version(&settings.ffmpeg).await {
        Ok(version) => report.pass("ffmpeg", "ffmpeg", format!("{version} ({})", settings.ffmpeg.display())),
        Err(error) => report.fail("ffmpeg", "ffmpeg", format!("{}; thumbnails of recordings started outside roomtape need it (or set RECORDING_THUMBNAILS=off)", Chain(&error))),
    }
}

/// Each endpoint in NOTIFY_ENDPOINTS gets a signed `notification.test` and must answer 2xx: an
/// app that verifies signatures also tells a wrong secret this way.
async fn notify_endpoints(env: &Env, report: &mut Report) {
    let settings = match NotifySettings::from_env(env) {
        Ok(settings) => settings,
        Err(error) => return report.fail("notify", "notify", error.to_string()),
    };
    for endpoint in &settings.endpoints {
        let name = format!("notify {}", endpoint.name);
        match crate::notifications::send_test(&settings, endpoint).await {
            Ok(Attempt::Delivered { status }) => report.pass(
                "notify",
                name,
                format!(
                    "{} took a signed notification.test ({status})",
                    endpoint.shown_url()
                ),
            ),
            Ok(attempt) => report.fail(
                "notify",
                name,
                format!(
                    "{} {}; if it verifies signatures, check NOTIFY_{}_SECRET",
                    endpoint.shown_url(),
                    attempt.problem().unwrap_or_default(),
                    endpoint.name.to_ascii_uppercase()
                ),
            ),
            Err(error) => report.fail("notify", name, Chain(&error).to_string()),
        }
    }
}

async fn ingestor(env: &Env, report: &mut Report) {
    let base = match ingestor_url(env) {
        Ok(url) => url,
        Err(error) => return report.fail("ingestor", "ingestor", error.to_string()),
    };
    let Ok(url) = base.join("readyz") else {
        return report.fail("ingestor", "ingestor", format!("{base} cannot take a path"));
    };
    match within(reqwest::get(url.clone())).await {
        Ok(response) if response.status().is_success() => {
            report.pass("ingestor", "ingestor", format!("{url} ready"))
        }
        Ok(response) => report.fail(
            "ingestor",
            "ingestor",
            format!(
                "{url} answered {}: it cannot publish; check the broker",
                response.status()
            ),
        ),
        Err(error) => report.fail(
            "ingestor",
            "ingestor",
            format!("{error}; is roomtape-ingestor running at ROOMTAPE_INGESTOR_URL ({base})?"),
        ),
    }
}
