//! `IngestorSettings`: everything `roomtape-ingestor` reads from the environment, validated at
//! start-up.

use std::net::SocketAddr;
use std::time::Duration;

use roomtape_shared::config::{AmqpSettings, ApiKeys, ConfigError, Env, TelemetrySettings};

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
    pub confirm_timeout: Duration,
    /// `WEBHOOK_DEDUPE_WINDOW_SECS` (default 300): how long a confirmed event id is remembered,
    /// so LiveKit's retries of it are answered 200 without publishing again.
    pub dedupe_window: Duration,
    /// `INGESTOR_WORKERS` (default: the CPUs the process may run on): HTTP worker threads. Each
    /// keeps one broker connection, read and written on its own thread, with its share of the
    /// channels; a lost connection takes only its channels.
    pub workers: usize,
    /// `INGESTOR_PUBLISH_CHANNELS` (default: one per worker, at least `INGESTOR_WORKERS`):
    /// confirm-mode channels publishes are spread over. One channel caps the ingestor at what
    /// one broker channel process confirms.
    pub publish_channels: usize,
    /// `INGESTOR_PUBLISH_LINGER` (default `10ms`, `0s` turns it off): publishes wait for the
    /// end of a shared tick this wide, so those that arrive close together reach the broker
    /// together and share its sync (`queue::linger`); not while 32 or more are in flight. A
    /// webhook's answer waits at most this much longer.
    pub publish_linger: Duration,
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
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        roomtape_shared::settings!(Self {
            bind: env.parse_or("INGESTOR_BIND", SocketAddr::from(([0, 0, 0, 0], 8080))),
            keys: ApiKeys::from_env(env),
            amqp: AmqpSettings::from_env(env),
            max_body_bytes: env.parse_or("WEBHOOK_MAX_BODY_BYTES", 1024 * 1024),
            confirm_timeout: env.millis_or("PUBLISH_CONFIRM_TIMEOUT_MS", Duration::from_secs(5)),
            dedupe_window: env.seconds_or("WEBHOOK_DEDUPE_WINDOW_SECS", Duration::from_secs(300)),
            workers: env.count_or("INGESTOR_WORKERS", cpus),
            publish_channels: publish_channels(env, workers),
            publish_linger: env.duration_or("INGESTOR_PUBLISH_LINGER", Duration::from_millis(10)),
            max_in_flight: env.count_or("INGESTOR_MAX_IN_FLIGHT", 1024),
            body_timeout: env
                .positive_duration_or("INGESTOR_BODY_TIMEOUT", Duration::from_secs(10)),
            telemetry: TelemetrySettings::from_env(env),
        })
    }
}

