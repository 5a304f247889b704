//! `ProcessorSettings`: everything `roomtape-processor` reads from the environment, validated
//! at start-up.

use std::net::SocketAddr;
use std::time::Duration;

use roomtape_shared::config::{
    command_start_deadline, AmqpSettings, ConfigError, DatabaseSettings, Env, FilepathTemplate,
    LiveKitSettings, RetentionRules, StorageProfiles, TelemetrySettings, ThumbnailSettings,
};
pub use roomtape_shared::events::proto::participant_info::Kind as ParticipantKind;
use roomtape_shared::notify::NotifySettings;

/// Everything `roomtape-processor` needs.
#[derive(Debug, Clone)]
pub struct ProcessorSettings {
    /// `PROCESSOR_BIND` (default `0.0.0.0:9090`): health and metrics.
    pub bind: SocketAddr,
    pub amqp: AmqpSettings,
    /// `DATABASE_POOL_SIZE` defaults to room for both consumers: 2 × `PROCESSOR_CONCURRENCY`
    /// + 4 (readiness checks, the reconciler, the pruner).
    pub database: DatabaseSettings,
    pub livekit: LiveKitSettings,
    pub storage: StorageProfiles,
    /// `PROCESSOR_PREFETCH` (default 512): unacked deliveries the broker hands one processor;
    /// what piles up while a room is being written becomes the next batch for it.
    pub prefetch: u16,
    /// `PROCESSOR_CONCURRENCY` (default 16): messages handled at once by each consumer (events,
    /// commands); each holds one database connection while it runs.
    pub concurrency: usize,
    /// `PROCESSOR_BATCH_WAIT` (default `2ms`, `0s` turns it off): how long a batch of events
    /// that is not full waits for more after its first; adds at most this to an event's delay,
    /// and at a steady rate makes the batches that cut the CPU each event costs.
    pub batch_wait: Duration,
    /// `PROCESSOR_THREADS` (default 1): threads of the async runtime. One is the cheapest per
    /// event; a processor on one thread drains several thousand events a second, and more
    /// processors (or threads) take more cores.
    pub threads: usize,
    pub auto_record: AutoRecordSettings,
    /// `RECONCILE_INTERVAL` (default `1m`, `0s` turns it off): how often recordings that are not
    /// final are checked against LiveKit's `ListEgress`.
    pub reconcile_interval: Duration,
    /// `RECONCILE_AFTER` (default `5m`): how long a recording must have been unchanged before
    /// it is checked.
    pub reconcile_after: Duration,
    /// `WEBHOOK_EVENTS_RETENTION` (default `7d`): processed event ids, command records, stop
    /// requests, relayed notifications and finished deliveries older than this are pruned.
    /// `RECORDING_RETENTION`: how long finished recordings are kept, by room pattern.
    pub recording_retention: RetentionRules,
    /// `RECORDING_RETENTION_INTERVAL` (default `1h`): how often one processor sweeps.
    pub recording_retention_interval: Duration,
    pub webhook_events_retention: Duration,
    /// `PROCESSOR_STUCK_AFTER` (default `1h`): a recording not final and unchanged this long
    /// counts in the `roomtape_recordings_stuck` gauge.
    pub stuck_after: Duration,
    /// `RECORDING_PROBE` (default true): each finished file is opened (ranged reads) before
    /// its recording is `ready`; off, a HEAD is all (as before the probe, for comparison).
    pub probe: bool,
    /// `RECORDING_THUMBNAILS`, `THUMBNAIL_INTERVAL`, `FFMPEG_PATH`: a picture of each video
    /// recording.
    pub thumbnails: ThumbnailSettings,
    /// `COMMAND_START_DEADLINE` (default `20s`).
    pub command_start_deadline: Duration,
    /// `COMMAND_FILEPATH_TEMPLATE` (default `recordings/{room_name}/{time}`).
    pub filepath_template: FilepathTemplate,
    /// `COMMAND_REPLY_QUEUES` (default `amq.gen-*`): queues command replies may go to, besides
    /// RabbitMQ's direct reply-to.
    pub reply_queues: Vec<glob::Pattern>,
    /// `NOTIFY_*`: the HTTP endpoints notifications are delivered to (CONTRACTS §8).
    pub notify: NotifySettings,
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
    /// Which participants get a recording of their own when they join.
    pub participants: ParticipantRule,
}

