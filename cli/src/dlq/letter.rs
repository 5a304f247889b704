//! What a dead letter says: its id, where it failed and why.

use roomtape_shared::redact::redact_opt;
use std::time::{Duration, UNIX_EPOCH};

use lapin::message::BasicGetMessage;
use lapin::types::{AMQPValue, FieldTable};
use lapin::BasicProperties;
use roomtape_shared::queue::headers;
use serde_json::{json, Value};

pub(super) fn dead_letters(n: usize) -> String {
    if n == 1 {
        "1 dead letter".to_owned()
    } else {
        format!("{n} dead letters")
    }
}

/// What `list` prints of a dead letter.
#[derive(Debug)]
pub(super) struct Summary {
    pub(super) message_id: Option<String>,
    /// The AMQP `type` (the event), or the routing key it was first published with.
    pub(super) kind: Option<String>,
    pub(super) source_queue: Option<String>,
    pub(super) attempts: Option<u32>,
    /// The AMQP `timestamp`, in seconds.
    pub(super) timestamp: Option<u64>,
    /// The processor's error with its causes, or what the broker recorded.
    pub(super) error: Option<String>,
}

/// How much of the error a table row shows.
const ERROR_WIDTH: usize = 60;

impl Summary {
    pub(super) fn of(properties: &BasicProperties) -> Self {
        let found = properties.headers().as_ref();
        let death = headers::first_death(found);
        let death_text = |name: &str| death.and_then(|death| headers::text(Some(death), name));
        let kind = properties
            .kind()
            .as_ref()
            .map(|kind| kind.to_string())
            .or_else(|| headers::text(found, headers::ROUTING_KEY))
            .or_else(|| death.and_then(first_routing_key));
        let error = headers::text(found, headers::ERROR).or_else(|| {
            let reason = death_text("reason")?;
            let queue = death_text("queue").unwrap_or_else(|| "?".to_owned());
            Some(format!("dead-lettered by RabbitMQ ({reason}) from {queue}"))
        });
        Self {
            message_id: properties.message_id().as_ref().map(|id| id.to_string()),
            kind,
            source_queue: source_queue(properties.headers()),
            attempts: headers::count(found, headers::ATTEMPT),
            timestamp: *properties.timestamp(),
            error: redact_opt(error),
        }
    }

    pub(super) fn when(&self) -> Option<String> {
        let seconds = self.timestamp?;
        let time = UNIX_EPOCH.checked_add(Duration::from_secs(seconds))?;
        Some(humantime::format_rfc3339_seconds(time).to_string())
    }

    pub(super) fn json(&self) -> Value {
        json!({
            "message_id": self.message_id,
            "kind": self.kind,
            "source_queue": self.source_queue,
            "attempts": self.attempts,
            "timestamp": self.timestamp,
            "when": self.when(),
            "error": self.error,
        })
    }

    pub(super) fn row(&self) -> Vec<String> {
        let or_dash = |value: Option<String>| value.unwrap_or_else(|| "-".to_owned());
        vec![
            or_dash(self.message_id.clone()),
            or_dash(self.kind.clone()),
            or_dash(self.source_queue.clone()),
            or_dash(self.attempts.map(|n| n.to_string())),
            or_dash(self.when()),
            or_dash(self.error.as_deref().map(truncate)),
        ]
    }
}

/// The first line of `text`, at most [`ERROR_WIDTH`] characters, `…` where cut.
pub(super) fn truncate(text: &str) -> String {
    let first_line = text.lines().next().unwrap_or_default();
    let cut = first_line.chars().count() > ERROR_WIDTH || first_line.len() < text.trim_end().len();
    if !cut {
        return first_line.to_owned();
    }
    let kept: String = first_line.chars().take(ERROR_WIDTH - 1).collect();
    format!("{}…", kept.trim_end())
}

pub(super) fn first_routing_key(death: &FieldTable) -> Option<String> {
    match death.inner().get("routing-keys")? {
        AMQPValue::FieldArray(keys) => keys.as_slice().iter().find_map(|key| match key {
            AMQPValue::LongString(key) => Some(String::from_utf8_lossy(key.as_bytes()).into()),
            AMQPValue::ShortString(key) => Some(key.to_string()),
            _ => None,
        }),
        _ => None,
    }
}

pub(super) fn message_id_of(message: &BasicGetMessage) -> Option<String> {
    let id = message.delivery.properties.message_id().as_ref()?;
    Some(id.to_string())
}

/// The processor's header, or for messages the broker dead-lettered (delivery limit), the
/// queue in their first `x-death` entry.
pub(super) fn source_queue(found: &Option<FieldTable>) -> Option<String> {
    let found = found.as_ref();
    headers::text(found, headers::SOURCE_QUEUE).or_else(|| headers::first_death_queue(found))
}
