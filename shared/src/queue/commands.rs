//! Sending CONTRACTS §4 commands and awaiting the processor's replies over RabbitMQ's direct
//! reply-to: one channel consumes `amq.rabbitmq.reply-to` and publishes, and replies are matched
//! to requests by correlation id, so many requests share it (the API) or one uses it once (the
//! CLI). A lost connection is replaced on the next request; requests waiting on it get no reply
//! and end at their deadline.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{BasicConsumeOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::topology::COMMANDS_EXCHANGE;
use super::{connect, publish_confirmed, Outgoing, PublishError, CONFIRM_TIMEOUT};
use crate::config::AmqpSettings;

/// RabbitMQ's direct reply-to pseudo-queue: replies come back on the publishing channel.
pub const REPLY_TO: &str = "amq.rabbitmq.reply-to";

/// The header a command's sender may set to when it sent the command, in milliseconds since the
/// epoch (an integer, or its decimal digits as a string): AMQP's `timestamp` has whole seconds
/// only, too coarse to tell a stop from a start sent just after it (CONTRACTS §4).
pub const SENT_AT_MS: &str = "x-roomtape-sent-at-ms";

/// How long opening the link (connection, channel, reply consumer, confirms) may take: a broker
/// that accepts the connection and never answers must not hold the requests waiting for it.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);

/// The [`SENT_AT_MS`] header of a message, if it has a usable one.
pub fn sent_at_ms(headers: Option<&FieldTable>) -> Option<u64> {
    match headers?.inner().get(SENT_AT_MS)? {
        AMQPValue::LongLongInt(ms) => u64::try_from(*ms).ok(),
        AMQPValue::LongInt(ms) => u64::try_from(*ms).ok(),
        AMQPValue::LongUInt(ms) => Some(u64::from(*ms)),
        AMQPValue::Timestamp(ms) => Some(*ms),
        AMQPValue::LongString(text) => std::str::from_utf8(text.as_bytes())
            .ok()?
            .trim()
            .parse()
            .ok(),
        AMQPValue::ShortString(text) => text.as_str().trim().parse().ok(),
        _ => None,
    }
}

/// Why a command got no reply.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("could not reach the broker")]
    Broker(#[from] lapin::Error),
    /// The broker accepted the connection but did not finish opening it in time.
    #[error("the broker did not answer within {0:?}")]
    BrokerTimeout(Duration),
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error("no reply within {0:?}")]
    NoReply(Duration),
    #[error("the reply is not JSON")]
    BadReply(#[source] serde_json::Error),
}

/// Replies awaited on one channel, by correlation id.
type Waiting = Arc<Mutex<HashMap<String, oneshot::Sender<Vec<u8>>>>>;

/// One connection and channel, with the task that hands replies to their requests.
#[derive(Debug)]
struct Link {
    connection: Connection,
    channel: Channel,
    waiting: Waiting,
}

impl Link {
    async fn open(settings: &AmqpSettings, name: &str) -> Result<Self, lapin::Error> {
        let connection = connect(settings, name).await?;
        let channel = connection.create_channel().await?;
        // Direct reply-to needs the consumer first, with automatic acks.
        let consume = BasicConsumeOptions {
            no_ack: true,
            ..BasicConsumeOptions::default()
        };
        let replies = channel
            .basic_consume(REPLY_TO.into(), "".into(), consume, FieldTable::default())
            .await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        let waiting = Waiting::default();
        tokio::spawn(hand_out(replies, waiting.clone()));
        Ok(Self {
            connection,
            channel,
            waiting,
        })
    }

    fn usable(&self) -> bool {
        self.channel.status().connected()
    }
}

/// Gives each reply to the request waiting for its correlation id; ends with the channel.
async fn hand_out(mut replies: lapin::Consumer, waiting: Waiting) {
    while let Some(Ok(delivery)) = replies.next().await {
        if let Some(sender) = waiter(&waiting, &delivery) {
            // The request may have given up meanwhile: nobody to tell.
            let _ = sender.send(delivery.data);
        }
    }
}