/// Participants recorded on their own (a participant egress each) when they join: those whose
/// kind is listed and whose identity matches a pattern. Either list alone is enough: identity
/// patterns alone record standard participants, kinds alone every identity of those kinds.
#[derive(Debug, Clone, Default)]
pub struct ParticipantRule {
    /// `AUTO_RECORD_PARTICIPANTS`: comma-separated identity patterns (`*`, `?`).
    pub identities: Vec<glob::Pattern>,
    /// `AUTO_RECORD_PARTICIPANT_KINDS`: comma-separated LiveKit participant kinds (`standard`,
    /// `sip`, `agent`, `ingress`, `connector`, `bridge`); egress participants never.
    pub kinds: Vec<ParticipantKind>,
}

impl ParticipantRule {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let identities = env.patterns_or("AUTO_RECORD_PARTICIPANTS", "")?;
        let mut kinds = participant_kinds(env)?;
        if kinds.is_empty() && !identities.is_empty() {
            kinds.push(ParticipantKind::Standard);
        }
        let identities = match (identities.is_empty(), kinds.is_empty()) {
            (true, false) => vec![glob::Pattern::new("*").expect("a valid pattern")],
            _ => identities,
        };
        Ok(Self { identities, kinds })
    }
}

const PARTICIPANT_KINDS_VAR: &str = "AUTO_RECORD_PARTICIPANT_KINDS";

fn participant_kinds(env: &Env) -> Result<Vec<ParticipantKind>, ConfigError> {
    let names = env.get(PARTICIPANT_KINDS_VAR).unwrap_or_default();
    let names = names.split(',').map(str::trim).filter(|n| !n.is_empty());
    names
        .map(
            |name| match ParticipantKind::from_str_name(&name.to_ascii_uppercase()) {
                Some(ParticipantKind::Egress) => Err(ConfigError::invalid(
                    PARTICIPANT_KINDS_VAR,
                    "egress participants (recorders) are never recorded on their own",
                )),
                Some(kind) => Ok(kind),
                None => Err(ConfigError::invalid(
                    PARTICIPANT_KINDS_VAR,
                    format!(
                        "{name:?} is not one of standard, sip, agent, ingress, connector, bridge"
                    ),
                )),
            },
        )
        .collect()
}

impl ProcessorSettings {
    /// Every missing or malformed setting is named in the one error.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        roomtape_shared::settings!(Self {
            bind: env.parse_or("PROCESSOR_BIND", SocketAddr::from(([0, 0, 0, 0], 9090))),
            amqp: AmqpSettings::from_env(env),
            concurrency: env.count_or("PROCESSOR_CONCURRENCY", 16),
            database: DatabaseSettings::with_default_pool_size(
                env,
                2 * concurrency.unwrap_or(16) + 4
            ),
            livekit: LiveKitSettings::from_env(env),
            storage: StorageProfiles::from_env(env),
            prefetch: env.parse_or("PROCESSOR_PREFETCH", 512),
            batch_wait: env.duration_or("PROCESSOR_BATCH_WAIT", Duration::from_millis(2)),
            threads: env.count_or("PROCESSOR_THREADS", 1),
            auto_record: AutoRecordSettings::from_env(env),
            reconcile_interval: env.duration_or("RECONCILE_INTERVAL", Duration::from_secs(60)),
            reconcile_after: env.duration_or("RECONCILE_AFTER", Duration::from_secs(300)),
            recording_retention: RetentionRules::from_env(env),
            recording_retention_interval: env
                .positive_duration_or("RECORDING_RETENTION_INTERVAL", Duration::from_secs(3600)),
            webhook_events_retention: env.duration_or(
                "WEBHOOK_EVENTS_RETENTION",
                Duration::from_secs(7 * 24 * 3600)
            ),
            stuck_after: env.duration_or("PROCESSOR_STUCK_AFTER", Duration::from_secs(3600)),
            probe: env.flag_or("RECORDING_PROBE", true),
            thumbnails: ThumbnailSettings::from_env(env),
            command_start_deadline: command_start_deadline(env),
            filepath_template: FilepathTemplate::from_env(env),
            reply_queues: env.patterns_or("COMMAND_REPLY_QUEUES", "amq.gen-*"),
            notify: NotifySettings::from_env(env),
            telemetry: TelemetrySettings::from_env(env),
        })
    }
}

impl AutoRecordSettings {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        roomtape_shared::settings!(Self {
            room_patterns: env.patterns_or("AUTO_RECORD_ROOMS", ""),
            on_metadata: env.flag_or("AUTO_RECORD_ON_METADATA", true),
            participants: ParticipantRule::from_env(env),
        })
    }
}

#[cfg(test)]
mod tests;
