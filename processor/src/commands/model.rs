//! The command messages of CONTRACTS §4, validated before anything reaches LiveKit.

use roomtape_shared::config::{StorageProfile, StorageProfiles};
use serde::Deserialize;
use serde_json::Value;

/// Layouts LiveKit's room composite template knows.
const LAYOUTS: [&str; 9] = [
    "speaker",
    "speaker-light",
    "speaker-dark",
    "grid",
    "grid-light",
    "grid-dark",
    "single-speaker",
    "single-speaker-light",
    "single-speaker-dark",
];
const FILE_FORMATS: [&str; 3] = ["mp4", "webm", "ogg"];
pub const DEFAULT_FILEPATH: &str = "recordings/{room_name}/{time}";

#[derive(Debug, Deserialize)]
struct StartMessage {
    room_name: Option<String>,
    layout: Option<String>,
    file_format: Option<String>,
    #[serde(default)]
    audio_only: bool,
    #[serde(default)]
    video_only: bool,
    storage: Option<String>,
    filepath: Option<String>,
    stream_id: Option<String>,
    user_id: Option<String>,
    metadata: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct StopMessage {
    egress_id: Option<String>,
    room_name: Option<String>,
}

/// A valid `recording.start`.
#[derive(Debug, Clone)]
pub struct Start {
    pub room_name: String,
    pub layout: String,
    pub file_format: String,
    pub audio_only: bool,
    pub video_only: bool,
    pub profile: StorageProfile,
    /// With the format's extension.
    pub filepath: String,
    pub stream_id: Option<String>,
    pub user_id: Option<String>,
    pub metadata: Value,
}

/// What a valid `recording.stop` stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    Egress(String),
    Room(String),
}

#[derive(Debug, Clone)]
pub enum Command {
    Start(Box<Start>),
    Stop(Stop),
}

/// Why a command is refused; the reply's `invalid_command` message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidCommand(pub String);

fn invalid(message: impl Into<String>) -> InvalidCommand {
    InvalidCommand(message.into())
}

