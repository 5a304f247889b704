//! Arguments, the request/reply exchange over RabbitMQ, and what is printed.

use std::io::Write;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use futures_util::StreamExt;
use lapin::options::{BasicConsumeOptions, ConfirmSelectOptions};
use lapin::types::FieldTable;
use lapin::BasicProperties;
use roomtape_shared::config::{AmqpSettings, ConfigError, Env};
use roomtape_shared::queue::{self, topology::COMMANDS_EXCHANGE};
use serde_json::{json, Value};

use crate::dlq::publish_confirmed;

/// RabbitMQ's direct reply-to pseudo-queue: replies come back on this channel, no queue needed.
const REPLY_TO: &str = "amq.rabbitmq.reply-to";

#[derive(Debug, Parser)]
#[command(
    name = "roomtape",
    version,
    about = "Start and stop LiveKit recordings through roomtape"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Top,
    /// Print the processor's JSON reply instead of a summary.
    #[arg(long, global = true)]
    json: bool,
    /// How long to wait for the reply.
    #[arg(long, global = true, default_value = "30s", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

#[derive(Debug, Subcommand)]
enum Top {
    /// Recordings of LiveKit rooms.
    #[command(subcommand)]
    Record(Box<Record>),
    /// The dead-letter queue, roomtape.dead.
    #[command(subcommand)]
    Dlq(Dlq),
}

