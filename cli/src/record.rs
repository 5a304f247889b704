//! `roomtape record start|stop`: the command message built from the arguments, published to
//! `roomtape.commands`, and the processor's reply awaited over RabbitMQ's direct reply-to.

use std::time::Duration;

use clap::{Args, Subcommand};
use roomtape_shared::config::{AmqpSettings, Env};
use roomtape_shared::queue::commands::{CommandClient, CommandError};
use serde_json::{json, Value};

use crate::error::{CliError, EXIT_OK, EXIT_REFUSED};
use crate::output::Output;

#[derive(Debug, Subcommand)]
pub enum Record {
    /// Start recording a room.
    Start(Box<StartArgs>),
    /// Stop a recording, or every active recording of a room.
    Stop(StopArgs),
}

#[derive(Debug, Args)]
pub struct StartArgs {
    /// The LiveKit room to record.
    pub room_name: String,
    /// What to record: room_composite (default), participant (--identity), track_composite
    /// (--audio-track-id and/or --video-track-id) or track (--track-id).
    #[arg(long)]
    pub kind: Option<String>,
    /// The participant a participant recording records.
    #[arg(long)]
    pub identity: Option<String>,
    /// A participant recording of the participant's screen share.
    #[arg(long)]
    pub screen_share: bool,
    #[arg(long)]
    pub audio_track_id: Option<String>,
    #[arg(long)]
    pub video_track_id: Option<String>,
    /// The track a track recording writes as it is, without transcoding.
    #[arg(long)]
    pub track_id: Option<String>,
    /// speaker, grid, single-speaker (or their -light / -dark variants).
    #[arg(long)]
    pub layout: Option<String>,
    /// mp4, webm or ogg.
    #[arg(long = "format")]
    pub file_format: Option<String>,
    #[arg(long)]
    pub audio_only: bool,
    #[arg(long)]
    pub video_only: bool,
    /// The storage profile to write to (default: the configured default).
    #[arg(long)]
    pub storage: Option<String>,
    /// Object key template, e.g. recordings/{room_name}/{time}.
    #[arg(long)]
    pub filepath: Option<String>,
    /// LiveKit's encoding preset, e.g. H264_1080P_30 (default: LiveKit's, H264_720P_30).
    #[arg(long)]
    pub preset: Option<String>,
    #[arg(long)]
    pub stream_id: Option<String>,
    #[arg(long)]
    pub user_id: Option<String>,
    /// A JSON object stored with the recording.
    #[arg(long)]
    pub metadata: Option<String>,
    /// The command's idempotency key (default: a new UUID). Repeat it to retry safely.
    #[arg(long)]
    pub id: Option<String>,
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct StopArgs {
    #[arg(long)]
    pub egress_id: Option<String>,
    /// Stop every active recording of this room.
    #[arg(long = "room")]
    pub room_name: Option<String>,
}

/// Sends the command and prints the processor's reply: exit 0 if it says ok, 1 if it refused.
pub async fn run(
    record: &Record,
    env: &Env,
    timeout: Duration,
    out: &mut Output<'_>,
) -> Result<u8, CliError> {
    let (routing_key, body, message_id) = request(record)?;
    let reply = exchange(env, routing_key, &body, &message_id, timeout).await?;
    if out.json {
        out.json_value(&reply);
    } else {
        out.line(summary(&reply));
    }
    Ok(if reply["ok"] == true {
        EXIT_OK
    } else {
        EXIT_REFUSED
    })
}

/// The routing key, body and idempotency key of the command.
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
            let mut body = json!({"room_name": args.room_name});
            for (key, set) in [
                ("audio_only", args.audio_only),
                ("video_only", args.video_only),
                ("screen_share", args.screen_share),
            ] {
                if set {
                    body[key] = json!(true);
                }
            }
            for (key, value) in [
                ("kind", &args.kind),
                ("identity", &args.identity),
                ("audio_track_id", &args.audio_track_id),
                ("video_track_id", &args.video_track_id),
                ("track_id", &args.track_id),
                ("layout", &args.layout),
                ("file_format", &args.file_format),
                ("storage", &args.storage),
                ("filepath", &args.filepath),
                ("preset", &args.preset),
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

/// Publishes the command and waits for its reply.
async fn exchange(
    env: &Env,
    routing_key: &str,
    body: &Value,
    message_id: &str,
    timeout: Duration,
) -> Result<Value, CliError> {
    let client = CommandClient::new(AmqpSettings::from_env(env)?, "roomtape-cli");
    let body = body.to_string();
    let reply = client
        .send(routing_key, body.as_bytes(), message_id, timeout)
        .await;
    client.close().await;
    reply.map_err(|error| match error {
        CommandError::NoReply(_) => CliError::Timeout(timeout, message_id.to_owned()),
        CommandError::Broker(error) => CliError::Broker(error),
        CommandError::BrokerTimeout(waited) => CliError::BrokerTimeout(waited),
        CommandError::Publish(error) => error.into(),
        CommandError::BadReply(error) => CliError::BadReply(error),
    })
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
        let texts = |values: &[Value]| -> Vec<String> {
            values
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        };
        let stopping = texts(ids);
        let cancelled = texts(
            reply["cancelled_commands"]
                .as_array()
                .map_or(&[], Vec::as_slice),
        );
        let room = reply["room_name"].as_str().unwrap_or_default();
        let mut parts = Vec::new();
        if !stopping.is_empty() {
            parts.push(format!("stopping {}", stopping.join(", ")));
        }
        if !cancelled.is_empty() {
            parts.push(format!("cancelled pending start {}", cancelled.join(", ")));
        }
        return match parts.is_empty() {
            true => format!("no active or pending recordings in {room}"),
            false => parts.join("; "),
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
    use clap::Parser;

    use super::*;
    use crate::args::{Cli, Top};

    fn record_of(cli: &Cli) -> &Record {
        match &cli.command {
            Top::Record(record) => record,
            _ => panic!("not a record command"),
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
            "--preset",
            "H264_1080P_60",
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
        assert_eq!(body["preset"], "H264_1080P_60");
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
    fn a_room_stop_says_what_it_stopped_and_cancelled() {
        let reply = json!({"ok": true, "room_name": "r", "egress_ids": ["EG_1"],
                           "cancelled_commands": ["cmd-1"]});
        assert_eq!(
            summary(&reply),
            "stopping EG_1; cancelled pending start cmd-1"
        );
        let nothing = json!({"ok": true, "room_name": "r", "egress_ids": []});
        assert_eq!(summary(&nothing), "no active or pending recordings in r");
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
