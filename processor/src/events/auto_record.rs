//! Auto-record: a room that matches the configured rule gets a `recording.start` command when
//! it starts, once per room session (the command's id is the session's sid). The room's
//! metadata (`{"record": true, "stream_id": …, "user_id": …}`, set by the app that created the
//! room) links the recording to the app's stream and user, however the room was matched.

use crate::config::AutoRecordSettings;
use lapin::BasicProperties;
use roomtape_shared::events::proto::Room;
use roomtape_shared::queue::topology::COMMANDS_EXCHANGE;
use roomtape_shared::queue::{Outgoing, PublishError};
use serde_json::{json, Value};

use crate::worker::Outbox;

/// Whether `room` is to be recorded from its start.
pub fn wanted(rule: &AutoRecordSettings, room: &Room) -> bool {
    let by_name = rule.room_patterns.iter().any(|p| p.matches(&room.name));
    let by_metadata = rule.on_metadata && metadata(room)["record"] == true;
    by_name || by_metadata
}

/// The room's metadata as JSON; `null` when it is empty or not JSON.
fn metadata(room: &Room) -> Value {
    serde_json::from_str(&room.metadata).unwrap_or(Value::Null)
}

/// The start command for `room`: its name, and the stream and user its metadata names.
fn command(room: &Room) -> Value {
    let metadata = metadata(room);
    let mut command = json!({"room_name": room.name, "metadata": {"auto_record": true}});
    for field in ["stream_id", "user_id"] {
        // Ids are strings (UUIDs); a number is taken as its text, anything else left out.
        let id = match &metadata[field] {
            Value::String(text) => Some(text.clone()),
            Value::Number(number) => Some(number.to_string()),
            _ => None,
        };
        if let Some(id) = id {
            command[field] = Value::String(id);
        }
    }
    command
}

/// Publishes the start command (confirmed); its `message_id` makes repeats harmless.
pub async fn request(outbox: &impl Outbox, room: &Room) -> Result<(), PublishError> {
    let body = command(room).to_string();
    let properties = BasicProperties::default()
        .with_message_id(format!("auto:{}:{}", room.name, room.sid).into())
        .with_content_type("application/json".into())
        .with_delivery_mode(2);
    let command = Outgoing::to_exchange(
        COMMANDS_EXCHANGE,
        "recording.start",
        body.as_bytes(),
        properties,
    );
    outbox.publish(command).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(metadata: &str) -> Room {
        Room {
            name: "stream-123".into(),
            sid: "RM_a".into(),
            metadata: metadata.into(),
            ..Room::default()
        }
    }

    #[test]
    fn the_stream_and_user_come_from_the_rooms_metadata() {
        let linked = command(&room(
            r#"{"record": true, "stream_id": "s-1", "user_id": 42, "title": "x"}"#,
        ));
        assert_eq!(
            linked,
            json!({"room_name": "stream-123", "metadata": {"auto_record": true},
                   "stream_id": "s-1", "user_id": "42"})
        );
        for metadata in [
            "",
            "not json",
            r#"{"stream_id": {"id": 1}, "user_id": null}"#,
        ] {
            assert_eq!(
                command(&room(metadata)),
                json!({"room_name": "stream-123", "metadata": {"auto_record": true}}),
                "{metadata}"
            );
        }
    }
}
