//! `POST /functions/v1/livekit-egress`: the start function of the Supabase deployment
//! (`{roomName, streamId}` → `{success, egressId, filename, message}`) at the same path, so its
//! frontend changes only the base URL and sends the streamer's LiveKit token (minted with
//! `roomRecord`, as that app already does) instead of its Supabase session. The start itself is
//! `recording.start`, under the same grants, validation and reply rules as
//! `POST /api/v1/rooms/{room}/start-recording/`.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use roomtape_shared::clock::Clock;
use roomtape_shared::library::Library;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{Caller, Kind};
use crate::control::{self, Control, StartRequest, STARTED};
use crate::error::{ApiError, ErrorBody};

/// The function's body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EgressFunctionRequest {
    /// The LiveKit room to record.
    pub room_name: String,
    /// The app's stream the recording belongs to (`stream_id`).
    pub stream_id: Option<String>,
}

/// The function's answer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EgressFunctionAnswer {
    pub success: bool,
    pub egress_id: String,
    /// The object key the recording is written to.
    pub filename: String,
    pub message: String,
}

/// Starts recording a room, in the shape of the Supabase deployment's `livekit-egress`.
#[utoipa::path(
    post,
    path = "/functions/v1/livekit-egress",
    tag = "recordings",
    params(("Idempotency-Key" = Option<String>, Header, description = "The command's id: a retried request with the same key starts at most one recording")),
    request_body(content = EgressFunctionRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Started", body = EgressFunctionAnswer),
        (status = 400, description = "`invalid_request`: the message names the field", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "`forbidden`: a LiveKit token without `roomRecord` for the room, or a read token", body = ErrorBody),
        (status = 409, description = "`already_recording`", body = ErrorBody),
        (status = 502, description = "LiveKit refused or was not reached by the start deadline", body = ErrorBody),
        (status = 503, description = "The broker is unavailable", body = ErrorBody),
        (status = 504, description = "`no_reply`: no processor answered within API_COMMAND_TIMEOUT", body = ErrorBody),
    ),
    security(("livekit" = []), ("bearer" = []))
)]
pub async fn start(
    caller: Caller,
    control: web::Data<Control>,
    library: web::Data<Library>,
    clock: web::Data<Clock>,
    request: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let message_id = control::idempotency_key(request.headers())?;
    let body: EgressFunctionRequest = control::json_object(&body)?;
    let room = body.room_name.trim().to_owned();
    if room.is_empty() {
        return Err(ApiError::invalid("roomName", "roomName is required"));
    }
    let start = StartRequest {
        stream_id: body.stream_id,
        // The app mints the streamer's token with the user's id as its identity.
        user_id: match caller.kind {
            Kind::LiveKit => caller.identity.clone(),
            Kind::Static => None,
        },
        filepath: Some(fixed_filepath(
            control.filepath_template.as_str(),
            &room,
            DateTime::<Utc>::from(clock.now()),
        )),
        ..StartRequest::default()
    };
    let started =
        control::start_recording(&caller, &control, &library, &room, &message_id, start).await?;
    Ok(HttpResponse::Ok().json(EgressFunctionAnswer {
        success: true,
        egress_id: started.egress_id.unwrap_or_default(),
        filename: started.filepath,
        message: STARTED.to_owned(),
    }))
}

/// `COMMAND_FILEPATH_TEMPLATE` with `{room_name}` and `{time}` filled in as LiveKit fills them
/// (`{time}` is `2006-01-02T150405`, UTC), so the answer can name the file before LiveKit writes
/// it. Other placeholders are left for LiveKit.
fn fixed_filepath(template: &str, room: &str, now: DateTime<Utc>) -> String {
    template
        .replace("{room_name}", room)
        .replace("{time}", &now.format("%Y-%m-%dT%H%M%S").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_room_and_time_are_filled_in_as_livekit_does() {
        let now = DateTime::from_timestamp(1_700_000_000, 0).expect("time");
        assert_eq!(
            fixed_filepath("recordings/{room_name}/{time}", "stream-123", now),
            "recordings/stream-123/2023-11-14T221320"
        );
        assert_eq!(
            fixed_filepath("livekit-recordings/{room_name}_{time}-{room_id}", "s", now),
            "livekit-recordings/s_2023-11-14T221320-{room_id}"
        );
    }
}