/// `kind` is the routing key (`recording.start` / `recording.stop`) or, for messages sent
/// straight to the queue, the AMQP `type`.
pub fn parse(
    kind: &str,
    body: &[u8],
    storage: &StorageProfiles,
) -> Result<Command, InvalidCommand> {
    match kind {
        "recording.start" => {
            let message: StartMessage =
                serde_json::from_slice(body).map_err(|e| invalid(format!("bad JSON: {e}")))?;
            start(message, storage).map(|s| Command::Start(Box::new(s)))
        }
        "recording.stop" => {
            let message: StopMessage =
                serde_json::from_slice(body).map_err(|e| invalid(format!("bad JSON: {e}")))?;
            match (non_empty(message.egress_id), non_empty(message.room_name)) {
                (Some(egress_id), _) => Ok(Command::Stop(Stop::Egress(egress_id))),
                (None, Some(room)) => Ok(Command::Stop(Stop::Room(room))),
                (None, None) => Err(invalid("recording.stop needs egress_id or room_name")),
            }
        }
        other => Err(invalid(format!(
            "unknown command {other:?}: publish with routing key recording.start or recording.stop"
        ))),
    }
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

fn start(message: StartMessage, storage: &StorageProfiles) -> Result<Start, InvalidCommand> {
    let room_name = non_empty(message.room_name).ok_or_else(|| invalid("room_name is required"))?;
    let layout = message.layout.unwrap_or_else(|| "speaker".into());
    if !LAYOUTS.contains(&layout.as_str()) {
        return Err(invalid(format!(
            "unknown layout {layout:?}; one of {}",
            LAYOUTS.join(", ")
        )));
    }
    let file_format = message
        .file_format
        .unwrap_or_else(|| "mp4".into())
        .to_ascii_lowercase();
    if !FILE_FORMATS.contains(&file_format.as_str()) {
        return Err(invalid(format!(
            "unknown file_format {file_format:?}; one of mp4, webm, ogg"
        )));
    }
    if message.audio_only && message.video_only {
        return Err(invalid("audio_only and video_only cannot both be true"));
    }
    let profile = match non_empty(message.storage) {
        Some(name) => storage
            .get(&name)
            .ok_or_else(|| invalid(format!("unknown storage profile {name:?}")))?,
        None => storage.default_profile(),
    };
    let metadata = match message.metadata {
        None | Some(Value::Null) => Value::Object(Default::default()),
        Some(object @ Value::Object(_)) => object,
        Some(_) => return Err(invalid("metadata must be a JSON object")),
    };
    let filepath = with_extension(
        &message.filepath.unwrap_or_else(|| DEFAULT_FILEPATH.into()),
        &file_format,
    );
    Ok(Start {
        room_name,
        layout,
        file_format,
        audio_only: message.audio_only,
        video_only: message.video_only,
        profile: profile.clone(),
        filepath,
        stream_id: non_empty(message.stream_id),
        user_id: non_empty(message.user_id),
        metadata,
    })
}

/// `recordings/{room_name}/{time}` → `recordings/{room_name}/{time}.mp4`, unless the path
/// already names its extension.
fn with_extension(filepath: &str, format: &str) -> String {
    let name = filepath.rsplit('/').next().unwrap_or(filepath);
    if name.contains('.') {
        filepath.to_owned()
    } else {
        format!("{filepath}.{format}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use roomtape_shared::config::Env;

    fn storage() -> StorageProfiles {
        StorageProfiles::from_env(&Env::from_pairs([
            ("S3_ENDPOINT", "http://127.0.0.1:8014"),
            ("S3_BUCKET", "recordings"),
            ("S3_ACCESS_KEY_ID", "k"),
            ("S3_SECRET_ACCESS_KEY", "s"),
        ]))
        .expect("storage")
    }

    #[test]
    fn a_minimal_start_gets_the_defaults() {
        let Command::Start(start) = parse(
            "recording.start",
            br#"{"room_name":"stream-123"}"#,
            &storage(),
        )
        .expect("valid") else {
            panic!("not a start");
        };
        assert_eq!(
            (start.layout.as_str(), start.file_format.as_str()),
            ("speaker", "mp4")
        );
        assert_eq!(start.filepath, "recordings/{room_name}/{time}.mp4");
        assert_eq!(start.profile.name, "default");
    }

    #[test]
    fn invalid_commands_say_what_is_wrong() {
        for (kind, body, expected) in [
            (
                "recording.start",
                &br#"{"layout":"grid"}"#[..],
                "room_name is required",
            ),
            (
                "recording.start",
                br#"{"room_name":"r","layout":"mosaic"}"#,
                "unknown layout",
            ),
            (
                "recording.start",
                br#"{"room_name":"r","file_format":"avi"}"#,
                "unknown file_format",
            ),
            (
                "recording.start",
                br#"{"room_name":"r","storage":"nas"}"#,
                "unknown storage profile",
            ),
            (
                "recording.start",
                br#"{"room_name":"r","audio_only":true,"video_only":true}"#,
                "cannot both",
            ),
            (
                "recording.start",
                br#"{"room_name":"r","metadata":[1]}"#,
                "metadata must be",
            ),
            ("recording.start", b"{not json", "bad JSON"),
            ("recording.stop", b"{}", "needs egress_id or room_name"),
            ("recording.pause", b"{}", "unknown command"),
        ] {
            let error = parse(kind, body, &storage()).expect_err(expected);
            assert!(error.0.contains(expected), "{expected}: {error}");
        }
    }

    #[test]
    fn stop_by_egress_wins_over_room() {
        let command = parse(
            "recording.stop",
            br#"{"egress_id":"EG_1","room_name":"r"}"#,
            &storage(),
        );
        assert!(matches!(command, Ok(Command::Stop(Stop::Egress(id))) if id == "EG_1"));
    }
}
