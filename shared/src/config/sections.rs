//! The settings sections the binaries are assembled from.

use std::time::Duration;

use secrecy::SecretString;

use super::{ConfigError, Env};

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
    /// `DATABASE_POOL_SIZE` (default 16; the processor's default leaves room for both of its
    /// consumers): connections kept open.
    pub pool_size: usize,
    /// `DATABASE_SCHEMA` (default `public`): the schema that holds every table, function and
    /// the migration history. Every connection sets it as its `search_path` ([`crate::db`]).
    pub schema: DatabaseSchema,
}

/// A schema name roomtape can put in a `search_path` without quoting surprises: a lowercase
/// PostgreSQL identifier (letters, digits, `_`; not starting with a digit or `pg_`), at most 63
/// bytes, which PostgreSQL would otherwise truncate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseSchema(String);

impl DatabaseSchema {
    pub fn new(name: &str) -> Result<Self, String> {
        let name = name.trim();
        let valid_start = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
        let valid_rest = name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if name.is_empty() || name.len() > 63 || !valid_start || !valid_rest {
            return Err(format!(
                "{name:?} is not a schema name roomtape accepts: 1 to 63 of a-z, 0-9 and _, not starting with a digit"
            ));
        }
        if name.starts_with("pg_") {
            return Err(format!(
                "{name:?}: names starting with pg_ are PostgreSQL's own"
            ));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for DatabaseSchema {
    fn default() -> Self {
        Self("public".to_owned())
    }
}

impl std::fmt::Display for DatabaseSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
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
        Self::with_default_pool_size(env, 16)
    }

    /// For a process that knows how many connections it uses at once.
    pub fn with_default_pool_size(env: &Env, pool_size: usize) -> Result<Self, ConfigError> {
        let config = env
            .required("DATABASE_URL")?
            .parse()
            .map_err(|e| ConfigError::invalid("DATABASE_URL", e))?;
        let schema = match env.get("DATABASE_SCHEMA") {
            Some(name) => DatabaseSchema::new(name)
                .map_err(|reason| ConfigError::invalid("DATABASE_SCHEMA", reason))?,
            None => DatabaseSchema::default(),
        };
        Ok(Self {
            config,
            pool_size: env.count_or("DATABASE_POOL_SIZE", pool_size)?,
            schema,
        })
    }
}

/// Where the `roomtape` tool finds the ingestor (`ROOMTAPE_INGESTOR_URL`).
pub fn ingestor_url(env: &Env) -> Result<url::Url, ConfigError> {
    const VAR: &str = "ROOMTAPE_INGESTOR_URL";
    let raw = env.get(VAR).unwrap_or("http://127.0.0.1:8080");
    url::Url::parse(raw).map_err(|e| ConfigError::invalid(VAR, e))
}

/// `COMMAND_START_DEADLINE` (default `20s`): a start that has not reached LiveKit this long
/// after it was sent is answered `deadline_exceeded` and never carried out. Read by the
/// processor, which keeps it, and the API, whose wait for a reply must outlast it.
pub fn command_start_deadline(env: &Env) -> Result<Duration, ConfigError> {
    env.duration_or("COMMAND_START_DEADLINE", Duration::from_secs(20))
}
