//! The command messages of CONTRACTS §4 (`recording.start`, `recording.stop`), validated in one
//! place: by the processor before anything reaches LiveKit, and by the API before it publishes.

pub use crate::config::FilepathTemplate;
use crate::config::{key_problem, StorageProfile, StorageProfiles};
use crate::events::proto::EncodingOptionsPreset;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

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
#[derive(Debug, Deserialize)]
struct StartMessage {
    room_name: Option<String>,
    layout: Option<String>,
    file_format: Option<String>,
    #[serde(default)]
    audio_only: bool,
    #[serde(default)]
    video_only: bool,
    #[serde(default)]
    allow_concurrent: bool,
    storage: Option<String>,
    filepath: Option<String>,
    /// One of LiveKit's `EncodingOptionsPreset` names (`H264_1080P_30`, ...).
    preset: Option<String>,
    stream_id: Option<String>,
    user_id: Option<String>,
    metadata: Option<Value>,
    /// Who asked (the API sets `{"kind", "identity"}` of the caller's token); kept in the
    /// recording's `metadata.requested_by`.
    requested_by: Option<Value>,
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
    /// LiveKit's encoding preset; LiveKit's default (`H264_720P_30`) when `None`.
    pub preset: Option<EncodingOptionsPreset>,
    pub stream_id: Option<String>,
    pub user_id: Option<String>,
    pub metadata: Value,
    /// Record even if the room already has an active recording.
    pub allow_concurrent: bool,
    /// SHA-256 of the body's canonical JSON (keys sorted): a `message_id` seen again must come
    /// with the same body.
    pub fingerprint: [u8; 32],
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

/// Why a command is refused; the reply's `invalid_command` message, which names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct InvalidCommand {
    /// The field at fault (`body` when the message as a whole is).
    pub field: &'static str,
    pub reason: String,
}

fn invalid(field: &'static str, reason: impl Into<String>) -> InvalidCommand {
    InvalidCommand {
        field,
        reason: reason.into(),
    }
}

/// `kind` is the routing key (`recording.start` / `recording.stop`) or, for messages sent
/// straight to the queue, the AMQP `type`.
pub fn parse(
    kind: &str,
    body: &[u8],
    storage: &StorageProfiles,
    template: &FilepathTemplate,
) -> Result<Command, InvalidCommand> {
    match kind {
        "recording.start" => {
            parse_start(body, storage, template).map(|s| Command::Start(Box::new(s)))
        }
        "recording.stop" => {
            let body: Value = serde_json::from_slice(body)
                .map_err(|e| invalid("body", format!("bad JSON: {e}")))?;
            let message: StopMessage = fields(body)?;
            match (non_empty(message.egress_id), non_empty(message.room_name)) {
                (Some(egress_id), _) => Ok(Command::Stop(Stop::Egress(egress_id))),
                (None, Some(room)) => Ok(Command::Stop(Stop::Room(room))),
                (None, None) => Err(invalid(
                    "egress_id",
                    "recording.stop needs egress_id or room_name",
                )),
            }
        }
        other => Err(invalid(
            "type",
            format!(
            "unknown command {other:?}: publish with routing key recording.start or recording.stop"
        ),
        )),
    }
}

/// The message's fields; a value of the wrong type is named (`audio_only: invalid type: …`).
fn fields<T: serde::de::DeserializeOwned>(body: Value) -> Result<T, InvalidCommand> {
    serde_path_to_error::deserialize(body).map_err(|error| {
        let path = error.path().to_string();
        let head = path.split(['.', '[']).next().unwrap_or_default();
        let field = KNOWN_FIELDS
            .into_iter()
            .find(|known| *known == head)
            .unwrap_or("body");
        match field {
            "body" => invalid(field, format!("bad JSON: {}", error.into_inner())),
            _ => invalid(field, error.to_string()),
        }
    })
}

