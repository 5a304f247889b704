//! `POST /api/v1/rooms/{room}/start-recording/` and `…/stop-recording/`: the Django deployment's
//! two endpoints, carried out as CONTRACTS §4 commands. The API never calls LiveKit itself: it
//! publishes the command, the processor carries it out, and its reply becomes the answer.

use std::time::Duration;

use actix_web::http::header::HeaderMap;
use actix_web::{web, HttpRequest, HttpResponse};
use roomtape_shared::commands::{self, FilepathTemplate, InvalidCommand};
use roomtape_shared::config::StorageProfiles;
use roomtape_shared::db::recordings::Recording;
use roomtape_shared::library::Library;
use roomtape_shared::queue::commands::CommandClient;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::grants::Action;

/// The header whose value becomes the command's `message_id`, so a retried POST starts at most
/// one recording.
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";
/// AMQP's `message_id` is a short string.
const MAX_IDEMPOTENCY_KEY: usize = 255;

/// What start and stop need: the broker client, the storage profiles a start may name, and how
/// long to wait for the processor's reply (`API_COMMAND_TIMEOUT`).
#[derive(Debug)]
pub struct Control {
    pub commands: CommandClient,
    pub storage: StorageProfiles,
    pub filepath_template: FilepathTemplate,
    pub timeout: Duration,
}

/// The body of a start; every field is optional.
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartRequest {
    /// What to record: `room_composite` (default: the room, in `layout`), `participant`
    /// (`identity`, optional `screen_share`), `track_composite` (`audio_track_id` and/or
    /// `video_track_id`) or `track` (`track_id`: the track's own file, without transcoding).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The participant a `participant` recording records.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// A `participant` recording of the participant's screen share.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub screen_share: Option<bool>,
    /// A `track_composite`'s audio track.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audio_track_id: Option<String>,
    /// A `track_composite`'s video track.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub video_track_id: Option<String>,
    /// The track a `track` recording writes as it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub track_id: Option<String>,
    /// Room composites: `speaker` (default), `grid`, `single-speaker`, or their `-light`/`-dark`
    /// variants.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layout: Option<String>,
    /// `mp4` (default), `webm` or `ogg`; not for a `track`, whose codec picks its container.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_format: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audio_only: Option<bool>,
    /// A configured storage profile (default: `DEFAULT_STORAGE`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// A JSON object kept with the recording.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
    /// Record even if what it records (the room's composite, the participant, the track) is
    /// being recorded already.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_concurrent: Option<bool>,
    /// The object key, within `COMMAND_FILEPATH_TEMPLATE`'s fixed prefix (default: the
    /// template); LiveKit fills `{room_name}`, `{time}` and its other placeholders.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filepath: Option<String>,
    /// One of LiveKit's `EncodingOptionsPreset` names, such as `H264_1080P_30` (default:
    /// LiveKit's, `H264_720P_30`); not for a `track`, which is not transcoded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preset: Option<String>,
}

/// A started or stopped recording: the Django deployment's shape.
#[derive(Debug, Serialize, ToSchema)]
pub struct ControlAnswer {
    /// The LiveKit egress id; `null` when a stop only cancelled a pending start.
    pub recording_id: Option<String>,
    /// `starting` or `stopping` (`cancelled` when a stop only cancelled a pending start).
    pub status: String,
    pub message: String,
    pub recording: Option<Recording>,
    /// Every egress a stop stopped (a room may be recorded more than once).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub recording_ids: Vec<String>,
}

