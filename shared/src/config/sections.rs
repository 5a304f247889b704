//! The settings sections the binaries are assembled from.

use std::net::SocketAddr;
use std::time::Duration;

use secrecy::SecretString;

use crate::commands::FilepathTemplate;

use super::{ApiKeys, ConfigError, Env, LiveKitSettings, Problems, StorageProfiles};

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line, for log shippers.
    Json,
    /// Human-readable lines.
    Text,
}

/// `LOG_FORMAT` (`json` or `text`, default `text`); the filter is `RUST_LOG` (default `info`).
#[derive(Debug, Clone)]
pub struct TelemetrySettings {
    pub log_format: LogFormat,
    pub log_filter: String,
}

impl TelemetrySettings {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let log_format = match env
            .get("LOG_FORMAT")
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("text" | "pretty") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(ConfigError::invalid(
                    "LOG_FORMAT",
                    format!("expected json or text, got {other:?}"),
                ))
            }
        };
        Ok(Self {
            log_format,
            log_filter: env.get("RUST_LOG").unwrap_or("info").to_owned(),
        })
    }
}

/// The broker, and the retry schedule the queue topology is built from.
#[derive(Debug, Clone)]
pub struct AmqpSettings {
    /// `AMQP_URL`, e.g. `amqp://guest:guest@127.0.0.1:5672/%2f` (holds a password).
    pub url: SecretString,
    /// `RETRY_DELAYS` (default `1s,5s,30s,2m,10m`): one delay queue per entry; a message that
    /// still fails after the last goes to `roomtape.dead`.
    pub retry_delays: Vec<Duration>,
}

impl AmqpSettings {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let url = env.required("AMQP_URL")?;
        if !(url.starts_with("amqp://") || url.starts_with("amqps://")) {
            return Err(ConfigError::invalid(
                "AMQP_URL",
                "expected an amqp:// or amqps:// URL",
            ));
        }
        url.parse::<lapin::uri::AMQPUri>()
            .map_err(|reason| ConfigError::invalid("AMQP_URL", reason))?;
        Ok(Self {
            url: url.into(),
            retry_delays: retry_delays(env.get("RETRY_DELAYS").unwrap_or("1s,5s,30s,2m,10m"))
                .map_err(|reason| ConfigError::invalid("RETRY_DELAYS", reason))?,
        })
    }
}

impl AmqpSettings {
    /// `host:port/vhost`, for messages: no credentials.
    pub fn address(&self) -> String {
        use secrecy::ExposeSecret;
        match self.url.expose_secret().parse::<lapin::uri::AMQPUri>() {
            Ok(uri) => format!(
                "{}:{}/{}",
                uri.authority.host, uri.authority.port, uri.vhost
            ),
            Err(_) => "an unparsable AMQP_URL".to_owned(),
        }
    }
}

fn retry_delays(raw: &str) -> Result<Vec<Duration>, String> {
    let delays = raw
        .split(',')
        .map(|d| humantime::parse_duration(d.trim()).map_err(|e| format!("{d:?}: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    if delays.iter().any(|d| d.as_millis() == 0) {
        return Err("every delay must be at least 1ms".into());
    }
    Ok(delays)
}

/// PostgreSQL.
#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    /// `DATABASE_URL`, e.g. `postgres://roomtape@127.0.0.1:5432/roomtape`, parsed; its `Debug`
    /// hides the password.
    pub config: tokio_postgres::Config,
    /// `DATABASE_POOL_SIZE` (default 16; for the processor, room for both consumers:
    /// 2 × `PROCESSOR_CONCURRENCY` + 4): connections kept open.
    pub pool_size: usize,
}

impl DatabaseSettings {
    /// `host:port/database`, for messages: no credentials.
    pub fn address(&self) -> String {
        use tokio_postgres::config::Host;
        let host = match self.config.get_hosts().first() {
            Some(Host::Tcp(name)) => name.clone(),
            Some(Host::Unix(path)) => path.display().to_string(),
            None => "localhost".to_owned(),
        };
        let port = self.config.get_ports().first().copied().unwrap_or(5432);
        let database = self.config.get_dbname().unwrap_or_default();
        format!("{host}:{port}/{database}")
    }

    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let config = env
            .required("DATABASE_URL")?
            .parse()
            .map_err(|e| ConfigError::invalid("DATABASE_URL", e))?;
        Ok(Self {
            config,
            pool_size: env.parse_or("DATABASE_POOL_SIZE", 16)?,
        })
    }
}

