//! The command messages of CONTRACTS §4 (`recording.start`, `recording.stop`), validated in one
//! place: by the processor before anything reaches LiveKit, and by the API before it publishes.

pub use crate::config::FilepathTemplate;
use crate::config::{key_problem, StorageProfile, StorageProfiles};
use crate::events::proto::EncodingOptionsPreset;
use crate::kind::{Kind, Subject};
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
/// The kinds a start may ask for (`web` egresses are only recorded when started elsewhere).
const START_KINDS: [Kind; 4] = [
    Kind::RoomComposite,
    Kind::Participant,
    Kind::TrackComposite,
    Kind::Track,
];

#[derive(Debug, Deserialize)]
struct StartMessage {
    room_name: Option<String>,
    /// `room_composite` (default), `participant`, `track_composite` or `track`.
    kind: Option<String>,
    /// A participant recording's participant.
    identity: Option<String>,
    /// A participant recording of the participant's screen share rather than its camera.
    screen_share: Option<bool>,
    audio_track_id: Option<String>,
    video_track_id: Option<String>,
    track_id: Option<String>,
    layout: Option<String>,
    file_format: Option<String>,
    audio_only: Option<bool>,
    video_only: Option<bool>,
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
    /// What it records: the kind of egress, and its participant or tracks.
    pub subject: Subject,
    /// A participant recording of the screen share (participant recordings only).
    pub screen_share: bool,
    /// A room composite's layout; `None` for the other kinds.
    pub layout: Option<String>,
    /// `None` for a track recording: LiveKit writes the track's own container (Ogg for Opus,
    /// WebM for VP8/VP9, MP4 for H.264).
    pub file_format: Option<String>,
    /// Room composites only.
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
    /// Record even if what it records is being recorded already.
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
const KNOWN_FIELDS: [&str; 21] = [
    "room_name",
    "kind",
    "identity",
    "screen_share",
    "audio_track_id",
    "video_track_id",
    "track_id",
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
    let room_name = non_empty(message.room_name.clone())
        .ok_or_else(|| invalid("room_name", "room_name is required"))?;
    let subject = subject(&message)?;
    let room_composite = subject.kind == Kind::RoomComposite;
    let layout = match room_composite {
        true => Some(layout(message.layout)?),
        false => None,
    };
    let file_format = match subject.kind {
        Kind::Track => None,
        _ => Some(file_format(message.file_format)?),
    };
    let (audio_only, video_only) = (
        message.audio_only.unwrap_or(false),
        message.video_only.unwrap_or(false),
    );
    if audio_only && video_only {
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
    let screen_share = message.screen_share.unwrap_or(false);
    let filepath = filepath_for(
        template,
        message.filepath,
        &room_name,
        &subject,
        screen_share,
    )?;
    let filepath = match &file_format {
        Some(format) => with_extension(&filepath, format),
        None => filepath,
    };
    let preset = non_empty(message.preset)
        .map(|name| preset(&name))
        .transpose()?;
    Ok(Start {
        room_name,
        screen_share,
        subject,
        layout,
        file_format,
        audio_only,
        video_only,
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

/// The start's kind and what it records, each field checked against the kind: a field of
/// another kind is refused by name rather than ignored.
fn subject(message: &StartMessage) -> Result<Subject, InvalidCommand> {
    let kind = match non_empty(message.kind.clone()) {
        None => Kind::RoomComposite,
        Some(name) => Kind::parse(&name)
            .filter(|kind| START_KINDS.contains(kind))
            .ok_or_else(|| {
                let known: Vec<&str> = START_KINDS.map(Kind::as_str).to_vec();
                invalid(
                    "kind",
                    format!("unknown kind {name:?}; one of {}", known.join(", ")),
                )
            })?,
    };
    let given = [
        ("identity", message.identity.is_some()),
        // A flag set to false asks for nothing, whatever the kind.
        ("screen_share", message.screen_share == Some(true)),
        ("audio_track_id", message.audio_track_id.is_some()),
        ("video_track_id", message.video_track_id.is_some()),
        ("track_id", message.track_id.is_some()),
        ("layout", message.layout.is_some()),
        ("audio_only", message.audio_only == Some(true)),
        ("video_only", message.video_only == Some(true)),
        ("file_format", message.file_format.is_some()),
        ("preset", message.preset.is_some()),
    ];
    let allowed: &[&str] = match kind {
        Kind::RoomComposite => &[
            "layout",
            "audio_only",
            "video_only",
            "file_format",
            "preset",
        ],
        Kind::Participant => &["identity", "screen_share", "file_format", "preset"],
        Kind::TrackComposite => &["audio_track_id", "video_track_id", "file_format", "preset"],
        // A file without transcoding: no encoding, and the track's codec picks the container.
        Kind::Track => &["track_id"],
        Kind::Web => &[],
    };
    if let Some((field, _)) = given
        .into_iter()
        .find(|(field, given)| *given && !allowed.contains(field))
    {
        return Err(invalid(
            field_name(field),
            format!(
                "{field} does not apply to a {kind} recording{}",
                why_not(kind, field)
            ),
        ));
    }
    let required = |field: &'static str, value: &Option<String>| {
        non_empty(value.clone())
            .ok_or_else(|| invalid(field, format!("a {kind} recording needs {field}")))
    };
    let subject = match kind {
        Kind::RoomComposite | Kind::Web => Subject {
            kind,
            ..Subject::default()
        },
        Kind::Participant => Subject {
            kind,
            identity: Some(required("identity", &message.identity)?),
            ..Subject::default()
        },
        Kind::TrackComposite => {
            let audio = non_empty(message.audio_track_id.clone());
            let video = non_empty(message.video_track_id.clone());
            if audio.is_none() && video.is_none() {
                return Err(invalid(
                    "audio_track_id",
                    "a track_composite recording needs audio_track_id, video_track_id or both",
                ));
            }
            Subject {
                kind,
                audio_track_id: audio,
                video_track_id: video,
                ..Subject::default()
            }
        }
        Kind::Track => Subject {
            kind,
            track_id: Some(required("track_id", &message.track_id)?),
            ..Subject::default()
        },
    };
    Ok(subject)
}

/// The `'static` name of a field [`subject`] checks.
fn field_name(field: &str) -> &'static str {
    KNOWN_FIELDS
        .into_iter()
        .find(|known| *known == field)
        .unwrap_or("body")
}

/// Why a field does not apply, where the reason is not obvious.
fn why_not(kind: Kind, field: &str) -> &'static str {
    match (kind, field) {
        (Kind::Track, "preset") => ": a track is written as it is, without transcoding",
        (Kind::Track, "file_format") => {
            ": LiveKit writes the track's own container (ogg for Opus, webm for VP8/VP9, mp4 for H.264)"
        }
        (Kind::TrackComposite, "audio_only" | "video_only") => {
            ": it records the tracks it names"
        }
        (Kind::Participant, "audio_only" | "video_only") => {
            ": it records the tracks the participant publishes"
        }
        _ => "",
    }
}

fn layout(layout: Option<String>) -> Result<String, InvalidCommand> {
    let layout = layout.unwrap_or_else(|| "speaker".into());
    match LAYOUTS.contains(&layout.as_str()) {
        true => Ok(layout),
        false => Err(invalid(
            "layout",
            format!("unknown layout {layout:?}; one of {}", LAYOUTS.join(", ")),
        )),
    }
}

fn file_format(format: Option<String>) -> Result<String, InvalidCommand> {
    let format = format.unwrap_or_else(|| "mp4".into()).to_ascii_lowercase();
    match FILE_FORMATS.contains(&format.as_str()) {
        true => Ok(format),
        false => Err(invalid(
            "file_format",
            format!("unknown file_format {format:?}; one of mp4, webm, ogg"),
        )),
    }
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
/// no `.`/`..` segment, also once LiveKit puts the room's name in `{room_name}`. Without a
/// `filepath`, a recording of one participant or track gets the template with its identity or
/// track id appended (and `-screen` for a screen share), so that two of one room started in the
/// same second do not share a key.
fn filepath_for(
    template: &FilepathTemplate,
    filepath: Option<String>,
    room: &str,
    subject: &Subject,
    screen_share: bool,
) -> Result<String, InvalidCommand> {
    let filepath = filepath.unwrap_or_else(|| {
        let name = subject
            .identity
            .iter()
            .chain(&subject.track_ids())
            .next()
            .cloned();
        let screen = if screen_share { "-screen" } else { "" };
        match name {
            Some(name) => format!("{}-{}{screen}", template.as_str(), key_safe(&name)),
            None => template.as_str().to_owned(),
        }
    });
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

/// An identity or track id as part of an object key: letters, digits, `-`, `_` and `.` kept,
/// anything else (a `/`, a space, a placeholder's braces) as `_`.
fn key_safe(name: &str) -> String {
    name.chars()
        .map(|c| match c.is_ascii_alphanumeric() || "-_.".contains(c) {
            true => c,
            false => '_',
        })
        .collect()
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
            (start.layout.as_deref(), start.file_format.as_deref()),
            (Some("speaker"), Some("mp4"))
        );
        assert_eq!(start.subject, Subject::default());
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
            (
                "recording.start",
                br#"{"room_name":"r","kind":"web"}"#,
                "unknown kind \"web\"; one of room_composite, participant",
            ),
            (
                "recording.start",
                br#"{"room_name":"r","kind":"participant"}"#,
                "a participant recording needs identity",
            ),
            (
                "recording.start",
                br#"{"room_name":"r","kind":"participant","identity":"a","layout":"grid"}"#,
                "layout does not apply to a participant recording",
            ),
            (
                "recording.start",
                br#"{"room_name":"r","kind":"participant","identity":"a","audio_only":true}"#,
                "it records the tracks the participant publishes",
            ),
            (
                "recording.start",
                br#"{"room_name":"r","identity":"a"}"#,
                "identity does not apply to a room_composite recording",
            ),
            (
                "recording.start",
                br#"{"room_name":"r","kind":"track_composite"}"#,
                "needs audio_track_id, video_track_id or both",
            ),
            (
                "recording.start",
                br#"{"room_name":"r","kind":"track","track_id":"TR_a","preset":"H264_720P_30"}"#,
                "preset does not apply to a track recording: a track is written as it is",
            ),
            (
                "recording.start",
                br#"{"room_name":"r","kind":"track","track_id":"TR_a","file_format":"ogg"}"#,
                "LiveKit writes the track's own container",
            ),
            (
                "recording.start",
                br#"{"room_name":"r","kind":"track","track_id":" "}"#,
                "a track recording needs track_id",
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

    fn start_of(body: &[u8]) -> Start {
        match parse(
            "recording.start",
            body,
            &storage(),
            &FilepathTemplate::default(),
        ) {
            Ok(Command::Start(start)) => *start,
            other => panic!("not a start: {other:?}"),
        }
    }

    #[test]
    fn each_kind_keeps_its_own_fields_and_a_key_of_its_own() {
        let alice = start_of(
            br#"{"room_name":"r","kind":"participant","identity":"alice/1","screen_share":true}"#,
        );
        assert_eq!(alice.subject.kind, Kind::Participant);
        assert_eq!(alice.subject.identity.as_deref(), Some("alice/1"));
        assert!(alice.screen_share);
        assert_eq!(alice.layout, None);
        assert_eq!(
            alice.filepath,
            "recordings/{room_name}/{time}-alice_1-screen.mp4"
        );

        let tracks = start_of(
            br#"{"room_name":"r","kind":"track_composite","audio_track_id":"TR_a","file_format":"ogg"}"#,
        );
        assert_eq!(tracks.subject.audio_track_id.as_deref(), Some("TR_a"));
        assert_eq!(tracks.subject.video_track_id, None);
        assert_eq!(tracks.filepath, "recordings/{room_name}/{time}-TR_a.ogg");

        let track = start_of(br#"{"room_name":"r","kind":"track","track_id":"TR_v"}"#);
        assert_eq!(track.subject.track_ids(), vec!["TR_v".to_owned()]);
        assert_eq!(track.file_format, None);
        // No extension: LiveKit adds the one of the track's container.
        assert_eq!(track.filepath, "recordings/{room_name}/{time}-TR_v");
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
