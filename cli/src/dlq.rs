//! `roomtape dlq`: the dead-letter queue, `roomtape.dead`. `list` and `show` read it, `replay`
//! moves dead letters back to the queue they failed on (for another full retry schedule, once
//! the cause is fixed), `purge` deletes them.
//!
//! # Reading a queue without losing or ageing what is in it
//!
//! AMQP 0-9-1 has no way to look at a queue's messages without taking them. The usual browse,
//! `basic.get` then `basic.nack` with `requeue`, counts as a delivery on a quorum queue, and
//! `roomtape.dead` is one:
//!
//! - RabbitMQ 3.x increments `x-delivery-count` on every return but has no default limit;
//! - RabbitMQ 4.0 to 4.2 give every quorum queue a delivery limit of 20 by default, so the
//!   twentieth browse would drop every dead letter (`roomtape.dead` dead-letters nowhere);
//! - RabbitMQ 4.3 counts only failed returns (`basic.reject`, a closed channel), not
//!   `basic.nack`, but a browse that is interrupted still ages every message it held.
//!
//! Switching the limit off is not portable either: RabbitMQ 4 accepts `x-delivery-limit = -1`
//! (argument or policy) as "no limit", but 3.10 accepts the argument and reads it as a limit
//! below one, dropping a message on its first return, and refuses it in a policy; changing the
//! arguments of the existing queue fails with `PRECONDITION_FAILED`, and a policy needs rights
//! on the broker this tool does not have.
//!
//! So every command here takes a message with `basic.get` and either moves it (`replay`) or
//! puts a copy back at the end of `roomtape.dead` (everything else), the copy confirmed by the
//! broker before the original is acked, exactly as the processor moves messages between
//! queues. Nothing is ever returned to the queue: a copy is a new message, delivered zero
//! times, with the same body, properties and headers (less those the broker adds on delivery).
//! A walk takes as many messages as were ready when it started, so a walk over the whole queue
//! leaves it in the order it found it. What this costs: one confirmed publish per message
//! looked at; if the connection drops between a copy's confirm and the original's ack, the
//! message is there twice (never lost); and two walks at once (or a walk and a replay) can
//! show a message twice or miss one, though neither loses any.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::{Duration, UNIX_EPOCH};

use lapin::message::BasicGetMessage;
use lapin::options::{BasicAckOptions, BasicGetOptions, ConfirmSelectOptions, QueuePurgeOptions};
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection};
use roomtape_shared::config::{AmqpSettings, ConfigError, Env};
use roomtape_shared::queue::topology::{self, DEAD_QUEUE};
use roomtape_shared::queue::CONFIRM_TIMEOUT;
use roomtape_shared::queue::{self, headers, publish_confirmed, Outgoing, PublishError};
use serde_json::{json, Map, Value};

use crate::error::{CliError, EXIT_OK, EXIT_REFUSED, EXIT_UNAVAILABLE};
use crate::output::{self, Output};