/// Everything `roomtape-ingestor` needs.
#[derive(Debug, Clone)]
pub struct IngestorSettings {
    /// `INGESTOR_BIND` (default `0.0.0.0:8080`): webhook, health and metrics.
    pub bind: SocketAddr,
    /// The keys webhooks may be signed with.
    pub keys: ApiKeys,
    pub amqp: AmqpSettings,
    /// `WEBHOOK_MAX_BODY_BYTES` (default 1 MiB): larger bodies get 413.
    pub max_body_bytes: usize,
    /// `PUBLISH_CONFIRM_TIMEOUT_MS` (default 5000): how long to wait for the broker's confirm
    /// before answering 503.
    pub confirm_timeout_ms: u64,
    /// `WEBHOOK_DEDUPE_WINDOW_SECS` (default 300): how long a confirmed event id is remembered,
    /// so LiveKit's retries of it are answered 200 without publishing again.
    pub dedupe_window_secs: u64,
    /// `INGESTOR_WORKERS` (default: the CPUs the process may run on): HTTP worker threads. Each
    /// keeps one broker connection, read and written on its own thread, with its share of the
    /// channels; a lost connection takes only its channels.
    pub workers: usize,
    /// `INGESTOR_PUBLISH_CHANNELS` (default: one per worker, at least `INGESTOR_WORKERS`):
    /// confirm-mode channels publishes are spread over. One channel caps the ingestor at what
    /// one broker channel process confirms.
    pub publish_channels: usize,
    /// `INGESTOR_MAX_IN_FLIGHT` (default 1024): authenticated requests being read or published at
    /// once; past it, requests are answered 503 with `Retry-After` at once. Bounds the memory
    /// bodies can hold to this × `WEBHOOK_MAX_BODY_BYTES`.
    pub max_in_flight: usize,
    /// `INGESTOR_BODY_TIMEOUT` (default `10s`): how long an authenticated request's body may take
    /// to arrive; past it, 408.
    pub body_timeout: Duration,
    pub telemetry: TelemetrySettings,
}

impl IngestorSettings {
    /// Every missing or malformed setting is named in the one error.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let mut problems = Problems::default();
        let bind =
            problems.check(env.parse_or("INGESTOR_BIND", SocketAddr::from(([0, 0, 0, 0], 8080))));
        let keys = problems.check(ApiKeys::from_env(env));
        let amqp = problems.check(AmqpSettings::from_env(env));
        let max_body_bytes = problems.check(env.parse_or("WEBHOOK_MAX_BODY_BYTES", 1024 * 1024));
        let confirm_timeout_ms = problems.check(env.parse_or("PUBLISH_CONFIRM_TIMEOUT_MS", 5000));
        let dedupe_window_secs = problems.check(env.parse_or("WEBHOOK_DEDUPE_WINDOW_SECS", 300));
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        let workers = at_least_one(&mut problems, env, "INGESTOR_WORKERS", cpus);
        let publish_channels = at_least_one(
            &mut problems,
            env,
            "INGESTOR_PUBLISH_CHANNELS",
            workers.unwrap_or(1),
        );
        if let (Some(workers), Some(channels)) = (workers, publish_channels) {
            if channels < workers {
                problems.note(ConfigError::invalid(
                    "INGESTOR_PUBLISH_CHANNELS",
                    format!(
                        "{channels} channels for {workers} workers would leave a worker without \
                         its own (raise it or lower INGESTOR_WORKERS)"
                    ),
                ));
            }
        }
        let max_in_flight = at_least_one(&mut problems, env, "INGESTOR_MAX_IN_FLIGHT", 1024);
        let body_timeout = problems.check(duration_or(
            env,
            "INGESTOR_BODY_TIMEOUT",
            Duration::from_secs(10),
        ));
        if body_timeout == Some(Duration::ZERO) {
            problems.note(ConfigError::invalid(
                "INGESTOR_BODY_TIMEOUT",
                "must be longer than 0s",
            ));
        }
        let telemetry = problems.check(TelemetrySettings::from_env(env));
        problems.finish()?;
        let (
            Some(bind),
            Some(keys),
            Some(amqp),
            Some(max_body_bytes),
            Some(confirm_timeout_ms),
            Some(dedupe_window_secs),
            Some(workers),
            Some(publish_channels),
            Some(max_in_flight),
            Some(body_timeout),
            Some(telemetry),
        ) = (
            bind,
            keys,
            amqp,
            max_body_bytes,
            confirm_timeout_ms,
            dedupe_window_secs,
            workers,
            publish_channels,
            max_in_flight,
            body_timeout,
            telemetry,
        )
        else {
            return Err(ConfigError::Several(Vec::new()));
        };
        Ok(Self {
            bind,
            keys,
            amqp,
            max_body_bytes,
            confirm_timeout_ms,
            dedupe_window_secs,
            workers,
            publish_channels,
            max_in_flight,
            body_timeout,
            telemetry,
        })
    }
}