#[derive(Debug, Subcommand)]
enum Dlq {
    /// Move dead letters back to the queue they failed on, for a fresh retry schedule.
    Replay {
        /// At most this many messages.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
}

#[derive(Debug, Subcommand)]
enum Record {
    /// Start recording a room.
    Start(StartArgs),
    /// Stop a recording, or every active recording of a room.
    Stop(StopArgs),
}

#[derive(Debug, Args)]
struct StartArgs {
    /// The LiveKit room to record.
    room_name: String,
    /// speaker, grid, single-speaker (or their -light / -dark variants).
    #[arg(long)]
    layout: Option<String>,
    /// mp4, webm or ogg.
    #[arg(long = "format")]
    file_format: Option<String>,
    #[arg(long)]
    audio_only: bool,
    #[arg(long)]
    video_only: bool,
    /// The storage profile to write to (default: the configured default).
    #[arg(long)]
    storage: Option<String>,
    /// Object key template, e.g. recordings/{room_name}/{time}.
    #[arg(long)]
    filepath: Option<String>,
    #[arg(long)]
    stream_id: Option<String>,
    #[arg(long)]
    user_id: Option<String>,
    /// A JSON object stored with the recording.
    #[arg(long)]
    metadata: Option<String>,
    /// The command's idempotency key (default: a new UUID). Repeat it to retry safely.
    #[arg(long)]
    id: Option<String>,
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
struct StopArgs {
    #[arg(long)]
    egress_id: Option<String>,
    /// Stop every active recording of this room.
    #[arg(long = "room")]
    room_name: Option<String>,
}

/// Why the tool could not get a reply.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("--metadata is not a JSON object: {0}")]
    Metadata(String),
    #[error("broker: {0}")]
    Broker(#[from] lapin::Error),
    #[error(
        "the broker could not route the command: is roomtape-processor deployed on this vhost?"
    )]
    Unroutable,
    #[error("no reply within {0:?}: is roomtape-processor running? The command may still be carried out; to retry it without starting a second recording, repeat it with --id {1}")]
    Timeout(Duration, String),
    #[error("the broker refused the command (nack)")]
    Nacked,
    #[error("the reply is not JSON: {0}")]
    BadReply(#[from] serde_json::Error),
}

/// Runs the command; writes what it prints to `out`; returns the process exit code
/// (0 ok, 1 the processor refused, 2 configuration, 3 no reply).
pub async fn execute(cli: Cli, env: &Env, out: &mut impl Write) -> u8 {
    let record = match &cli.command {
        Top::Record(record) => record,
        Top::Dlq(Dlq::Replay { limit }) => return replay(env, *limit, cli.json, out).await,
    };
    let (routing_key, body, message_id) = match request(record) {
        Ok(request) => request,
        Err(error) => return report(out, &error),
    };
    let reply = match exchange(env, routing_key, &body, &message_id, cli.timeout).await {
        Ok(reply) => reply,
        Err(error) => return report(out, &error),
    };
    let ok = reply["ok"] == true;
    let _ = if cli.json {
        writeln!(out, "{reply}")
    } else {
        writeln!(out, "{}", summary(&reply))
    };
    u8::from(!ok)
}

fn report(out: &mut impl Write, error: &CliError) -> u8 {
    let _ = writeln!(out, "roomtape: {error}");
    match error {
        CliError::Config(_) | CliError::Metadata(_) => 2,
        _ => 3,
    }
}

async fn replay(env: &Env, limit: usize, json: bool, out: &mut impl Write) -> u8 {
    let replayed = match crate::dlq::replay(env, limit).await {
        Ok(replayed) => replayed,
        Err(error) => return report(out, &error),
    };
    let _ = if json {
        writeln!(
            out,
            "{}",
            json!({"replayed": replayed.by_queue, "left": replayed.left})
        )
    } else {
        let moved: Vec<String> = replayed
            .by_queue
            .iter()
            .map(|(q, n)| format!("{n} to {q}"))
            .collect();
        let moved = if moved.is_empty() {
            "nothing".to_owned()
        } else {
            moved.join(", ")
        };
        writeln!(
            out,
            "replayed {moved}; {} left in roomtape.dead (no source queue)",
            replayed.left
        )
    };
    0
}

fn request(record: &Record) -> Result<(&'static str, Value, String), CliError> {
    match record {
        Record::Start(args) => {
            let metadata = match &args.metadata {
                Some(raw) => match serde_json::from_str::<Value>(raw) {
                    Ok(object @ Value::Object(_)) => Some(object),
                    Ok(_) => return Err(CliError::Metadata(raw.clone())),
                    Err(e) => return Err(CliError::Metadata(e.to_string())),
                },
                None => None,
            };
            let mut body = json!({"room_name": args.room_name, "audio_only": args.audio_only, "video_only": args.video_only});
            for (key, value) in [
                ("layout", &args.layout),
                ("file_format", &args.file_format),
                ("storage", &args.storage),
                ("filepath", &args.filepath),
                ("stream_id", &args.stream_id),
                ("user_id", &args.user_id),
            ] {
                if let Some(value) = value {
                    body[key] = json!(value);
                }
            }
            if let Some(metadata) = metadata {
                body["metadata"] = metadata;
            }
            let id = args
                .id
                .clone()
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            Ok(("recording.start", body, id))
        }
        Record::Stop(args) => {
            let body = match (&args.egress_id, &args.room_name) {
                (Some(egress_id), _) => json!({"egress_id": egress_id}),
                (None, room) => json!({"room_name": room}),
            };
            Ok(("recording.stop", body, uuid::Uuid::new_v4().to_string()))
        }
    }
}

/// Publishes the command (confirmed, mandatory) and waits for its reply.
async fn exchange(
    env: &Env,
    routing_key: &str,
    body: &Value,
    message_id: &str,
    timeout: Duration,
) -> Result<Value, CliError> {
    let settings = AmqpSettings::from_env(env)?;
    let connection = queue::connect(&settings, "roomtape-cli").await?;
    let channel = connection.create_channel().await?;
    let consume = BasicConsumeOptions {
        no_ack: true,
        ..BasicConsumeOptions::default()
    };
    let mut replies = channel
        .basic_consume(REPLY_TO.into(), "".into(), consume, FieldTable::default())
        .await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let properties = BasicProperties::default()
        .with_message_id(message_id.into())
        .with_correlation_id(message_id.into())
        .with_reply_to(REPLY_TO.into())
        .with_content_type("application/json".into())
        .with_delivery_mode(2);
    let body = body.to_string();
    publish_confirmed(
        &channel,
        COMMANDS_EXCHANGE,
        routing_key,
        body.as_bytes(),
        properties,
    )
    .await?;
    let reply = tokio::time::timeout(timeout, replies.next())
        .await
        .map_err(|_| CliError::Timeout(timeout, message_id.to_owned()))?;
    let delivery = match reply {
        Some(delivery) => delivery?,
        None => return Err(CliError::Timeout(timeout, message_id.to_owned())),
    };
    let _ = connection.close(200, "done".into()).await;
    Ok(serde_json::from_slice(&delivery.data)?)
}

/// One line for people.
fn summary(reply: &Value) -> String {
    if reply["ok"] != true {
        return format!(
            "error ({}): {}",
            reply["error"]["code"].as_str().unwrap_or("unknown"),
            reply["error"]["message"].as_str().unwrap_or_default()
        );
    }
    if let Some(ids) = reply["egress_ids"].as_array() {
        let ids: Vec<&str> = ids.iter().filter_map(Value::as_str).collect();
        return match ids.is_empty() {
            true => format!(
                "no active recordings in {}",
                reply["room_name"].as_str().unwrap_or_default()
            ),
            false => format!("stopping {}", ids.join(", ")),
        };
    }
    format!(
        "{} {} (room {})",
        reply["egress_id"].as_str().unwrap_or_default(),
        reply["status"].as_str().unwrap_or_default(),
        reply["recording"]["room_name"].as_str().unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record_of(cli: &Cli) -> &Record {
        match &cli.command {
            Top::Record(record) => record,
            Top::Dlq(_) => panic!("not a record command"),
        }
    }

    #[test]
    fn start_arguments_become_the_contract_message() {
        let cli = Cli::parse_from([
            "roomtape",
            "record",
            "start",
            "stream-123",
            "--layout",
            "grid",
            "--format",
            "webm",
            "--stream-id",
            "s1",
            "--metadata",
            r#"{"course":"algebra"}"#,
            "--id",
            "cmd-1",
        ]);
        let (key, body, id) = request(record_of(&cli)).expect("valid");
        assert_eq!((key, id.as_str()), ("recording.start", "cmd-1"));
        assert_eq!(body["room_name"], "stream-123");
        assert_eq!(body["layout"], "grid");
        assert_eq!(body["file_format"], "webm");
        assert_eq!(body["stream_id"], "s1");
        assert_eq!(body["metadata"]["course"], "algebra");
        assert!(body.get("storage").is_none());
    }

    #[test]
    fn stop_needs_exactly_one_target() {
        assert!(Cli::try_parse_from(["roomtape", "record", "stop"]).is_err());
        assert!(Cli::try_parse_from([
            "roomtape",
            "record",
            "stop",
            "--egress-id",
            "EG_1",
            "--room",
            "r"
        ])
        .is_err());
        let cli = Cli::parse_from(["roomtape", "record", "stop", "--room", "lecture"]);
        let (key, body, _) = request(record_of(&cli)).expect("valid");
        assert_eq!(
            (key, body),
            ("recording.stop", json!({"room_name": "lecture"}))
        );
    }

    #[test]
    fn bad_metadata_is_refused_before_anything_is_sent() {
        let cli = Cli::parse_from(["roomtape", "record", "start", "r", "--metadata", "[1]"]);
        assert!(matches!(
            request(record_of(&cli)),
            Err(CliError::Metadata(_))
        ));
    }
}