/// Starts recording the room.
#[utoipa::path(
    post,
    path = "/api/v1/rooms/{room}/start-recording/",
    tag = "recordings",
    params(
        ("room" = String, Path, description = "LiveKit room name, percent-encoded"),
        ("Idempotency-Key" = Option<String>, Header, description = "The command's id: a retried request with the same key starts at most one recording"),
    ),
    request_body(content = Option<StartRequest>, content_type = "application/json"),
    responses(
        (status = 201, description = "Started", body = ControlAnswer),
        (status = 400, description = "`invalid_request`: the message names the field", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "`forbidden`: a read token, or a LiveKit token without the grant, which the message names", body = ErrorBody),
        (status = 409, description = "`already_recording`, or `cancelled` by a stop", body = ErrorBody),
        (status = 422, description = "`idempotency_conflict`: the key was used with another body", body = ErrorBody),
        (status = 502, description = "LiveKit refused (`egress_error`, `room_not_found`) or was not reached by the start deadline (`deadline_exceeded`)", body = ErrorBody),
        (status = 503, description = "The broker is unavailable", body = ErrorBody),
        (status = 504, description = "`no_reply`: no processor answered within API_COMMAND_TIMEOUT", body = ErrorBody),
    ),
    security(("bearer" = []), ("livekit" = []))
)]
pub async fn start(
    caller: Caller,
    control: web::Data<Control>,
    library: web::Data<Library>,
    room: web::Path<String>,
    request: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let message_id = idempotency_key(request.headers())?;
    let started = start_recording(
        &caller,
        &control,
        &library,
        &room,
        &message_id,
        start_request(&body)?,
    )
    .await?;
    Ok(HttpResponse::Created().json(ControlAnswer {
        recording_id: started.egress_id,
        status: started.status,
        message: STARTED.to_owned(),
        recording: started.recording,
        recording_ids: Vec::new(),
    }))
}

/// What a start answers with.
pub const STARTED: &str = "Recording started successfully.";

/// A start the processor carried out.
#[derive(Debug)]
pub struct Started {
    pub egress_id: Option<String>,
    pub status: String,
    pub recording: Option<Recording>,
    /// The object key asked of LiveKit, with the file's extension; LiveKit fills any
    /// placeholder left in it.
    pub filepath: String,
}

/// Starts recording `room` for `caller` as the command `message_id`: checked against the
/// caller's grants and validated as the processor would before anything is published.
pub async fn start_recording(
    caller: &Caller,
    control: &Control,
    library: &Library,
    room: &str,
    message_id: &str,
    request: StartRequest,
) -> Result<Started, ApiError> {
    caller.check(Action::Start(room))?;
    let command = start_command(room, request, &caller.requested_by())?;
    let template = &control.filepath_template;
    let filepath = commands::parse_start(&command, &control.storage, template)
        .map_err(invalid)?
        .filepath;
    let reply = control
        .commands
        .send("recording.start", &command, message_id, control.timeout)
        .await?;
    let reply = accepted(reply)?;
    let egress_id = reply["egress_id"].as_str().map(str::to_owned);
    tracing::info!(room = %room, egress_id = ?egress_id, kind = ?caller.kind, identity = %caller.name(), "recording started");
    Ok(Started {
        recording: view(library, egress_id.as_deref()).await?,
        status: reply["status"].as_str().unwrap_or("starting").to_owned(),
        egress_id,
        filepath,
    })
}

/// Stops every active recording of the room, and cancels its pending starts.
#[utoipa::path(
    post,
    path = "/api/v1/rooms/{room}/stop-recording/",
    tag = "recordings",
    params(("room" = String, Path, description = "LiveKit room name, percent-encoded")),
    responses(
        (status = 200, description = "Stopping", body = ControlAnswer),
        (status = 401, body = ErrorBody),
        (status = 403, description = "`forbidden`: a read token, or a LiveKit token without the grant, which the message names", body = ErrorBody),
        (status = 404, description = "`not_recording`: nothing active in the room", body = ErrorBody),
        (status = 502, description = "LiveKit refused", body = ErrorBody),
        (status = 503, description = "The broker is unavailable", body = ErrorBody),
        (status = 504, description = "`no_reply`: no processor answered within API_COMMAND_TIMEOUT", body = ErrorBody),
    ),
    security(("bearer" = []), ("livekit" = []))
)]
pub async fn stop(
    caller: Caller,
    control: web::Data<Control>,
    library: web::Data<Library>,
    room: web::Path<String>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    caller.check(Action::Stop(&room))?;
    let message_id = idempotency_key(request.headers())?;
    let command =
        json!({"room_name": room.as_str(), "requested_by": caller.requested_by()}).to_string();
    let reply = control
        .commands
        .send(
            "recording.stop",
            command.as_bytes(),
            &message_id,
            control.timeout,
        )
        .await?;
    let reply = accepted(reply)?;
    let stopped = strings(&reply["egress_ids"]);
    let cancelled = strings(&reply["cancelled_commands"]);
    tracing::info!(room = %room, egress_ids = ?stopped, cancelled = ?cancelled, kind = ?caller.kind, identity = %caller.name(), "recording stopped");
    let (status, message) = match (stopped.first(), cancelled.is_empty()) {
        (Some(_), _) => ("stopping", "Recording stopped successfully."),
        (None, false) => ("cancelled", "A pending start was cancelled."),
        (None, true) => return Err(ApiError::NotRecording(room.into_inner())),
    };
    Ok(HttpResponse::Ok().json(ControlAnswer {
        recording_id: stopped.first().cloned(),
        status: status.to_owned(),
        message: message.to_owned(),
        recording: view(&library, stopped.first().map(String::as_str)).await?,
        recording_ids: stopped,
    }))
}