/// A `recording.start` body.
pub fn parse_start(
    body: &[u8],
    storage: &StorageProfiles,
    template: &FilepathTemplate,
) -> Result<Start, InvalidCommand> {
    let body: Value =
        serde_json::from_slice(body).map_err(|e| invalid("body", format!("bad JSON: {e}")))?;
    let fingerprint = fingerprint(&body);
    let message: StartMessage = fields(body)?;
    start(message, storage, template, fingerprint)
}

/// The fields of both commands, so an error can name its field with a `'static` name.
const KNOWN_FIELDS: [&str; 15] = [
    "room_name",
    "layout",
    "file_format",
    "audio_only",
    "video_only",
    "allow_concurrent",
    "storage",
    "filepath",
    "preset",
    "stream_id",
    "user_id",
    "metadata",
    "requested_by",
    "egress_id",
    "body",
];

fn non_empty(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

/// Keys sorted, so documents that differ only in key order or spacing are the same command.
fn fingerprint(body: &Value) -> [u8; 32] {
    let mut canonical = body.clone();
    canonical.sort_all_objects();
    Sha256::digest(canonical.to_string().as_bytes()).into()
}

fn start(
    message: StartMessage,
    storage: &StorageProfiles,
    template: &FilepathTemplate,
    fingerprint: [u8; 32],
) -> Result<Start, InvalidCommand> {
    let room_name = non_empty(message.room_name)
        .ok_or_else(|| invalid("room_name", "room_name is required"))?;
    let layout = message.layout.unwrap_or_else(|| "speaker".into());
    if !LAYOUTS.contains(&layout.as_str()) {
        return Err(invalid(
            "layout",
            format!("unknown layout {layout:?}; one of {}", LAYOUTS.join(", ")),
        ));
    }
    let file_format = message
        .file_format
        .unwrap_or_else(|| "mp4".into())
        .to_ascii_lowercase();
    if !FILE_FORMATS.contains(&file_format.as_str()) {
        return Err(invalid(
            "file_format",
            format!("unknown file_format {file_format:?}; one of mp4, webm, ogg"),
        ));
    }
    if message.audio_only && message.video_only {
        return Err(invalid(
            "video_only",
            "audio_only and video_only cannot both be true",
        ));
    }
    let profile = match non_empty(message.storage) {
        Some(name) => storage
            .get(&name)
            .ok_or_else(|| invalid("storage", format!("unknown storage profile {name:?}")))?,
        None => storage.default_profile(),
    };
    let mut metadata = match message.metadata {
        None | Some(Value::Null) => Value::Object(Default::default()),
        Some(object @ Value::Object(_)) => object,
        Some(_) => return Err(invalid("metadata", "metadata must be a JSON object")),
    };
    match message.requested_by {
        None | Some(Value::Null) => {}
        Some(by @ Value::Object(_)) => metadata["requested_by"] = by,
        Some(_) => {
            return Err(invalid(
                "requested_by",
                "requested_by must be a JSON object",
            ))
        }
    }
    let filepath = with_extension(
        &filepath_for(template, message.filepath, &room_name)?,
        &file_format,
    );
    let preset = non_empty(message.preset)
        .map(|name| preset(&name))
        .transpose()?;
    Ok(Start {
        room_name,
        layout,
        file_format,
        audio_only: message.audio_only,
        video_only: message.video_only,
        profile: profile.clone(),
        filepath,
        preset,
        stream_id: non_empty(message.stream_id),
        user_id: non_empty(message.user_id),
        metadata,
        allow_concurrent: message.allow_concurrent,
        fingerprint,
    })
}

/// LiveKit's `EncodingOptionsPreset` of that name, exactly as LiveKit spells it.
fn preset(name: &str) -> Result<EncodingOptionsPreset, InvalidCommand> {
    EncodingOptionsPreset::from_str_name(name).ok_or_else(|| {
        let known: Vec<&str> = (0..)
            .map_while(|value| EncodingOptionsPreset::try_from(value).ok())
            .map(|preset| preset.as_str_name())
            .collect();
        invalid(
            "preset",
            format!(
                "unknown preset {name:?}; one of LiveKit's {}",
                known.join(", ")
            ),
        )
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

/// `filepath` (or the template) checked for `room`: the fixed prefix kept, no absolute key,
/// no `.`/`..` segment, also once LiveKit puts the room's name in `{room_name}`.
fn filepath_for(
    template: &FilepathTemplate,
    filepath: Option<String>,
    room: &str,
) -> Result<String, InvalidCommand> {
    let filepath = filepath.unwrap_or_else(|| template.as_str().to_owned());
    if let Some(problem) = key_problem(&filepath) {
        return Err(invalid("filepath", problem));
    }
    if !filepath.starts_with(template.prefix()) {
        return Err(invalid(
            "filepath",
            format!(
                "must start with {:?} (COMMAND_FILEPATH_TEMPLATE)",
                template.prefix()
            ),
        ));
    }
    if filepath.contains("{room_name}") && (room == "." || room == ".." || room.contains('/')) {
        return Err(invalid(
            "room_name",
            format!("room {room:?} cannot be part of an object key (filepath uses {{room_name}})"),
        ));
    }
    Ok(filepath)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Env;

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
            &FilepathTemplate::default(),
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
    fn who_asked_is_kept_in_the_metadata() {
        let body = br#"{"room_name":"r","metadata":{"course":"algebra","requested_by":"me"},
                        "requested_by":{"kind":"livekit","identity":"alice"}}"#;
        let Command::Start(start) = parse(
            "recording.start",
            body,
            &storage(),
            &FilepathTemplate::default(),
        )
        .expect("valid") else {
            panic!("not a start");
        };
        assert_eq!(
            start.metadata,
            serde_json::json!({"course": "algebra",
                               "requested_by": {"kind": "livekit", "identity": "alice"}})
        );
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
            (
                "recording.start",
                br#"{"room_name":"r","requested_by":"alice"}"#,
                "requested_by must be a JSON object",
            ),
            ("recording.start", b"{not json", "bad JSON"),
            (
                "recording.start",
                br#"{"room_name":"r","audio_only":"yes"}"#,
                "audio_only: invalid type",
            ),
            (
                "recording.start",
                br#"{"room_name":"r","filepath":"private/{time}"}"#,
                "must start with \"recordings/\"",
            ),
            (
                "recording.start",
                br#"{"room_name":"r","filepath":"recordings/../x"}"#,
                ". or .. segments",
            ),
            (
                "recording.start",
                br#"{"room_name":"r","filepath":"/recordings/x"}"#,
                "must not start with /",
            ),
            (
                "recording.start",
                br#"{"room_name":".."}"#,
                "cannot be part of an object key",
            ),
            (
                "recording.start",
                br#"{"room_name":"a/../../b"}"#,
                "cannot be part of an object key",
            ),
            ("recording.stop", b"{}", "needs egress_id or room_name"),
            ("recording.pause", b"{}", "unknown command"),
        ] {
            let error =
                parse(kind, body, &storage(), &FilepathTemplate::default()).expect_err(expected);
            assert!(error.reason.contains(expected), "{expected}: {error}");
        }
    }

    fn fingerprint_of(body: &[u8]) -> [u8; 32] {
        match parse(
            "recording.start",
            body,
            &storage(),
            &FilepathTemplate::default(),
        ) {
            Ok(Command::Start(start)) => start.fingerprint,
            other => panic!("not a start: {other:?}"),
        }
    }

    #[test]
    fn the_fingerprint_ignores_key_order_and_spacing_only() {
        let first = fingerprint_of(br#"{"room_name":"r","layout":"grid"}"#);
        assert_eq!(
            first,
            fingerprint_of(br#"{ "layout": "grid", "room_name": "r" }"#)
        );
        assert_ne!(
            first,
            fingerprint_of(br#"{"room_name":"r","layout":"speaker"}"#)
        );
    }

    #[test]
    fn stop_by_egress_wins_over_room() {
        let command = parse(
            "recording.stop",
            br#"{"egress_id":"EG_1","room_name":"r"}"#,
            &storage(),
            &FilepathTemplate::default(),
        );
        assert!(matches!(command, Ok(Command::Stop(Stop::Egress(id))) if id == "EG_1"));
    }
}
