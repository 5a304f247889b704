//! `roomtape dlq show`: everything about a dead letter.

use lapin::message::BasicGetMessage;
use lapin::types::{AMQPValue, FieldTable};
use lapin::BasicProperties;
use roomtape_shared::config::Env;
use roomtape_shared::queue::topology::DEAD_QUEUE;
use roomtape_shared::redact::redact_json;
use serde_json::{json, Map, Value};

use crate::error::{CliError, EXIT_OK};
use crate::output::{self, Output};

use super::letter::{dead_letters, message_id_of, Summary};
use super::queue::{headers_without, DeadLetters};

pub async fn run(
    env: &Env,
    message_id: Option<&str>,
    out: &mut Output<'_>,
) -> Result<u8, CliError> {
    let dead = DeadLetters::open(env).await?;
    // The whole queue, even for one id: a walk that stopped early would leave the queue
    // reordered, and a message can be there twice (see the module's documentation).
    let bar = output::progress(u64::from(dead.ready), "reading roomtape.dead");
    let mut found = Vec::new();
    for _ in 0..dead.ready {
        let Some(message) = dead.take().await? else {
            break;
        };
        if message_id.is_none() || message_id == message_id_of(&message).as_deref() {
            found.push(Detail::of(&message));
        }
        dead.keep(&message).await?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    dead.close().await;

    match message_id {
        Some(id) => {
            let Some(first) = found.first() else {
                return Err(CliError::NoDeadLetter(id.to_owned()));
            };
            if out.json {
                out.json_value(&first.json());
                return Ok(EXIT_OK);
            }
            first.print(out);
            if found.len() > 1 {
                out.line(format!(
                    "({} more with this message id, copies of it: `roomtape dlq show --all` shows them)",
                    found.len() - 1
                ));
            }
        }
        None => {
            if out.json {
                let letters: Vec<Value> = found.iter().map(Detail::json).collect();
                out.json_value(&json!({"total": found.len(), "dead_letters": letters}));
                return Ok(EXIT_OK);
            }
            for detail in &found {
                detail.print(out);
                out.line("");
            }
            out.line(format!("{} in {DEAD_QUEUE}", dead_letters(found.len())));
        }
    }
    Ok(EXIT_OK)
}

/// Everything about one dead letter.
#[derive(Debug)]
struct Detail {
    summary: Summary,
    properties: Map<String, Value>,
    headers: Map<String, Value>,
    body: Value,
    /// `json`, `text` (UTF-8 that is not JSON) or `hex`.
    body_encoding: &'static str,
    body_bytes: usize,
}

impl Detail {
    fn of(message: &BasicGetMessage) -> Self {
        let delivery = &message.delivery;
        let stored = headers_without(&delivery.properties, &[]);
        // The message stays as LiveKit sent it; what is printed of it is redacted.
        let (mut body, body_encoding) = body_json(&delivery.data);
        redact_json(&mut body);
        let mut headers = table_json(&stored);
        headers.values_mut().for_each(redact_json);
        Self {
            summary: Summary::of(&delivery.properties),
            properties: properties_json(&delivery.properties),
            headers,
            body,
            body_encoding,
            body_bytes: delivery.data.len(),
        }
    }

    fn json(&self) -> Value {
        let mut value = self.summary.json();
        if let Value::Object(fields) = &mut value {
            fields.insert("properties".into(), Value::Object(self.properties.clone()));
            fields.insert("headers".into(), Value::Object(self.headers.clone()));
            fields.insert("body".into(), self.body.clone());
            fields.insert("body_encoding".into(), json!(self.body_encoding));
            fields.insert("body_bytes".into(), json!(self.body_bytes));
        }
        value
    }

    fn print(&self, out: &mut Output<'_>) {
        let summary = &self.summary;
        let field = |value: Option<String>| value.unwrap_or_else(|| "-".to_owned());
        out.line(format!("dead letter {}", field(summary.message_id.clone())));
        for (name, value) in [
            ("kind", field(summary.kind.clone())),
            ("source queue", field(summary.source_queue.clone())),
            ("attempts", field(summary.attempts.map(|n| n.to_string()))),
            ("when", field(summary.when())),
        ] {
            out.line(format!("  {name:<14} {value}"));
        }
        match &summary.error {
            Some(error) => {
                out.line("  last error");
                for line in error.lines() {
                    out.line(format!("    {line}"));
                }
            }
            None => out.line(format!("  {:<14} -", "last error")),
        }
        out.line("properties");
        print_fields(out, &self.properties);
        out.line("headers");
        print_fields(out, &self.headers);
        out.line(format!(
            "body ({}, {} bytes)",
            self.body_encoding, self.body_bytes
        ));
        let body = match &self.body {
            Value::String(text) if self.body_encoding != "json" => text.clone(),
            other => serde_json::to_string_pretty(other).unwrap_or_else(|_| other.to_string()),
        };
        for line in body.lines() {
            out.line(format!("  {line}"));
        }
    }
}

fn print_fields(out: &mut Output<'_>, fields: &Map<String, Value>) {
    if fields.is_empty() {
        out.line("  (none)");
    }
    for (name, value) in fields {
        let value = match value {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        out.line(format!("  {name:<28} {value}"));
    }
}

fn properties_json(properties: &BasicProperties) -> Map<String, Value> {
    let mut fields = Map::new();
    let texts = [
        ("message_id", properties.message_id()),
        ("type", properties.kind()),
        ("content_type", properties.content_type()),
        ("content_encoding", properties.content_encoding()),
        ("correlation_id", properties.correlation_id()),
        ("reply_to", properties.reply_to()),
        ("expiration", properties.expiration()),
        ("user_id", properties.user_id()),
        ("app_id", properties.app_id()),
        ("cluster_id", properties.cluster_id()),
    ];
    for (name, value) in texts {
        if let Some(value) = value {
            fields.insert(name.into(), json!(value.as_str()));
        }
    }
    if let Some(timestamp) = properties.timestamp() {
        fields.insert("timestamp".into(), json!(timestamp));
    }
    if let Some(mode) = properties.delivery_mode() {
        fields.insert("delivery_mode".into(), json!(mode));
    }
    if let Some(priority) = properties.priority() {
        fields.insert("priority".into(), json!(priority));
    }
    fields
}

fn table_json(table: &FieldTable) -> Map<String, Value> {
    table
        .inner()
        .iter()
        .map(|(key, value)| (key.to_string(), value_json(value)))
        .collect()
}

fn value_json(value: &AMQPValue) -> Value {
    match value {
        AMQPValue::Boolean(b) => json!(b),
        AMQPValue::ShortShortInt(n) => json!(n),
        AMQPValue::ShortShortUInt(n) => json!(n),
        AMQPValue::ShortInt(n) => json!(n),
        AMQPValue::ShortUInt(n) => json!(n),
        AMQPValue::LongInt(n) => json!(n),
        AMQPValue::LongUInt(n) => json!(n),
        AMQPValue::LongLongInt(n) => json!(n),
        AMQPValue::Float(n) => json!(n),
        AMQPValue::Double(n) => json!(n),
        AMQPValue::DecimalValue(d) => {
            json!(f64::from(d.value) / 10f64.powi(i32::from(d.scale)))
        }
        AMQPValue::ShortString(s) => json!(s.as_str()),
        AMQPValue::LongString(s) => json!(String::from_utf8_lossy(s.as_bytes())),
        AMQPValue::FieldArray(values) => values.as_slice().iter().map(value_json).collect(),
        AMQPValue::Timestamp(t) => json!(t),
        AMQPValue::FieldTable(table) => Value::Object(table_json(table)),
        AMQPValue::ByteArray(bytes) => json!(hex(bytes.as_slice())),
        AMQPValue::Void => Value::Null,
    }
}

/// The body as JSON if it is JSON, else as text if it is UTF-8, else in hex.
fn body_json(data: &[u8]) -> (Value, &'static str) {
    if let Ok(value) = serde_json::from_slice::<Value>(data) {
        return (value, "json");
    }
    match std::str::from_utf8(data) {
        Ok(text) => (json!(text), "text"),
        Err(_) => (json!(hex(data)), "hex"),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