fn waiter(waiting: &Waiting, delivery: &Delivery) -> Option<oneshot::Sender<Vec<u8>>> {
    let id = delivery.properties.correlation_id().as_ref()?;
    let mut waiting = waiting
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    waiting.remove(id.as_str())
}

/// Removes a request's entry when it ends, answered or not.
struct Registration<'a> {
    waiting: &'a Waiting,
    id: String,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        let mut waiting = self
            .waiting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        waiting.remove(&self.id);
    }
}

/// Sends commands and waits for their replies.
#[derive(Debug)]
pub struct CommandClient {
    settings: AmqpSettings,
    /// The connection's name in the broker's management UI.
    name: &'static str,
    link: tokio::sync::Mutex<Option<Arc<Link>>>,
    next_id: AtomicU64,
}

impl CommandClient {
    /// Connects on the first request.
    pub fn new(settings: AmqpSettings, name: &'static str) -> Self {
        Self {
            settings,
            name,
            link: tokio::sync::Mutex::new(None),
            next_id: AtomicU64::new(0),
        }
    }

    /// The usable link, opened if need be. Opening is bounded by [`OPEN_TIMEOUT`], so the mutex
    /// is never held longer; a caller also stops waiting for it at its own deadline.
    async fn link(&self) -> Result<Arc<Link>, CommandError> {
        let mut link = self.link.lock().await;
        if let Some(current) = link.as_ref().filter(|link| link.usable()) {
            return Ok(current.clone());
        }
        let opening = Link::open(&self.settings, self.name);
        let opened = tokio::time::timeout(OPEN_TIMEOUT, opening)
            .await
            .map_err(|_| CommandError::BrokerTimeout(OPEN_TIMEOUT))??;
        let opened = Arc::new(opened);
        *link = Some(opened.clone());
        Ok(opened)
    }

    /// Publishes the command to `roomtape.commands` (confirmed, mandatory, persistent) with
    /// `message_id` as its idempotency key and when it was sent (`timestamp`, and [`SENT_AT_MS`]
    /// in milliseconds), and waits for the reply. Everything, opening the link included, ends
    /// once `timeout` has passed since the call.
    pub async fn send(
        &self,
        routing_key: &str,
        body: &[u8],
        message_id: &str,
        timeout: Duration,
    ) -> Result<Value, CommandError> {
        let deadline = Instant::now() + timeout;
        let link = tokio::time::timeout_at(deadline, self.link())
            .await
            .map_err(|_| CommandError::BrokerTimeout(timeout))??;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed).to_string();
        let (sender, reply) = oneshot::channel();
        let registration = Registration {
            waiting: &link.waiting,
            id: id.clone(),
        };
        link.waiting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(id.clone(), sender);
        let sent_at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| {
                u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
            });
        let mut headers = FieldTable::default();
        let header_value = i64::try_from(sent_at_ms).unwrap_or(i64::MAX);
        headers.insert(SENT_AT_MS.into(), AMQPValue::LongLongInt(header_value));
        let properties = BasicProperties::default()
            .with_message_id(message_id.into())
            .with_correlation_id(id.into())
            .with_reply_to(REPLY_TO.into())
            .with_content_type("application/json".into())
            .with_type(routing_key.into())
            // The processor counts a start's deadline (COMMAND_START_DEADLINE) from here, and
            // orders starts and stops of a room by it.
            .with_timestamp(sent_at_ms / 1000)
            .with_headers(headers)
            .with_delivery_mode(2);
        let command = Outgoing::to_exchange(COMMANDS_EXCHANGE, routing_key, body, properties);
        let left = deadline.saturating_duration_since(Instant::now());
        publish_confirmed(&link.channel, command, CONFIRM_TIMEOUT.min(left)).await?;
        let reply = tokio::time::timeout_at(deadline, reply)
            .await
            .ok()
            .and_then(Result::ok)
            .ok_or(CommandError::NoReply(timeout))?;
        drop(registration);
        serde_json::from_slice(&reply).map_err(CommandError::BadReply)
    }

    /// Closes the connection, if one is open.
    pub async fn close(&self) {
        if let Some(link) = self.link.lock().await.take() {
            let _ = link.connection.close(200, "done".into()).await;
        }
    }
}
