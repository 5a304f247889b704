//! Replies to `reply_to`, with the command's `correlation_id` (CONTRACTS §4).

use lapin::message::Delivery;
use lapin::{BasicProperties, Channel};
use serde_json::{json, Value};

use crate::publish::{self, PublishError};

pub fn error(code: &str, message: impl std::fmt::Display) -> Value {
    json!({"ok": false, "error": {"code": code, "message": message.to_string()}})
}

/// Publishes `reply` if the command asked for one, and waits for the broker's confirm. A
/// requester that has gone away is not an error.
pub async fn send(
    channel: &Channel,
    command: &Delivery,
    reply: &Value,
) -> Result<(), PublishError> {
    let Some(reply_to) = command.properties.reply_to().as_ref() else {
        return Ok(());
    };
    let mut properties = BasicProperties::default().with_content_type("application/json".into());
    if let Some(correlation_id) = command.properties.correlation_id() {
        properties = properties.with_correlation_id(correlation_id.clone());
    }
    let body = reply.to_string();
    publish::confirmed(
        channel,
        "",
        reply_to.as_str(),
        false,
        body.as_bytes(),
        properties,
    )
    .await
}