/// Everything `roomtape-processor` needs.
#[derive(Debug, Clone)]
pub struct ProcessorSettings {
    /// `PROCESSOR_BIND` (default `0.0.0.0:9090`): health and metrics.
    pub bind: SocketAddr,
    pub amqp: AmqpSettings,
    pub database: DatabaseSettings,
    pub livekit: LiveKitSettings,
    pub storage: StorageProfiles,
    /// `PROCESSOR_PREFETCH` (default 512): unacked deliveries the broker hands one processor;
    /// what piles up while a room is being written becomes the next batch for it.
    pub prefetch: u16,
    /// `PROCESSOR_CONCURRENCY` (default 16): messages handled at once by each consumer (events,
    /// commands); each holds one database connection while it runs.
    pub concurrency: usize,
    pub auto_record: AutoRecordSettings,
    /// `RECONCILE_INTERVAL` (default `1m`, `0s` turns it off): how often recordings that are not
    /// final are checked against LiveKit's `ListEgress`.
    pub reconcile_interval: Duration,
    /// `PROCESSOR_STUCK_AFTER` (default `1h`): a recording not final and unchanged this long
    /// counts in the `roomtape_recordings_stuck` gauge.
    pub stuck_after: Duration,
    /// `RECONCILE_AFTER` (default `5m`): how long a recording must have been unchanged before
    /// it is checked.
    pub reconcile_after: Duration,
    /// `WEBHOOK_EVENTS_RETENTION` (default `7d`): processed event ids, command records and stop
    /// requests older than this are pruned.
    pub webhook_events_retention: Duration,
    /// `COMMAND_START_DEADLINE` (default `20s`): a start that has not reached LiveKit this long
    /// after it was sent is answered `deadline_exceeded` and never carried out.
    pub command_start_deadline: Duration,
    /// `COMMAND_FILEPATH_TEMPLATE` (default `recordings/{room_name}/{time}`).
    pub filepath_template: FilepathTemplate,
    /// `COMMAND_REPLY_QUEUES` (default `amq.gen-*`): queues command replies may go to, besides
    /// RabbitMQ's direct reply-to.
    pub reply_queues: Vec<glob::Pattern>,
    pub telemetry: TelemetrySettings,
}

/// Which rooms are recorded as soon as they start.
#[derive(Debug, Clone, Default)]
pub struct AutoRecordSettings {
    /// `AUTO_RECORD_ROOMS`: comma-separated room-name patterns (`*` and `?` wildcards).
    pub room_patterns: Vec<glob::Pattern>,
    /// `AUTO_RECORD_ON_METADATA` (default true): rooms whose metadata is JSON with
    /// `"record": true` are recorded.
    pub on_metadata: bool,
}

impl AutoRecordSettings {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let room_patterns = patterns(env, "AUTO_RECORD_ROOMS", "")?;
        Ok(Self {
            room_patterns,
            on_metadata: env.flag_or("AUTO_RECORD_ON_METADATA", true)?,
        })
    }
}

/// Comma-separated glob patterns of `var` (`default` when unset).
fn patterns(env: &Env, var: &str, default: &str) -> Result<Vec<glob::Pattern>, ConfigError> {
    env.get(var)
        .unwrap_or(default)
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| glob::Pattern::new(p).map_err(|e| ConfigError::invalid(var, e)))
        .collect()
}

/// A count that must be at least 1; `None` with the problem noted otherwise.
fn at_least_one(p: &mut Problems, env: &Env, var: &str, default: usize) -> Option<usize> {
    let value = p.check(env.parse_or(var, default))?;
    if value == 0 {
        p.note(ConfigError::invalid(var, "must be at least 1"));
        return None;
    }
    Some(value)
}