/// `INGESTOR_PUBLISH_CHANNELS`: one per worker unless set, and never fewer than the workers
/// (checked only when `INGESTOR_WORKERS` itself is valid).
fn publish_channels(env: &Env, workers: Option<usize>) -> Result<usize, ConfigError> {
    const VAR: &str = "INGESTOR_PUBLISH_CHANNELS";
    let channels = env.count_or(VAR, workers.unwrap_or(1))?;
    match workers {
        Some(workers) if channels < workers => Err(ConfigError::invalid(
            VAR,
            format!(
                "{channels} channels for {workers} workers would leave a worker without its own \
                 (raise it or lower INGESTOR_WORKERS)"
            ),
        )),
        _ => Ok(channels),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const SECRETS: [&str; 2] = ["super-secret-value", "hunter2"];

    /// A complete environment; `extra` adds or overrides.
    fn ingestor_env(extra: &[(&str, &str)]) -> Env {
        let mut pairs = vec![
            ("LIVEKIT_API_KEY", "APIkey"),
            ("LIVEKIT_API_SECRET", SECRETS[0]),
            ("AMQP_URL", "amqp://guest:hunter2@127.0.0.1:5672/%2f"),
        ];
        pairs.extend_from_slice(extra);
        Env::from_pairs(pairs)
    }

    #[test]
    fn with_nothing_set_every_missing_setting_is_named_in_one_line() {
        let error = IngestorSettings::from_env(&Env::default()).expect_err("nothing set");
        assert_eq!(
            error.to_string(),
            "configuration: LIVEKIT_API_KEY and AMQP_URL are required but not set"
        );
    }

    #[test]
    fn waits_are_durations_in_the_units_their_names_say() {
        let defaults = IngestorSettings::from_env(&ingestor_env(&[])).expect("valid");
        assert_eq!(defaults.confirm_timeout, Duration::from_secs(5));
        assert_eq!(defaults.dedupe_window, Duration::from_secs(300));
        assert_eq!(defaults.publish_linger, Duration::from_millis(10));
        let set = IngestorSettings::from_env(&ingestor_env(&[
            ("PUBLISH_CONFIRM_TIMEOUT_MS", "750"),
            ("WEBHOOK_DEDUPE_WINDOW_SECS", "60"),
            ("INGESTOR_PUBLISH_LINGER", "0s"),
        ]))
        .expect("valid");
        assert_eq!(set.publish_linger, Duration::ZERO);
        assert_eq!(set.confirm_timeout, Duration::from_millis(750));
        assert_eq!(set.dedupe_window, Duration::from_secs(60));
        let error =
            IngestorSettings::from_env(&ingestor_env(&[("PUBLISH_CONFIRM_TIMEOUT_MS", "5s")]))
                .expect_err("not milliseconds");
        assert!(
            matches!(&error, ConfigError::Invalid { var, .. } if var == "PUBLISH_CONFIRM_TIMEOUT_MS"),
            "{error}"
        );
    }

    #[test]
    fn secrets_never_appear_in_debug_output() {
        let printed = format!(
            "{:?}",
            IngestorSettings::from_env(&ingestor_env(&[])).expect("valid")
        );
        for secret in SECRETS {
            assert!(
                !printed.contains(secret),
                "{secret} leaked into Debug output"
            );
        }
        assert!(
            printed.contains("APIkey"),
            "non-secret values are still shown"
        );
    }

    #[test]
    fn the_ingestors_pool_and_limits_have_defaults_and_bad_values_are_named_together() {
        let defaults = IngestorSettings::from_env(&ingestor_env(&[])).expect("valid");
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        assert_eq!(defaults.workers, cpus, "one HTTP worker per CPU");
        assert_eq!(defaults.publish_channels, cpus, "one channel per worker");
        assert_eq!(defaults.max_in_flight, 1024);
        assert_eq!(defaults.body_timeout, Duration::from_secs(10));

        let set = IngestorSettings::from_env(&ingestor_env(&[
            ("INGESTOR_PUBLISH_CHANNELS", "8"),
            ("INGESTOR_WORKERS", "2"),
            ("INGESTOR_MAX_IN_FLIGHT", "16"),
            ("INGESTOR_BODY_TIMEOUT", "250ms"),
        ]))
        .expect("valid");
        assert_eq!(
            (set.publish_channels, set.workers, set.max_in_flight),
            (8, 2, 16)
        );
        let workers_only =
            IngestorSettings::from_env(&ingestor_env(&[("INGESTOR_WORKERS", "3")])).expect("valid");
        assert_eq!(
            (workers_only.workers, workers_only.publish_channels),
            (3, 3),
            "channels follow the workers"
        );
        assert_eq!(set.body_timeout, Duration::from_millis(250));

        let error = IngestorSettings::from_env(&ingestor_env(&[
            ("INGESTOR_PUBLISH_CHANNELS", "2"),
            ("INGESTOR_WORKERS", "3"),
            ("INGESTOR_MAX_IN_FLIGHT", "0"),
            ("INGESTOR_BODY_TIMEOUT", "0s"),
        ]))
        .expect_err("invalid");
        assert_eq!(
            error.to_string(),
            "configuration: INGESTOR_PUBLISH_CHANNELS is invalid: 2 channels for 3 workers would \
             leave a worker without its own (raise it or lower INGESTOR_WORKERS); \
             INGESTOR_MAX_IN_FLIGHT is invalid: must be at least 1; \
             INGESTOR_BODY_TIMEOUT is invalid: must be longer than 0s"
        );
    }
}