/// The `Idempotency-Key` header, or a fresh id.
pub fn idempotency_key(headers: &HeaderMap) -> Result<String, ApiError> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(uuid::Uuid::new_v4().to_string());
    };
    let key = value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|key| !key.is_empty() && key.len() <= MAX_IDEMPOTENCY_KEY)
        .ok_or_else(|| {
            ApiError::invalid(
                IDEMPOTENCY_KEY,
                format!("must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"),
            )
        })?;
    Ok(key.to_owned())
}

/// A start's body: a JSON object of [`StartRequest`]'s fields; empty is all defaults.
fn start_request(body: &[u8]) -> Result<StartRequest, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(StartRequest::default());
    }
    json_object(body)
}

/// A body that must be a JSON object of `T`'s fields; an error names the field at fault.
pub fn json_object<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let document: Value = serde_json::from_slice(body).map_err(|e| ApiError::invalid("body", e))?;
    if !document.is_object() {
        return Err(ApiError::invalid("body", "must be a JSON object"));
    }
    serde_path_to_error::deserialize(document).map_err(|error| {
        let field = error.path().to_string();
        ApiError::invalid(&field, error.into_inner())
    })
}

/// The `recording.start` message: the request's fields, the room from the path, and who asked
/// (`requested_by`, which the body cannot set).
fn start_command(
    room: &str,
    request: StartRequest,
    requested_by: &Value,
) -> Result<Vec<u8>, ApiError> {
    let mut command = serde_json::to_value(request).map_err(|e| ApiError::invalid("body", e))?;
    command["room_name"] = json!(room);
    command["requested_by"] = requested_by.clone();
    Ok(command.to_string().into_bytes())
}

fn invalid(error: InvalidCommand) -> ApiError {
    ApiError::invalid(error.field, error.reason)
}

/// The reply if the processor carried the command out, else its refusal.
fn accepted(reply: Value) -> Result<Value, ApiError> {
    if reply["ok"] == true {
        return Ok(reply);
    }
    let text = |key: &str| reply["error"][key].as_str().unwrap_or_default().to_owned();
    Err(ApiError::Refused {
        code: text("code"),
        message: text("message"),
    })
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|item| item.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The recording as the rest of the API shows it.
async fn view(library: &Library, egress_id: Option<&str>) -> Result<Option<Recording>, ApiError> {
    let Some(egress_id) = egress_id else {
        return Ok(None);
    };
    Ok(Some(library.details(egress_id).await?.recording))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_start_body_of_the_wrong_shape_names_its_field() {
        let error = start_request(br#"{"audio_only": "yes"}"#).expect_err("bad type");
        assert!(error.to_string().starts_with("audio_only: "), "{error}");
        let error = start_request(br#"{"room_name": "x"}"#).expect_err("not allowed");
        assert!(
            error.to_string().contains("unknown field `room_name`"),
            "the room is the path's: {error}"
        );
        let error = start_request(b"[1]").expect_err("not an object");
        let error_forged =
            start_request(br#"{"requested_by": {}}"#).expect_err("who asked is the API's to say");
        assert!(
            error_forged
                .to_string()
                .contains("unknown field `requested_by`"),
            "{error_forged}"
        );
        assert!(error.to_string().starts_with("body: "), "{error}");
    }

    #[test]
    fn the_room_comes_from_the_path_and_an_empty_body_is_all_defaults() {
        let by = json!({"kind": "livekit", "identity": "alice"});
        let request = start_request(b"").expect("empty body");
        let command: Value =
            serde_json::from_slice(&start_command("class 1", request, &by).expect("command"))
                .expect("json");
        assert_eq!(
            command,
            json!({"room_name": "class 1", "requested_by": {"kind": "livekit", "identity": "alice"}})
        );
    }
}