fn duration_or(env: &Env, var: &str, default: Duration) -> Result<Duration, ConfigError> {
    match env.get(var) {
        Some(raw) => humantime::parse_duration(raw).map_err(|e| ConfigError::invalid(var, e)),
        None => Ok(default),
    }
}

impl ProcessorSettings {
    /// Every missing or malformed setting is named in the one error.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let mut p = Problems::default();
        let bind = p.check(env.parse_or("PROCESSOR_BIND", SocketAddr::from(([0, 0, 0, 0], 9090))));
        let amqp = p.check(AmqpSettings::from_env(env));
        let database = p.check(DatabaseSettings::from_env(env));
        let livekit = p.check(LiveKitSettings::from_env(env));
        let storage = p.check(StorageProfiles::from_env(env));
        let prefetch = p.check(env.parse_or("PROCESSOR_PREFETCH", 512));
        let concurrency = p.check(env.parse_or("PROCESSOR_CONCURRENCY", 16));
        if concurrency == Some(0) {
            p.note(ConfigError::invalid(
                "PROCESSOR_CONCURRENCY",
                "must be at least 1",
            ));
        }
        let auto_record = p.check(AutoRecordSettings::from_env(env));
        let every = p.check(duration_or(
            env,
            "RECONCILE_INTERVAL",
            Duration::from_secs(60),
        ));
        let after = p.check(duration_or(
            env,
            "RECONCILE_AFTER",
            Duration::from_secs(300),
        ));
        let retention = p.check(duration_or(
            env,
            "WEBHOOK_EVENTS_RETENTION",
            Duration::from_secs(7 * 24 * 3600),
        ));
        let stuck_after = p.check(duration_or(
            env,
            "PROCESSOR_STUCK_AFTER",
            Duration::from_secs(3600),
        ));
        let deadline = p.check(duration_or(
            env,
            "COMMAND_START_DEADLINE",
            Duration::from_secs(20),
        ));
        let filepath_template = p.check(filepath_template(env));
        let reply_queues = p.check(patterns(env, "COMMAND_REPLY_QUEUES", "amq.gen-*"));
        let telemetry = p.check(TelemetrySettings::from_env(env));
        p.finish()?;
        let (
            Some(bind),
            Some(amqp),
            Some(database),
            Some(livekit),
            Some(storage),
            Some(prefetch),
            Some(concurrency),
            Some(auto_record),
            Some(reconcile_interval),
            Some(reconcile_after),
            Some(webhook_events_retention),
            Some(stuck_after),
            Some(command_start_deadline),
            Some(filepath_template),
            Some(reply_queues),
            Some(telemetry),
        ) = (
            bind,
            amqp,
            database,
            livekit,
            storage,
            prefetch,
            concurrency,
            auto_record,
            every,
            after,
            retention,
            stuck_after,
            deadline,
            filepath_template,
            reply_queues,
            telemetry,
        )
        else {
            return Err(ConfigError::Several(Vec::new()));
        };
        let mut settings = Self {
            bind,
            amqp,
            database,
            livekit,
            storage,
            prefetch,
            concurrency,
            auto_record,
            reconcile_interval,
            reconcile_after,
            webhook_events_retention,
            stuck_after,
            command_start_deadline,
            filepath_template,
            reply_queues,
            telemetry,
        };
        if env.get("DATABASE_POOL_SIZE").is_none() {
            // Each consumer runs up to `concurrency` handlers, each with one connection; the
            // rest is for readiness checks and the reconciler.
            settings.database.pool_size = 2 * settings.concurrency + 4;
        }
        Ok(settings)
    }
}

/// Where the `roomtape` tool finds the ingestor (`ROOMTAPE_INGESTOR_URL`).
pub fn ingestor_url(env: &Env) -> Result<url::Url, ConfigError> {
    const VAR: &str = "ROOMTAPE_INGESTOR_URL";
    let raw = env.get(VAR).unwrap_or("http://127.0.0.1:8080");
    url::Url::parse(raw).map_err(|e| ConfigError::invalid(VAR, e))
}

/// `COMMAND_FILEPATH_TEMPLATE`, read the same way by the processor and the API.
pub fn filepath_template(env: &Env) -> Result<FilepathTemplate, ConfigError> {
    let raw = env
        .get("COMMAND_FILEPATH_TEMPLATE")
        .unwrap_or(crate::commands::DEFAULT_FILEPATH);
    FilepathTemplate::new(raw)
        .map_err(|reason| ConfigError::invalid("COMMAND_FILEPATH_TEMPLATE", reason))
}
