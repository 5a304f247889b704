//! Auto-record: a room that matches the configured rule gets a `recording.start` command when
//! it starts, once per room session (the command's id is the session's sid).

use crate::config::AutoRecordSettings;
use lapin::BasicProperties;
use roomtape_shared::events::proto::Room;
use roomtape_shared::queue::topology::COMMANDS_EXCHANGE;
use roomtape_shared::queue::{Outgoing, PublishError};
use serde_json::json;

use crate::worker::Outbox;

/// Whether `room` is to be recorded from its start.
pub fn wanted(rule: &AutoRecordSettings, room: &Room) -> bool {
    let by_name = rule.room_patterns.iter().any(|p| p.matches(&room.name));
    let by_metadata = rule.on_metadata
        && serde_json::from_str::<serde_json::Value>(&room.metadata)
            .is_ok_and(|metadata| metadata["record"] == true);
    by_name || by_metadata
}

/// Publishes the start command (confirmed); its `message_id` makes repeats harmless.
pub async fn request(outbox: &impl Outbox, room: &Room) -> Result<(), PublishError> {
    let body = json!({"room_name": room.name, "metadata": {"auto_record": true}}).to_string();
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
