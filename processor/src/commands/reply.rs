//! Replies to `reply_to`, with the command's `correlation_id` (CONTRACTS §4).

use lapin::message::Delivery;
use lapin::options::BasicPublishOptions;
use lapin::{BasicProperties, Channel};
use serde_json::{json, Value};

pub fn error(code: &str, message: impl std::fmt::Display) -> Value {
    json!({"ok": false, "error": {"code": code, "message": message.to_string()}})
}

/// Publishes `reply` if the command asked for one, and waits for the broker's confirm. A
/// requester that has gone away is not an error.
pub async fn send(channel: &Channel, command: &Delivery, reply: &Value) -> lapin::Result<()> {
    let Some(reply_to) = command.properties.reply_to().as_ref() else {
        return Ok(());
    };
    let mut properties = BasicProperties::default().with_content_type("application/json".into());
    if let Some(correlation_id) = command.properties.correlation_id() {
        properties = properties.with_correlation_id(correlation_id.clone());
    }
    channel
        .basic_publish(
            "".into(),
            reply_to.clone(),
            BasicPublishOptions::default(),
            reply.to_string().as_bytes(),
            properties,
        )
        .await?
        .await
        .map(drop)
}