#[derive(Debug, clap::Subcommand)]
pub enum DlqCommand {
    /// List dead letters, oldest first: message id, kind, source queue, attempts, when, last
    /// error.
    ///
    /// Reading moves each message to the back of roomtape.dead through a confirmed copy, so
    /// nothing is lost and no delivery is counted; listing the whole queue leaves it in the
    /// same order.
    List {
        /// Show at most this many. With more in the queue, the ones shown end up at its back,
        /// so the next `dlq list` shows the next ones.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Everything about a dead letter: properties, headers, and its body (pretty-printed if
    /// JSON).
    Show(ShowArgs),
    /// Move dead letters back to the queue they failed on, for a fresh retry schedule.
    ///
    /// Each copy is confirmed by the broker before the dead letter is removed. Dead letters that
    /// record no source queue stay in roomtape.dead.
    Replay {
        /// Replay only the dead letter with this message id (see `roomtape dlq list`), and any
        /// copy of it.
        message_id: Option<String>,
        /// At most this many messages.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
    /// Delete every dead letter in roomtape.dead, for good.
    Purge {
        /// Do not ask for confirmation (required when there is no terminal to ask on).
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
pub struct ShowArgs {
    /// The dead letter's message id (see `roomtape dlq list`).
    pub message_id: Option<String>,
    /// Show every dead letter.
    #[arg(long)]
    pub all: bool,
}

pub async fn run(command: &DlqCommand, env: &Env, out: &mut Output<'_>) -> Result<u8, CliError> {
    let result = match command {
        DlqCommand::List { limit } => list(env, *limit, out).await,
        DlqCommand::Show(args) => show(env, args.message_id.as_deref(), out).await,
        DlqCommand::Replay { message_id, limit } => {
            replay_command(env, message_id.as_deref(), *limit, out).await
        }
        DlqCommand::Purge { yes } => purge(env, *yes, out).await,
    };
    match result {
        Ok(code) => Ok(code),
        Err(Failure::Cli(error)) => Err(error),
        Err(Failure::Said { code, message }) => {
            out.line(format!("roomtape: {message}"));
            Ok(code)
        }
    }
}

/// How a dlq command ends short of success: a [`CliError`], or a refusal worded here with its
/// exit status.
#[derive(Debug)]
enum Failure {
    Cli(CliError),
    Said { code: u8, message: String },
}

impl Failure {
    fn said(code: u8, message: impl Into<String>) -> Self {
        Self::Said {
            code,
            message: message.into(),
        }
    }
}

impl From<CliError> for Failure {
    fn from(error: CliError) -> Self {
        Self::Cli(error)
    }
}

impl From<lapin::Error> for Failure {
    fn from(error: lapin::Error) -> Self {
        Self::Cli(error.into())
    }
}

impl From<PublishError> for Failure {
    fn from(error: PublishError) -> Self {
        Self::Cli(error.into())
    }
}

impl From<ConfigError> for Failure {
    fn from(error: ConfigError) -> Self {
        Self::Cli(error.into())
    }
}

// ---------------------------------------------------------------------------------------------
// list

async fn list(env: &Env, limit: usize, out: &mut Output<'_>) -> Result<u8, Failure> {
    let dead = DeadLetters::open(env).await?;
    let total = dead.ready;
    let walk = total.min(u32::try_from(limit).unwrap_or(u32::MAX));
    let bar = output::progress(u64::from(walk), "reading roomtape.dead");
    let mut shown = Vec::new();
    for _ in 0..walk {
        let Some(message) = dead.take().await? else {
            break;
        };
        shown.push(Summary::of(&message.delivery.properties));
        dead.keep(&message).await?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    dead.close().await;

    if out.json {
        let letters: Vec<Value> = shown.iter().map(Summary::json).collect();
        out.json_value(&json!({"total": total, "dead_letters": letters}));
        return Ok(EXIT_OK);
    }
    if total == 0 {
        out.line(format!("{DEAD_QUEUE} is empty"));
        return Ok(EXIT_OK);
    }
    let header = [
        "message_id",
        "kind",
        "source queue",
        "attempts",
        "when",
        "last error",
    ];
    let rows = shown.iter().map(Summary::row).collect();
    out.table(&header, rows);
    if shown.len() < total as usize {
        out.line(format!(
            "showing {} of {}; those shown are now at the back of {DEAD_QUEUE}, so `roomtape dlq list` again shows the next ones (or raise --limit)",
            shown.len(),
            dead_letters(total as usize)
        ));
    } else {
        out.line(format!("{} in {DEAD_QUEUE}", dead_letters(total as usize)));
    }
    Ok(EXIT_OK)
}

fn dead_letters(n: usize) -> String {
    if n == 1 {
        "1 dead letter".to_owned()
    } else {
        format!("{n} dead letters")
    }
}

/// What `list` prints of a dead letter.
#[derive(Debug)]
struct Summary {
    message_id: Option<String>,
    /// The AMQP `type` (the event), or the routing key it was first published with.
    kind: Option<String>,
    source_queue: Option<String>,
    attempts: Option<u32>,
    /// The AMQP `timestamp`, in seconds.
    timestamp: Option<u64>,
    /// The processor's error with its causes, or what the broker recorded.
    error: Option<String>,
}

/// How much of the error a table row shows.
const ERROR_WIDTH: usize = 60;

impl Summary {
    fn of(properties: &BasicProperties) -> Self {
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
            error,
        }
    }

    fn when(&self) -> Option<String> {
        let seconds = self.timestamp?;
        let time = UNIX_EPOCH.checked_add(Duration::from_secs(seconds))?;
        Some(humantime::format_rfc3339_seconds(time).to_string())
    }

    fn json(&self) -> Value {
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

    fn row(&self) -> Vec<String> {
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
fn truncate(text: &str) -> String {
    let first_line = text.lines().next().unwrap_or_default();
    let cut = first_line.chars().count() > ERROR_WIDTH || first_line.len() < text.trim_end().len();
    if !cut {
        return first_line.to_owned();
    }
    let kept: String = first_line.chars().take(ERROR_WIDTH - 1).collect();
    format!("{}…", kept.trim_end())
}

fn first_routing_key(death: &FieldTable) -> Option<String> {
    match death.inner().get("routing-keys")? {
        AMQPValue::FieldArray(keys) => keys.as_slice().iter().find_map(|key| match key {
            AMQPValue::LongString(key) => Some(String::from_utf8_lossy(key.as_bytes()).into()),
            AMQPValue::ShortString(key) => Some(key.to_string()),
            _ => None,
        }),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// show

async fn show(env: &Env, message_id: Option<&str>, out: &mut Output<'_>) -> Result<u8, Failure> {
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
                return Err(not_found(id));
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

fn not_found(id: &str) -> Failure {
    Failure::said(
        EXIT_REFUSED,
        format!("no dead letter in {DEAD_QUEUE} has message id {id:?}: `roomtape dlq list` shows the ids there"),
    )
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
        let (body, body_encoding) = body_json(&delivery.data);
        Self {
            summary: Summary::of(&delivery.properties),
            properties: properties_json(&delivery.properties),
            headers: table_json(&stored),
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

// ---------------------------------------------------------------------------------------------
// replay

async fn replay_command(
    env: &Env,
    message_id: Option<&str>,
    limit: usize,
    out: &mut Output<'_>,
) -> Result<u8, Failure> {
    let replayed = replay(env, message_id, limit).await?;
    if let Some(id) = message_id {
        if replayed.matched == 0 {
            return Err(not_found(id));
        }
        if replayed.moved() == 0 {
            return Err(Failure::said(
                EXIT_REFUSED,
                format!("dead letter {id:?} records no queue it failed on (no {} or {} header), so it stays in {DEAD_QUEUE}: `roomtape dlq show {id}` shows it", headers::SOURCE_QUEUE, headers::X_DEATH),
            ));
        }
    }
    print_replayed(out, &replayed);
    Ok(EXIT_OK)
}

fn print_replayed(out: &mut Output<'_>, replayed: &Replayed) {
    if out.json {
        let value = json!({
            "replayed": replayed.by_queue,
            "left": replayed.left,
            "not_reached": replayed.not_reached,
        });
        out.json_value(&value);
        return;
    }
    let moved: Vec<String> = replayed
        .by_queue
        .iter()
        .map(|(q, n)| format!("{n} to {q}"))
        .collect();
    let moved = if moved.is_empty() {
        "nothing".to_owned()
    } else {
        moved.join(", ")
    };
    let mut line = format!(
        "replayed {moved}; {} left in {DEAD_QUEUE} (no source queue)",
        replayed.left
    );
    if replayed.not_reached > 0 {
        line.push_str(&format!(
            "; {} not replayed yet (--limit): run it again",
            replayed.not_reached
        ));
    }
    out.line(line);
}

/// What a replay did.
#[derive(Debug, Default)]
struct Replayed {
    by_queue: BTreeMap<String, usize>,
    /// Looked at but left in `roomtape.dead`: no source queue recorded on them.
    left: usize,
    /// Dead letters (with the requested id, if one was given) seen.
    matched: usize,
    /// Ready in `roomtape.dead` when the replay started, and not looked at: `--limit` was
    /// reached first.
    not_reached: usize,
}

impl Replayed {
    fn moved(&self) -> usize {
        self.by_queue.values().sum()
    }
}

/// Moves up to `limit` dead letters (only those with `message_id`, if given) back to the queue
/// they failed on; every other message looked at goes to the back of `roomtape.dead`.
async fn replay(env: &Env, message_id: Option<&str>, limit: usize) -> Result<Replayed, Failure> {
    let dead = DeadLetters::open(env).await?;
    let bar = output::progress(u64::from(dead.ready), "replaying roomtape.dead");
    let mut replayed = Replayed::default();
    let mut taken = 0;
    while taken < dead.ready as usize && replayed.moved() < limit {
        let Some(message) = dead.take().await? else {
            break;
        };
        taken += 1;
        let wanted = message_id.is_none() || message_id == message_id_of(&message).as_deref();
        let queue = source_queue(message.delivery.properties.headers());
        match (wanted, queue) {
            (true, Some(queue)) => {
                dead.move_to(&queue, &message).await?;
                *replayed.by_queue.entry(queue).or_default() += 1;
                replayed.matched += 1;
            }
            (true, None) => {
                dead.keep(&message).await?;
                replayed.left += 1;
                replayed.matched += 1;
            }
            (false, _) => dead.keep(&message).await?,
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    if message_id.is_none() {
        replayed.not_reached = (dead.ready as usize).saturating_sub(taken);
    }
    dead.close().await;
    Ok(replayed)
}

fn message_id_of(message: &BasicGetMessage) -> Option<String> {
    let id = message.delivery.properties.message_id().as_ref()?;
    Some(id.to_string())
}

/// The processor's header, or for messages the broker dead-lettered (delivery limit), the
/// queue in their first `x-death` entry.
fn source_queue(found: &Option<FieldTable>) -> Option<String> {
    let found = found.as_ref();
    headers::text(found, headers::SOURCE_QUEUE).or_else(|| headers::first_death_queue(found))
}

// ---------------------------------------------------------------------------------------------
// purge

async fn purge(env: &Env, yes: bool, out: &mut Output<'_>) -> Result<u8, Failure> {
    let dead = DeadLetters::open(env).await?;
    if dead.ready == 0 && !yes && std::io::stdin().is_terminal() {
        dead.close().await;
        out.line(format!("{DEAD_QUEUE} is already empty"));
        return Ok(EXIT_OK);
    }
    let question = format!(
        "delete {} in {DEAD_QUEUE} for good?",
        dead_letters(dead.ready as usize)
    );
    // The answer is read on a thread of its own: the connection stays served meanwhile.
    let answer = tokio::task::spawn_blocking(move || output::confirm(&question, yes))
        .await
        .unwrap_or_else(|error| Err(CliError::Prompt(std::io::Error::other(error))));
    if let Err(error) = answer {
        dead.close().await;
        return Err(error.into());
    }
    let purged = dead
        .channel
        .queue_purge(DEAD_QUEUE.into(), QueuePurgeOptions::default())
        .await?;
    dead.close().await;
    if out.json {
        out.json_value(&json!({"purged": purged}));
    } else {
        out.line(format!(
            "purged {} from {DEAD_QUEUE}",
            dead_letters(purged as usize)
        ));
    }
    Ok(EXIT_OK)
}

// ---------------------------------------------------------------------------------------------
// the queue

/// Headers the broker adds to a delivery, which are not part of the message: a copy must not
/// carry them (RabbitMQ 4 treats `x-` headers as its own).
const DELIVERY_HEADERS: [&str; 2] = ["x-delivery-count", "x-acquired-count"];

/// `roomtape.dead` on a confirm-mode channel, and how many messages were ready in it when it
/// was opened: a walk takes no more than that, so it never meets its own copies.
struct DeadLetters {
    connection: Connection,
    channel: Channel,
    ready: u32,
}

impl DeadLetters {
    async fn open(env: &Env) -> Result<Self, Failure> {
        let settings = AmqpSettings::from_env(env)?;
        let connection = queue::connect(&settings, "roomtape-cli").await?;
        let ready = match topology::inspect(&connection, DEAD_QUEUE).await {
            Ok(counts) => counts.messages,
            Err(error) if is_not_found(&error) => {
                let _ = connection.close(200, "no dead-letter queue".into()).await;
                return Err(Failure::said(
                    EXIT_UNAVAILABLE,
                    format!("there is no {DEAD_QUEUE} queue on this vhost: is roomtape-processor deployed here (it declares the queues when it starts), and is the vhost in AMQP_URL the right one?"),
                ));
            }
            Err(error) => return Err(error.into()),
        };
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok(Self {
            connection,
            channel,
            ready,
        })
    }

    /// The message at the head of the queue, unacked.
    async fn take(&self) -> Result<Option<BasicGetMessage>, Failure> {
        let message = self
            .channel
            .basic_get(DEAD_QUEUE.into(), BasicGetOptions::default())
            .await?;
        Ok(message)
    }

    /// Puts a copy of `message` at the back of the queue, then acks the original.
    async fn keep(&self, message: &BasicGetMessage) -> Result<(), Failure> {
        self.copy_to(DEAD_QUEUE, message, &[]).await
    }

    /// Sends a copy of `message` to `queue`, without the headers of its last retry schedule,
    /// then acks the original.
    async fn move_to(&self, queue: &str, message: &BasicGetMessage) -> Result<(), Failure> {
        self.copy_to(queue, message, &headers::RETRY_STATE).await
    }

    async fn copy_to(
        &self,
        queue: &str,
        message: &BasicGetMessage,
        dropped: &[&str],
    ) -> Result<(), Failure> {
        let delivery = &message.delivery;
        let kept = headers_without(&delivery.properties, dropped);
        let properties = delivery.properties.clone().with_headers(kept);
        let copy = Outgoing::to_queue(queue, &delivery.data, properties);
        publish_confirmed(&self.channel, copy, CONFIRM_TIMEOUT).await?;
        message.ack(BasicAckOptions::default()).await?;
        Ok(())
    }

    async fn close(self) {
        let _ = self.connection.close(200, "done".into()).await;
    }
}

/// The message's headers as published (without [`DELIVERY_HEADERS`]), less `dropped`.
fn headers_without(properties: &BasicProperties, dropped: &[&str]) -> FieldTable {
    let mut kept = FieldTable::default();
    if let Some(found) = properties.headers() {
        for (key, value) in found.inner() {
            let name = key.as_str();
            if !DELIVERY_HEADERS.contains(&name) && !dropped.contains(&name) {
                kept.insert(key.clone(), value.clone());
            }
        }
    }
    kept
}

fn is_not_found(error: &lapin::Error) -> bool {
    matches!(
        error.kind(),
        lapin::ErrorKind::ProtocolError(error)
            if matches!(error.kind(), AMQPErrorKind::Soft(AMQPSoftError::NOTFOUND))
    )
}
