//! The replies of CONTRACTS §4; the worker sends them to `reply_to` with the command's
//! `correlation_id`.

use roomtape_shared::db::recordings::{Kind, Subject};
use roomtape_shared::livekit::EgressError;
use serde_json::{json, Value};

use crate::db::commands::Progress;

pub fn error(code: &str, message: impl std::fmt::Display) -> Value {
    json!({"ok": false, "error": {"code": code, "message": message.to_string()}})
}

/// The reply of a start that a stop for its room overtook.
pub fn cancelled(room: &str) -> Value {
    error(
        "cancelled",
        format!("a stop for room {room} arrived while the start was pending; it will not be carried out"),
    )
}

/// The reply of a start of what is being recorded already (the room's composite, the
/// participant, or one of the tracks).
pub fn already_recording(room: &str, subject: &Subject, active: &[String]) -> Value {
    let what = match subject.kind {
        Kind::Participant => format!(
            "participant {} in room {room} is",
            subject.identity.as_deref().unwrap_or_default()
        ),
        Kind::Track | Kind::TrackComposite => format!(
            "track {} in room {room} is",
            subject.track_ids().join(" or ")
        ),
        Kind::RoomComposite | Kind::Web => format!("room {room} is"),
    };
    let mut reply = error(
        "already_recording",
        format!(
            "{what} already being recorded ({}); send allow_concurrent: true to record it twice",
            active.join(", ")
        ),
    );
    reply["error"]["egress_ids"] = json!(active);
    reply
}

/// The reply to a `message_id` used again with another body.
pub fn idempotency_conflict(command_id: &str, first: &Progress) -> Value {
    let state = match first {
        Progress::Done(_) => "was answered",
        Progress::Calling { .. } => "is being carried out",
    };
    error(
        "idempotency_conflict",
        format!("message_id {command_id} was first used with another body, which {state}; use a new id for a new command"),
    )
}

/// The code of a start's reply when LiveKit refused it.
pub fn start_error_code(error: &EgressError) -> &'static str {
    match error.code() {
        Some("not_found") => "room_not_found",
        _ => "egress_error",
    }
}
